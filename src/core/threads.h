// Compute thread policy: LibTorch may default to fewer threads than cores (half on one build
// here), so vitslim sets the intra-op thread count itself: all cores of the node shared among
// the ranks on it, unless --threads says otherwise. Also a plain parallel loop for work that
// waits on the file system (listing folders, reading shard headers).
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace vitslim {

// Cores this process may use (sched affinity, else hardware concurrency).
int available_cores();
// The CPUs of this process's affinity mask as text ("0-3,8"), to compare ranks' placements.
std::string affinity_text();
// True when two affinity_text() masks share a CPU.
bool masks_overlap(const std::string& a, const std::string& b);
// Sets LibTorch's intra-op threads; requested 0 picks max(1, cores / sharing_ranks), where
// sharing_ranks counts the ranks of this node whose affinity masks overlap this one's (itself
// included): 1 under srun --cpus-per-task or mpirun --bind-to, which already divided the cores.
// Returns the count.
int configure_threads(int requested, int sharing_ranks);
// LibTorch's intra-op threads now.
int compute_threads();
// Loader threads when --workers is unset: with a GPU, `cores` less one for the main thread (1 to
// 16); on the CPU, the cores the compute threads leave free (0 to 4). With none free the training
// thread builds each batch itself over the compute threads: a loader thread on a core the compute
// threads use stalls every parallel region it preempts (1.36x slower steps on 2 cores).
int default_loader_threads(int cores, int compute_threads, bool cuda);
// Runs body(k) for every k in [0, n) on up to `threads` threads (the caller's among them), each
// taking the next k as it finishes one. `body` must not throw: keep errors per item.
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& body);

}  // namespace vitslim
