// An exclusive lock on an output directory for the life of a run: two runs writing into one
// --out-dir would interleave their checkpoints and results, so the second is refused at start,
// naming the holder's pid. The lock is a flock on <dir>/.vitslim.lock (released by the kernel
// when the process ends, however it ends); the file stays, holding the last holder's pid.
#pragma once

#include <string>

namespace vitslim {

class DirLock {
 public:
  // Creates `dir` if needed and locks it; Error naming `flag` and the holder when it is taken.
  // Where the file system has no flock (some network mounts), a warning and no lock.
  DirLock(const std::string& dir, const std::string& flag);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  static constexpr const char* kFileName = ".vitslim.lock";

 private:
  int fd_ = -1;
};

}  // namespace vitslim
