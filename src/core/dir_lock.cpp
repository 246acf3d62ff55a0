// Implements DirLock (see dir_lock.h) with flock(2) on a file opened without following symlinks.
#include "core/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"

namespace vitslim {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxHolderText = 256;

std::string read_holder(int fd) {
  char text[kMaxHolderText] = {0};
  const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
  std::string holder = n > 0 ? std::string(text, static_cast<size_t>(n)) : std::string();
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
  return holder.empty() ? "unknown pid" : holder;
}

std::string this_process() {
  char host[kMaxHolderText] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = 0;
  return cat("pid ", ::getpid(), host[0] ? cat(" on ", host) : std::string());
}

}  // namespace

DirLock::DirLock(const std::string& dir, const std::string& flag, std::vector<std::string> scaffolding)
    : dir_(dir), scaffolding_(std::move(scaffolding)), uncaught_(std::uncaught_exceptions()) {
  std::error_code ec;
  created_ = !fs::exists(fs::symlink_status(dir, ec));
  fs::create_directories(dir, ec);
  if (ec) throw Error(cat(flag, " ", dir, ": cannot create (", ec.message(), ")"));
  const std::string path = (fs::path(dir) / kFileName).string();
  constexpr mode_t kMode = 0644;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, kMode);
  if (fd_ < 0) throw Error(cat(flag, " ", dir, ": cannot open the lock file ", path, ": ", std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      const std::string holder = read_holder(fd_);
      ::close(fd_);
      fd_ = -1;
      throw Error(cat(flag, " ", dir, " is in use by another vitslim run (", holder, "; lock ", path,
                      "): wait for it to end or choose another ", flag));
    }
    log_warn(cat(flag, " ", dir, ": no lock (", std::strerror(err), "); do not start two runs into it"));
    return;
  }
  const std::string me = this_process() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    log_warn(cat(flag, " ", dir, ": cannot record the pid in ", path));
  }
}

bool DirLock::holds_no_result() const {
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name == kFileName || std::find(scaffolding_.begin(), scaffolding_.end(), name) != scaffolding_.end()) continue;
    if (it->is_directory(ec) && fs::is_empty(it->path(), ec)) continue;
    return false;
  }
  return !ec;
}

DirLock::~DirLock() {
  const bool failed = std::uncaught_exceptions() > uncaught_;
  if (failed && created_ && fd_ >= 0 && holds_no_result()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);  // only what this run made: the lock, empty folders, scaffolding
  }
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace vitslim
