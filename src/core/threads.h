// Compute thread policy: LibTorch may default to fewer threads than cores (half on one build
// here), so vitslim sets the intra-op thread count itself: all cores of the node shared among
// the ranks on it, unless --threads says otherwise. Also a plain parallel loop for work that
// waits on the file system (listing folders, reading shard headers).
#pragma once

#include <cstddef>
#include <functional>

namespace vitslim {

// Cores this process may use (sched affinity, else hardware concurrency).
int available_cores();
// Sets LibTorch's intra-op threads; requested 0 picks max(1, cores / local_ranks). Returns it.
int configure_threads(int requested, int local_ranks);
// Runs body(k) for every k in [0, n) on up to `threads` threads (the caller's among them), each
// taking the next k as it finishes one. `body` must not throw: keep errors per item.
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& body);

}  // namespace vitslim
