// Implements the background task queue (see background.h).
#include "core/background.h"

#include <utility>

namespace vitslim {

BackgroundTask::~BackgroundTask() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return pending_ == 0; });
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

size_t BackgroundTask::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_;
}

void BackgroundTask::rethrow_locked() {
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void BackgroundTask::finish() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return pending_ == 0; });
  rethrow_locked();
}

void BackgroundTask::run(std::function<void()> work) {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    rethrow_locked();
    changed_.wait(lock, [&] { return pending_ < capacity_ || error_; });
    rethrow_locked();
    queue_.push_back(std::move(work));
    ++pending_;
    if (!thread_.joinable()) thread_ = std::thread([this] { work_loop(); });
  }
  changed_.notify_all();
}

void BackgroundTask::work_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    std::function<void()> work = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    std::exception_ptr failed;
    try {
      work();
    } catch (...) {
      failed = std::current_exception();
    }
    lock.lock();
    --pending_;
    if (failed) {
      error_ = failed;
      pending_ -= queue_.size();  // the tasks after a failed one do not run
      queue_.clear();
    }
    changed_.notify_all();
  }
}

}  // namespace vitslim
