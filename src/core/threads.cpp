// Implements the compute thread policy (see threads.h).
#include "core/threads.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <algorithm>
#include <thread>

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

int configure_threads(int requested, int local_ranks) {
  int threads = requested > 0 ? requested : std::max(1, available_cores() / std::max(1, local_ranks));
  at::set_num_threads(threads);
  return threads;
}

}  // namespace vitslim
