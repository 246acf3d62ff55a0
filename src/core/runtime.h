// Runtime settings every job shares (threads, seed, quiet) and the compute device enum, each
// declared once with its option.
#pragma once

#include <cstdint>

#include "core/options.h"

namespace vitslim {

// Caps that keep a typo from exhausting a machine (a thread or a batch each is far above use).
inline constexpr double kMaxThreads = 1024;
inline constexpr double kMaxBatch = 1 << 20;

// Auto: CUDA when every rank sees a CUDA device, else the CPU (resolved by dist::open_device).
enum class Device { Cpu, Cuda, Auto };
inline const EnumNames<Device> kDeviceNames = {{Device::Cpu, "cpu"}, {Device::Cuda, "cuda"}, {Device::Auto, "auto"}};
inline const char* to_string(Device d) { return enum_name(kDeviceNames, d); }
// --bf16, the same switch in every job that computes with the model (model/autocast.h).
inline constexpr const char* kBf16Help =
    "bf16 autocast: matrix products in bfloat16; LayerNorm, softmax, losses, optimizer and statistics in float32 "
    "(CUDA, or a CPU with AVX512-BF16/AMX; emulated and slow on other CPUs)";

// Where every job that runs the model computes: --device and --tf32, declared once here.
struct ComputeConfig {
  Device device = Device::Auto;
  bool tf32 = true;  // TF32 tensor-core matrix products for float32 on CUDA (no effect on the CPU)

  void declare(Options& o) {
    o.group("compute", "Device");
    o.add_enum("device", device,
               "cpu, cuda (one GPU per rank, chosen by local rank), or auto: cuda when every rank sees a CUDA "
               "device, else cpu",
               kDeviceNames);
    o.add_switch("tf32", tf32,
                 "TF32 tensor cores for float32 matrix products on CUDA (about 8x an H100's float32 rate; 10-bit "
                 "mantissa inputs); --tf32=false for full float32, as the CPU parity checks use");
  }
};

struct RuntimeConfig {
  int threads = 0;  // 0: the affinity's cores, divided among the node's ranks that share them
  uint64_t seed = 0;
  bool quiet = false;

  void declare(Options& o) {
    o.group("runtime", "Runtime");
    o.add("threads", threads,
          "compute threads per process (0: the cores of its CPU affinity, shared among the ranks of the node "
          "whose affinities overlap)",
          closed(0, kMaxThreads));
    o.add("seed", seed, "seed of initialisation and sampling");
    o.add_switch("quiet", quiet, "no progress lines");
  }
};

}  // namespace vitslim
