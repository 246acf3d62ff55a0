// Small text inputs read whole (--config INI files, --class-index, --image-list, --speeds CSV): the
// path must be a regular file (a FIFO, socket or device would block the read or never end; a folder
// or a symlink loop gets its own message) of at most `max_bytes`, else an Error naming `what`
// ("--class-index") and the path.
#pragma once

#include <cstdint>
#include <string>

namespace vitslim {

inline constexpr uint64_t kMaxTextInputBytes = uint64_t{1} << 30;

std::string read_text_file(const std::string& path, const std::string& what, uint64_t max_bytes = kMaxTextInputBytes);

}  // namespace vitslim
