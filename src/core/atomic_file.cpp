// Implements atomic output files (see atomic_file.h) with POSIX fsync/rename.
#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"

namespace vitslim {
namespace fs = std::filesystem;

namespace {
void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NOFOLLOW);
  if (fd < 0) throw Error(cat(path, ": cannot open for fsync: ", std::strerror(errno)));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0 && !directory) throw Error(cat(path, ": fsync failed: ", std::strerror(errno)));
}
}  // namespace

namespace {

// Creates `partial` empty and exclusively: never through a symlink, never truncating a file that
// appeared meanwhile. A regular file left by an interrupted run is replaced, with a warning.
void create_exclusive(const std::string& path, const std::string& partial) {
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  constexpr mode_t kMode = 0644;
  int fd = ::open(partial.c_str(), kFlags, kMode);
  if (fd < 0 && errno == EEXIST) {
    struct stat st {};
    if (::lstat(partial.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      throw Error(cat("output ", path, ": ", partial, " exists and is not a regular file (a symlink?); ",
                      "refusing to write through it"));
    }
    log_warn(cat("output ", path, ": replacing ", partial, ", left by an interrupted run"));
    if (::unlink(partial.c_str()) != 0) throw Error(cat("output ", path, ": cannot remove ", partial));
    fd = ::open(partial.c_str(), kFlags, kMode);
  }
  if (fd < 0) throw Error(cat("output ", path, ": cannot create ", partial, ": ", std::strerror(errno)));
  ::close(fd);
}

}  // namespace

AtomicFile::AtomicFile(std::string path, bool keep_partial_on_error)
    : path_(std::move(path)), partial_(path_ + ".partial"), keep_partial_(keep_partial_on_error) {
  check_writable_output(path_, "output");
  create_exclusive(path_, partial_);
}

AtomicFile::~AtomicFile() {
  if (!committed_ && !keep_partial_) ::unlink(partial_.c_str());
}

void AtomicFile::commit() {
  fsync_path(partial_, false);
  if (std::rename(partial_.c_str(), path_.c_str()) != 0) {
    throw Error(cat(path_, ": cannot rename ", partial_, " into place: ", std::strerror(errno)));
  }
  committed_ = true;
  fs::path dir = fs::absolute(path_).parent_path();
  fsync_path(dir.string(), true);
}

void OutputSet::write(const std::string& path, const std::vector<BytePiece>& pieces) {
  auto file = std::make_unique<AtomicFile>(path);
  std::FILE* f = std::fopen(file->partial_path().c_str(), "wbe");  // the file AtomicFile created
  if (!f) throw Error(cat(path, ": cannot write: ", std::strerror(errno)));
  bool ok = true;
  errno = 0;
  for (const BytePiece& piece : pieces) {
    if (ok && piece.size) ok = std::fwrite(piece.data, 1, piece.size, f) == piece.size;
  }
  ok = ok && std::fflush(f) == 0;
  const int error = errno ? errno : EIO;
  std::fclose(f);
  if (!ok) throw Error(cat("output ", path, ": write failed: ", std::strerror(error), "; not written"));
  files_.push_back(std::move(file));
}

void OutputSet::write(const std::string& path, const std::string& text) { write(path, {{text.data(), text.size()}}); }

void OutputSet::adopt(std::unique_ptr<AtomicFile> file) { files_.push_back(std::move(file)); }

void OutputSet::commit() {
  for (auto& file : files_) file->commit();
  files_.clear();
}

void write_pieces_atomic(const std::string& path, const std::vector<BytePiece>& pieces) {
  OutputSet out;
  out.write(path, pieces);
  out.commit();
}

void write_bytes_atomic(const std::string& path, const void* data, size_t size) {
  write_pieces_atomic(path, {{data, size}});
}

void write_file_atomic(const std::string& path, const std::string& content) {
  write_bytes_atomic(path, content.data(), content.size());
}

void check_writable_output(const std::string& path, const std::string& what) {
  if (path.empty()) throw Error(cat(what, ": empty output path"));
  fs::path dir = fs::absolute(path).parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error(cat(what, " ", path, ": directory ", dir.string(), " does not exist"));
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    throw Error(cat(what, " ", path, ": directory ", dir.string(), " is not writable"));
  }
  if (fs::is_directory(path, ec)) throw Error(cat(what, " ", path, ": is a directory"));
}

void check_new_output(const std::string& path, const std::string& what, bool force) {
  check_writable_output(path, what);
  std::error_code ec;
  if (!force && fs::exists(fs::symlink_status(path, ec))) {
    throw Error(cat(what, " ", path, ": exists; pass --force to overwrite it"));
  }
}

}  // namespace vitslim
