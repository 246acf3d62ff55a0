// Runtime settings every job shares (threads, seed, quiet) and the compute device enum, each
// declared once with its option.
#pragma once

#include <cstdint>

#include "core/options.h"

namespace vitslim {

// Caps that keep a typo from exhausting a machine (a thread or a batch each is far above use).
inline constexpr double kMaxThreads = 1024;
inline constexpr double kMaxBatch = 1 << 20;

enum class Device { Cpu, Cuda };
inline const EnumNames<Device> kDeviceNames = {{Device::Cpu, "cpu"}, {Device::Cuda, "cuda"}};
inline const char* to_string(Device d) { return enum_name(kDeviceNames, d); }
// --bf16, the same switch in every job that computes with the model (model/autocast.h).
inline constexpr const char* kBf16Help =
    "bf16 autocast: matrix products in bfloat16; LayerNorm, softmax, losses, optimizer and statistics in float32 "
    "(CUDA, or a CPU with AVX512-BF16/AMX; emulated and slow on other CPUs)";

struct RuntimeConfig {
  int threads = 0;  // 0: all available cores (divided among ranks on one node)
  uint64_t seed = 0;
  bool quiet = false;

  void declare(Options& o) {
    o.group("runtime", "Runtime");
    o.add("threads", threads, "compute threads per process (0: all cores, shared among the ranks of a node)",
          closed(0, kMaxThreads));
    o.add("seed", seed, "seed of initialisation and sampling");
    o.add_switch("quiet", quiet, "no progress lines");
  }
};

}  // namespace vitslim
