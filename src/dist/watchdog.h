// A watchdog for collectives in flight, after PyTorch's ProcessGroupNCCL watchdog: a thread polls
// every watched item and, the first time one is still unfinished `timeout` seconds after it was
// queued, calls the timeout handler once with its description and stops watching. The NCCL
// communicator watches its kernels with it (the host never blocks on them, so only a separate
// thread can notice that a peer hangs) and aborts the NCCL communicator from the handler. Generic
// and CUDA-free, so it is unit-tested on CPU, with an injected clock: whether an item timed out is
// decided by that clock alone, never by how fast the test's threads happen to run.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vitslim::dist {

class Watchdog {
 public:
  using Done = std::function<bool()>;  // polled from the watchdog thread; must be thread-safe
  using OnTimeout = std::function<void(const std::string& what, double seconds)>;
  using Now = std::function<double()>;  // seconds on a monotonic clock; called from both threads

  // `now` defaults to std::chrono::steady_clock; `poll_seconds` is real time between polls.
  Watchdog(double timeout_seconds, OnTimeout on_timeout, double poll_seconds, Now now = {});
  ~Watchdog();  // stops the thread; never calls the handler afterwards
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Starts watching an item queued now.
  void watch(std::string what, Done done);
  // Items not yet seen finished.
  size_t pending() const;
  // Whether the timeout handler has run (returned: tests; in a run it aborts and never returns).
  bool fired() const;
  // Polls done so far (tests wait on it after moving their clock).
  uint64_t polls() const;

 private:
  struct Item {
    std::string what;
    Done done;
    double queued;  // now() when it was watched
  };
  void loop();

  const double timeout_seconds_;
  const std::chrono::duration<double> poll_;
  OnTimeout on_timeout_;
  Now now_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Item> items_;
  bool stopping_ = false;
  bool fired_ = false;    // an item timed out: nothing more is watched
  bool handled_ = false;  // and on_timeout_ has returned
  uint64_t polls_ = 0;
  std::thread thread_;
};

}  // namespace vitslim::dist
