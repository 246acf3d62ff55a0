// Implements the rank-0 progress line (see progress.h).
#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace vitslim {

namespace {
constexpr int kBarWidth = 24;
}

ProgressLine::ProgressLine(bool enabled, int64_t every)
    : enabled_(enabled), terminal_(isatty(fileno(stderr)) != 0), every_(every) {}

void ProgressLine::update(const std::string& label, int64_t done, int64_t total, const std::string& status,
                          bool force) {
  if (!enabled_) return;
  ++updates_;
  if (terminal_) {
    const int filled = total > 0 ? static_cast<int>(kBarWidth * done / total) : 0;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kBarWidth, '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %s\033[K", label.c_str(), bar.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), status.c_str());
    open_ = true;
    if (force) finish();
  } else if (force || updates_ % every_ == 0) {
    std::fprintf(stderr, "%s %lld/%lld %s\n", label.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), status.c_str());
  }
  std::fflush(stderr);
}

void ProgressLine::finish() {
  if (open_) std::fprintf(stderr, "\n");
  open_ = false;
}

}  // namespace vitslim
