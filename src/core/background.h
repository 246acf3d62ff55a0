// Rank 0's file writes on a GPU run (checkpoints, best.safetensors, the final exports), done on one
// background thread so the other ranks (and the GPUs) do not wait for the file system. Tasks run
// one at a time, in the order given; run() returns at once while fewer than `capacity` tasks are
// queued or running (an epoch's end queues its export and its checkpoint without waiting), else it
// waits for room. An error of a task drops the tasks queued after it and is rethrown by the next
// run() or by finish(). The destructor waits for the queued tasks and drops their error (a run
// already unwinding from another error). Torch-free.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace vitslim {

class BackgroundTask {
 public:
  explicit BackgroundTask(size_t capacity = 2) : capacity_(capacity < 1 ? 1 : capacity) {}
  ~BackgroundTask();
  BackgroundTask(const BackgroundTask&) = delete;
  BackgroundTask& operator=(const BackgroundTask&) = delete;

  // Rethrows an earlier task's error, waits while `capacity` tasks are pending, then queues `work`.
  void run(std::function<void()> work);
  // Waits until every queued task has run; rethrows the first error.
  void finish();
  // Tasks queued or running.
  size_t pending() const;

 private:
  void work_loop();
  void rethrow_locked();

  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> queue_;
  size_t pending_ = 0;  // queued + running
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // started by the first run()
};

}  // namespace vitslim
