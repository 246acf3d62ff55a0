// Implements the compute thread policy (see threads.h).
#include "core/threads.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace vitslim {

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

namespace {
constexpr int kMaxGpuLoaderThreads = 16;
constexpr int kMaxCpuLoaderThreads = 4;

std::vector<int> cpus_of(const std::string& text) {
  std::vector<int> out;
  size_t at = 0;
  while (at < text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string part = text.substr(at, comma - at);
    const size_t dash = part.find('-');
    const int lo = std::stoi(part.substr(0, dash));
    const int hi = dash == std::string::npos ? lo : std::stoi(part.substr(dash + 1));
    for (int c = lo; c <= hi; ++c) out.push_back(c);
    at = comma + 1;
  }
  return out;
}
}  // namespace

std::string affinity_text() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return "";
  std::string out;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    int last = c;
    while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) ++last;
    if (!out.empty()) out += ',';
    out += std::to_string(c);
    if (last > c) {
      out += '-';
      out += std::to_string(last);
    }
    c = last;
  }
  return out;
}

bool masks_overlap(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return true;  // unknown: assume shared
  const std::vector<int> x = cpus_of(a), y = cpus_of(b);
  return std::any_of(x.begin(), x.end(), [&](int c) { return std::find(y.begin(), y.end(), c) != y.end(); });
}

int configure_threads(int requested, int sharing_ranks) {
  int threads = requested > 0 ? requested : std::max(1, available_cores() / std::max(1, sharing_ranks));
  at::set_num_threads(threads);
  return threads;
}

int compute_threads() { return at::get_num_threads(); }

int default_loader_threads(int cores, int compute_threads, bool cuda) {
  if (cuda) return std::clamp(cores - 1, 1, kMaxGpuLoaderThreads);
  return std::clamp(cores - compute_threads, 0, kMaxCpuLoaderThreads);
}

void parallel_for(size_t n, int threads, const std::function<void(size_t)>& body) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t k = next++; k < n; k = next++) body(k);
  };
  std::vector<std::thread> helpers;
  const size_t extra = std::min(n, static_cast<size_t>(std::max(threads, 1))) - (n > 0 ? 1 : 0);
  for (size_t t = 0; t < extra; ++t) helpers.emplace_back(work);
  work();
  for (auto& t : helpers) t.join();
}

}  // namespace vitslim
