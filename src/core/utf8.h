// UTF-8 validity, for text that carries file names: a POSIX path is any bytes, but JSON, INI dumps
// and safetensors headers must be valid UTF-8, so the writers escape the bytes that are not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vitslim {

// The length (1-4) of the well-formed UTF-8 sequence at s[i] (no overlong forms, surrogates or
// code points above U+10FFFF), or 0 when the byte there does not start one. `code_point` gets its value.
size_t utf8_sequence(const std::string& s, size_t i, uint32_t* code_point = nullptr);
bool valid_utf8(const std::string& s);

}  // namespace vitslim
