// The program version, set by CMake from project(VERSION).
#pragma once

namespace vitslim {
#ifndef VITSLIM_VERSION
#define VITSLIM_VERSION "unknown"
#endif
inline constexpr const char* kVersion = VITSLIM_VERSION;
}  // namespace vitslim
