// Implements the collective watchdog (see watchdog.h).
#include "dist/watchdog.h"

#include <algorithm>
#include <utility>

namespace vitslim::dist {

namespace {
double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Watchdog::Watchdog(double timeout_seconds, OnTimeout on_timeout, double poll_seconds, Now now)
    : timeout_seconds_(timeout_seconds),
      poll_(poll_seconds),
      on_timeout_(std::move(on_timeout)),
      now_(now ? std::move(now) : Now(steady_seconds)) {
  thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void Watchdog::watch(std::string what, Done done) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (fired_) return;
  items_.push_back({std::move(what), std::move(done), now_()});
}

size_t Watchdog::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return items_.size();
}

bool Watchdog::fired() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return handled_;
}

uint64_t Watchdog::polls() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return polls_;
}

void Watchdog::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_ && !fired_) {
    wake_.wait_for(lock, poll_, [this] { return stopping_; });
    if (stopping_) return;
    ++polls_;
    // Drop what has finished; the oldest item left decides.
    items_.erase(std::remove_if(items_.begin(), items_.end(), [](const Item& item) { return item.done(); }),
                 items_.end());
    if (items_.empty()) continue;
    const Item& oldest = items_.front();
    const double age = now_() - oldest.queued;
    if (age < timeout_seconds_) continue;
    fired_ = true;
    const std::string what = oldest.what;
    items_.clear();
    lock.unlock();
    on_timeout_(what, age);
    lock.lock();
    handled_ = true;
    return;
  }
}

}  // namespace vitslim::dist
