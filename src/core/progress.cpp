// Implements the rank-0 progress line (see progress.h).
#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace vitslim {

namespace {
constexpr int kBarWidth = 24;
constexpr double kRedrawSeconds = 0.25;  // terminal redraws at most this often

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

ProgressLine::ProgressLine(bool enabled, double interval_seconds, Clock clock, int terminal)
    : enabled_(enabled),
      terminal_(terminal < 0 ? isatty(fileno(stderr)) != 0 : terminal != 0),
      interval_(interval_seconds),
      clock_(clock ? std::move(clock) : Clock(steady_seconds)) {}

std::string ProgressLine::duration_text(double seconds) {
  char text[32];
  if (seconds < 9.95) {  // a short span keeps its tenths ("4.2s"); never "0s" for a real span
    std::snprintf(text, sizeof text, "%.1fs", std::max(0.0, seconds));
    return text;
  }
  const auto s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else if (s >= 60) {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(text, sizeof text, "%llds", static_cast<long long>(s));
  }
  return text;
}

std::string ProgressLine::line(const std::string& label, int64_t done, int64_t total, const std::string& status,
                               double now) const {
  std::string text = cat(label, " ", done, "/", total, status.empty() ? "" : " " + status);
  const double elapsed = now - start_time_;
  if (done > start_done_ && elapsed > 0 && total > done) {
    const double rate = static_cast<double>(done - start_done_) / elapsed;  // per second
    text += cat(", ", duration_text(static_cast<double>(total - done) / rate), " left");
  }
  return text;
}

void ProgressLine::update(const std::string& label, int64_t done, int64_t total, const std::string& status,
                          bool force) {
  if (!enabled_) return;
  const double now = clock_();
  if (label != label_) {  // a new loop (epoch): its rate starts here
    label_ = label;
    start_time_ = now;
    start_done_ = done;
  }
  if (terminal_) {
    if (!force && now - last_print_ < kRedrawSeconds) return;
    const int filled = total > 0 ? static_cast<int>(kBarWidth * done / total) : 0;
    std::string bar(static_cast<size_t>(std::clamp(filled, 0, kBarWidth)), '#');
    bar.resize(kBarWidth, '.');
    std::fprintf(stderr, "\r%s [%s] %s\033[K", label.c_str(), bar.c_str(),
                 line("", done, total, status, now).substr(1).c_str());
    open_ = true;
    if (force) finish();
  } else {
    if (!force && now - last_print_ < interval_) return;
    std::fprintf(stderr, "%s\n", line(label, done, total, status, now).c_str());
  }
  last_print_ = now;
  std::fflush(stderr);
}

void ProgressLine::finish() {
  if (open_) std::fprintf(stderr, "\n");
  open_ = false;
}

}  // namespace vitslim
