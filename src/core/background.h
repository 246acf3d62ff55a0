// One task at a time on a background thread: rank 0's checkpoint and export writes on a GPU run,
// so the other ranks (and the GPUs) do not wait for the file system. run() waits for the task
// before it, then starts the next; an error of a task is rethrown by the next run() or by
// finish(). The destructor waits for the running task and drops its error (a run that is
// already unwinding from another error). Torch-free.
#pragma once

#include <exception>
#include <functional>
#include <thread>

namespace vitslim {

class BackgroundTask {
 public:
  BackgroundTask() = default;
  ~BackgroundTask();
  BackgroundTask(const BackgroundTask&) = delete;
  BackgroundTask& operator=(const BackgroundTask&) = delete;

  // Waits for the previous task (rethrowing its error), then runs `work` on a new thread.
  void run(std::function<void()> work);
  // Waits for the running task, if any; rethrows its error.
  void finish();
  bool busy() const { return thread_.joinable(); }

 private:
  std::thread thread_;
  std::exception_ptr error_;
};

}  // namespace vitslim
