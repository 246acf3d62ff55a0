// An exclusive lock on an output directory for the life of a run: two runs writing into one
// --out-dir would interleave their checkpoints and results, so the second is refused at start,
// naming the holder's pid. The lock is a flock on <dir>/.vitslim.lock (released by the kernel
// when the process ends, however it ends); the file stays, holding the last holder's pid.
// A run that created the directory and fails (an exception leaves the lock's scope) before it put
// anything there but the lock, empty folders and its named `scaffolding` files (the pipeline's
// settings) removes it again: a failed run leaves no output directory behind.
#pragma once

#include <string>
#include <vector>

namespace vitslim {

class DirLock {
 public:
  // Creates `dir` if needed and locks it; Error naming `flag` and the holder when it is taken.
  // Where the file system has no flock (some network mounts), a warning and no lock.
  DirLock(const std::string& dir, const std::string& flag, std::vector<std::string> scaffolding = {});
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  static constexpr const char* kFileName = ".vitslim.lock";

 private:
  // The directory holds nothing this run made but the lock, empty folders and scaffolding.
  bool holds_no_result() const;

  std::string dir_;
  std::vector<std::string> scaffolding_;
  bool created_ = false;
  int uncaught_ = 0;  // std::uncaught_exceptions() at construction
  int fd_ = -1;
};

}  // namespace vitslim
