// Peak CPU tensor memory: an allocator that wraps LibTorch's default CPU allocator and counts the
// bytes of live tensors, so a benchmark can report the peak of one phase. Memory that libraries
// allocate on their own (oneDNN scratch space) is not seen.
#pragma once

#include <cstdint>

namespace vitslim {

void install_cpu_memory_tracker();  // idempotent; affects tensors allocated from then on
int64_t cpu_tensor_bytes();         // live now
int64_t cpu_tensor_peak_bytes();    // highest since the last reset
void reset_cpu_tensor_peak();       // peak := live now

// Resident set size of this process now and its high-water mark (VmRSS / VmHWM of
// /proc/self/status) in MiB; -1 where unavailable.
double resident_mib();
double peak_resident_mib();
// This machine's physical memory in bytes (sysconf); 0 where unknown.
double physical_memory_bytes();

// glibc malloc: blocks up to 32 MiB come from the heap and up to 128 MiB of freed heap is kept.
// Image decoding allocates and frees buffers of 0.1-1 MiB per image; with glibc's defaults each
// is mmapped, faulted in and unmapped again (measured: the eval transform runs 780 -> 1030
// images/s with this). Called once at start-up.
void tune_malloc_for_images();

}  // namespace vitslim
