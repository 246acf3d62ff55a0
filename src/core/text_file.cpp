// Implements read_text_file (see text_file.h): stat first, then one read of a file known to be regular.
#include "core/text_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace vitslim {

std::string read_text_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Error(cat(what, " ", path, ": ",
                    errno == ELOOP ? "a symlink loop (too many levels of symbolic links)" : std::strerror(errno)));
  }
  if (S_ISDIR(st.st_mode)) throw Error(cat(what, " ", path, ": is a directory; give a file"));
  if (!S_ISREG(st.st_mode))
    throw Error(cat(what, " ", path, ": not a regular file (a FIFO, socket or device); reading it would block"));
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    throw Error(cat(what, " ", path, ": ", st.st_size, " bytes, more than the ", max_bytes, " a text input may have"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat(what, " ", path, ": cannot open: ", std::strerror(errno)));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(cat(what, " ", path, ": read failed"));
  return text;
}

}  // namespace vitslim
