// Compute thread policy: LibTorch may default to fewer threads than cores (half on one build
// here), so vitslim sets the intra-op thread count itself: all cores of the node shared among
// the ranks on it, unless --threads says otherwise.
#pragma once

namespace vitslim {

// Cores this process may use (sched affinity, else hardware concurrency).
int available_cores();
// Sets LibTorch's intra-op threads; requested 0 picks max(1, cores / local_ranks). Returns it.
int configure_threads(int requested, int local_ranks);

}  // namespace vitslim
