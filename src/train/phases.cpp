// Implements the per-phase step clock (see phases.h).
#include "train/phases.h"

#include <chrono>
#include <cstdio>
#include <sstream>

namespace vitslim::train {

namespace {
constexpr std::array<const char*, kPhaseCount> kNames = {"data",       "teacher",   "forward", "backward",
                                                         "all-reduce", "optimizer", "ema",     "record"};
std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}
}  // namespace

const char* phase_name(Phase phase) { return kNames.at(static_cast<size_t>(phase)); }

PhaseClock::PhaseClock(bool enabled, std::function<void()> fence, Clock clock)
    : enabled_(enabled), fence_(std::move(fence)), clock_(std::move(clock)) {
  if (!clock_) {
    clock_ = [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
  }
}

double PhaseClock::now() const {
  if (fence_) fence_();
  return clock_();
}

void PhaseClock::begin_step() {
  if (!enabled_) return;
  current_.fill(0);
  mark_ = now();
}

void PhaseClock::lap(Phase phase) {
  if (!enabled_) return;
  const double t = now();
  current_[static_cast<size_t>(phase)] += t - mark_;
  mark_ = t;
}

void PhaseClock::end_step() {
  if (!enabled_) return;
  if (seen_++ == 0) return;  // warm-up
  for (size_t k = 0; k < total_.size(); ++k) total_[k] += current_[k];
  ++steps_;
}

double PhaseClock::step_seconds() const {
  double sum = 0;
  for (double s : total_) sum += s;
  return sum;
}

std::map<std::string, double> PhaseClock::to_map() const {
  std::map<std::string, double> out;
  for (int k = 0; k < kPhaseCount; ++k) out[kNames[static_cast<size_t>(k)]] = total_[static_cast<size_t>(k)];
  out["steps"] = static_cast<double>(steps_);
  return out;
}

std::string PhaseClock::table() const {
  if (steps_ == 0) return "per-phase time: no step after the first (warm-up) one\n";
  const double n = static_cast<double>(steps_), step = step_seconds();
  std::ostringstream out;
  out << "per-phase time of " << steps_ << " steps (the first step left out)\n"
      << "| phase | ms/step | share |\n|---|---|---|\n";
  for (int k = 0; k < kPhaseCount; ++k) {
    const double s = total_[static_cast<size_t>(k)];
    out << "| " << kNames[static_cast<size_t>(k)] << " | " << fixed(1e3 * s / n, 2) << " | "
        << fixed(step > 0 ? 100 * s / step : 0, 1) << "% |\n";
  }
  const double model = seconds(Phase::Forward) + seconds(Phase::Backward);
  out << "| step | " << fixed(1e3 * step / n, 2) << " | 100.0% |\n";
  if (model > 0) out << "step / (forward + backward): " << fixed(step / model, 3) << "x\n";
  return out.str();
}

}  // namespace vitslim::train
