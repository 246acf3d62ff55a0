// Which GPU each rank uses. Ranks on one host take one GPU each by local rank; a rank that sees a
// single GPU (the launcher bound it, e.g. srun --gpus-per-task=1 or a per-rank
// CUDA_VISIBLE_DEVICES) takes that one. Every rank then reports its GPU's PCI bus id, and two
// ranks of a host on one physical GPU are refused on every rank, naming both: NCCL would fail
// with "Duplicate GPU detected", and sharing a GPU silently halves the throughput.
#pragma once

#include <c10/core/Device.h>

#include <string>
#include <vector>

#include "core/runtime.h"

namespace vitslim::dist {

class MpiSession;

// The CUDA device index for local rank `local_rank` of `local_size` ranks on a host that shows
// this rank `visible` GPUs; throws when there are fewer GPUs than ranks to give one each.
int choose_gpu_index(int local_rank, int local_size, int visible, const std::string& host);

// `placements[r]` = "host bus-id" of rank r; throws CollectiveError naming the first two ranks
// that share a GPU, if any.
void check_distinct_gpus(const std::vector<std::string>& placements);

// Collective: chooses this rank's GPU, makes it current, checks that no GPU is shared, and logs
// "rank -> host, GPU bus id" for every rank on rank 0. Returns the device index.
int select_gpu(const MpiSession& mpi);

// Collective: the device this rank computes on for --device / --tf32. cpu: the CPU. cuda: this
// rank's own GPU (select_gpu), or one error line naming --device when there is none. auto: cuda
// when every rank sees a CUDA device, else the CPU on every rank. Sets TF32 for CUDA. A process
// chooses once; later calls (the pipeline's stages) return the same device.
c10::Device open_device(const ComputeConfig& compute, const MpiSession& mpi);

}  // namespace vitslim::dist
