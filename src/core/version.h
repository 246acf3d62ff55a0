// The program version, set by CMake from project(VERSION), and the source commit the binary was
// built from (`git describe --always --dirty`, stamped at every build by cmake/source_commit.cmake).
#pragma once

namespace vitslim {
#ifndef VITSLIM_VERSION
#define VITSLIM_VERSION "unknown"
#endif
inline constexpr const char* kVersion = VITSLIM_VERSION;
extern const char* const kSourceCommit;  // e.g. "d619423abcde-dirty"; "unknown" outside git
}  // namespace vitslim
