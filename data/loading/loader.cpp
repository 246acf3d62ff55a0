// Implements the threaded loader (see loader.h): workers claim batch numbers in order inside a
// window ahead of the consumer; results and errors are kept per batch number.
#include "data/loading/loader.h"

#include <chrono>

#include "core/error.h"

namespace vitslim::data {

Loader::Loader(int64_t first, int64_t count, MakeBatch make, int64_t workers, int64_t prefetch)
    : make_(std::move(make)),
      next_claim_(first),
      next_give_(first),
      end_(first + count),
      window_(std::max<int64_t>(1, workers * prefetch)) {
  for (int64_t w = 0; w < workers; ++w) threads_.emplace_back([this] { work(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Loader::work() {
  while (true) {
    int64_t b = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return stop_ || next_claim_ >= end_ || next_claim_ < next_give_ + window_; });
      if (stop_ || next_claim_ >= end_) return;
      b = next_claim_++;
    }
    try {
      Batch batch = make_(b);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(b, std::move(batch));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      failed_.emplace(b, std::current_exception());
    }
    ready_cv_.notify_all();
  }
}

Batch Loader::next() {
  const auto start = std::chrono::steady_clock::now();
  if (next_give_ >= end_) throw Error(cat("loader: batch ", next_give_, " is past the last one (", end_ - 1, ")"));
  if (threads_.empty()) {
    Batch batch = make_(next_give_++);
    last_wait_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return batch;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  ready_cv_.wait(lock, [&] { return ready_.count(next_give_) > 0 || failed_.count(next_give_) > 0; });
  last_wait_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto failed = failed_.find(next_give_);
  if (failed != failed_.end()) std::rethrow_exception(failed->second);
  auto it = ready_.find(next_give_);
  Batch batch = std::move(it->second);
  ready_.erase(it);
  ++next_give_;
  lock.unlock();
  work_cv_.notify_all();
  return batch;
}

}  // namespace vitslim::data
