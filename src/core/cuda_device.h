// The CUDA devices of this process, through LibTorch's CUDA runtime: how many are visible, making
// one current, resolving --device and TF32, the caching allocator's peak, and copying a batch to the GPU on a
// side stream. In a build against a CPU LibTorch every function answers "no device" (count 0)
// or throws; the header needs no CUDA or LibTorch headers beyond the tensor type.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>

#include "core/runtime.h"

namespace vitslim::cuda {

// Why --device cuda cannot run here ("" when it can): `built` (a CUDA LibTorch), `visible`
// devices, and CUDA_VISIBLE_DEVICES (`visible_env`, nullptr when unset). One line naming the flag.
std::string cuda_unavailable_reason(bool built, int visible, const char* visible_env);
// --device for this process: Cuda when asked (throws cuda_unavailable_reason when it cannot
// run), Auto becomes Cuda when a device is visible, else Cpu.
Device resolve_device(Device requested);
// TF32 tensor-core math for float32 matrix products and convolutions on CUDA (cuBLAS, cuDNN);
// the CPU's arithmetic is not touched. No effect in a CPU build.
void set_tf32(bool on);

// True when this build links a CUDA LibTorch (the GPU code paths exist).
bool built_with_cuda();
// Visible CUDA devices (0 without a driver, without a device, or in a CPU build).
int device_count();
// Makes `index` the calling thread's current device (c10::cuda::set_device).
void set_device(int index);
// The caching allocator's bytes allocated on `index` now, and their peak since the last reset.
void reset_peak_memory(int index);
int64_t allocated_memory_bytes(int index);
int64_t peak_memory_bytes(int index);
// Waits for all work on device `index`.
void synchronize(int index);

// `host` (CPU memory, pinned first if it is not) on CUDA device `device`: the copy runs on the
// device's one copy stream and the current stream of `device` waits for it by an event, so the copy overlaps the
// compute already queued and the host does not wait; the result is recorded as used by the
// current stream (the allocator keeps it until the compute that reads it is done).
at::Tensor copy_to_device(const at::Tensor& host, int device);
// `t` on `device`: itself on the CPU, copy_to_device on a GPU.
at::Tensor to_device(const at::Tensor& t, c10::Device device);
// A random generator of its own on `device` (not torch's global one), seeded with `seed`.
at::Generator make_generator(c10::Device device, uint64_t seed);

}  // namespace vitslim::cuda
