// Atomic output files: content is written to "<path>.partial", fsync'ed and renamed over <path>
// only on commit(), so a reader never sees a half-written file and a failed job leaves no
// output. An uncommitted AtomicFile removes its partial file when destroyed. The partial file
// is created exclusively (O_EXCL, O_NOFOLLOW): a symlink in its place is refused, a stray
// regular one (an interrupted run's) is replaced with a warning.
#pragma once

#include <string>
#include <vector>

namespace vitslim {

class AtomicFile {
 public:
  // keep_partial_on_error: an uncommitted partial file is left in place (resumable work).
  explicit AtomicFile(std::string path, bool keep_partial_on_error = false);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Where to write until commit().
  const std::string& partial_path() const { return partial_; }
  const std::string& path() const { return path_; }
  // fsync the partial file, rename it to path(), fsync the directory.
  void commit();

 private:
  std::string path_;
  std::string partial_;
  bool committed_ = false;
  bool keep_partial_;
};

// Writes text to path atomically.
void write_file_atomic(const std::string& path, const std::string& content);
// Same for binary content.
void write_bytes_atomic(const std::string& path, const void* data, size_t size);
// Binary content given as pieces written one after the other (no copy into one buffer).
struct BytePiece {
  const void* data;
  size_t size;
};
void write_pieces_atomic(const std::string& path, const std::vector<BytePiece>& pieces);

// Fails with a clear error when the directory of path does not exist or is not writable.
void check_writable_output(const std::string& path, const std::string& what);
// The same, and an existing file is refused unless `force` (jobs with a --force switch).
void check_new_output(const std::string& path, const std::string& what, bool force);

}  // namespace vitslim
