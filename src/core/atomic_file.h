// Atomic output files: content is written to "<path>.partial", fsync'ed and renamed over <path>
// only on commit(), so a reader never sees a half-written file and a failed job leaves no
// output. An uncommitted AtomicFile removes its partial file when destroyed. The partial file
// is created exclusively (O_EXCL, O_NOFOLLOW): a symlink in its place is refused, a stray
// regular one (an interrupted run's) is replaced with a warning.
//
// A job with several outputs writes them through one OutputSet: each output is written in full to
// its partial file first and commit() renames them all at the end, so a run that fails on its last
// output (a full disk, a size limit) leaves none of them, not the first ones alone.
#pragma once

#include <memory>
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

struct BytePiece {
  const void* data;
  size_t size;
};

// The outputs of one run, made visible together (see the file comment). Destroyed uncommitted, it
// removes every partial file it wrote.
class OutputSet {
 public:
  // Writes the pieces, one after the other, to path's partial file now; path appears on commit().
  void write(const std::string& path, const std::vector<BytePiece>& pieces);
  void write(const std::string& path, const std::string& text);
  // An output that its own writer has written completely to file->partial_path() (HDF5 traces).
  void adopt(std::unique_ptr<AtomicFile> file);
  // Renames every output into place, in the order they were written.
  void commit();

 private:
  std::vector<std::unique_ptr<AtomicFile>> files_;
};

// Writes text to path atomically.
void write_file_atomic(const std::string& path, const std::string& content);
// Same for binary content.
void write_bytes_atomic(const std::string& path, const void* data, size_t size);
// Binary content given as pieces written one after the other (no copy into one buffer).
void write_pieces_atomic(const std::string& path, const std::vector<BytePiece>& pieces);

// Fails with a clear error when the directory of path does not exist or is not writable.
void check_writable_output(const std::string& path, const std::string& what);
// The same, and an existing file is refused unless `force` (jobs with a --force switch).
void check_new_output(const std::string& path, const std::string& what, bool force);

}  // namespace vitslim
