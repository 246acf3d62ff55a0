// The training loader: `workers` threads build batches ahead of the training loop and hand them
// over in order. At most workers x prefetch batches are built or waiting at any time (bounded
// memory). A batch is a pure function of its number (the caller's `make` derives every random
// draw from seed, epoch and sample position), so the batches are the same for any number of
// workers. A worker's error is re-thrown by next(); destruction stops and joins the workers
// after their current batch, so an early exit never hangs.
#pragma once

#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "data/loading/batch.h"

namespace vitslim::data {

class Loader {
 public:
  using MakeBatch = std::function<Batch(int64_t batch_number)>;
  // Batches first .. first + count - 1; workers 0 builds each batch inside next().
  Loader(int64_t first, int64_t count, MakeBatch make, int64_t workers, int64_t prefetch);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch (waits for it); throws the error of a worker that failed on it.
  Batch next();
  // Seconds the last next() waited for its batch (0 when it was ready).
  double last_wait_seconds() const { return last_wait_; }

 private:
  void work();

  MakeBatch make_;
  int64_t next_claim_, next_give_, end_, window_;
  std::mutex mutex_;
  std::condition_variable work_cv_, ready_cv_;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> failed_;
  bool stop_ = false;
  double last_wait_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace vitslim::data
