// Implements nccl_info.h for builds with NCCL: asks the linked libraries.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cctype>

#include "core/error.h"
#include "dist/nccl_info.h"

namespace vitslim::dist {

std::string nccl_description() {
  int version = 0;
  if (ncclGetVersion(&version) != ncclSuccess) return "NCCL: version unavailable";
  // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
  return cat("NCCL ", version / 10000, ".", (version % 10000) / 100, ".", version % 100);
}

std::string gpu_bus_id(int index) {
  constexpr int kBusIdBytes = 32;
  char text[kBusIdBytes] = {};
  const cudaError_t rc = cudaDeviceGetPCIBusId(text, kBusIdBytes, index);
  if (rc != cudaSuccess) {
    throw Error(cat("cudaDeviceGetPCIBusId(", index, ") failed: ", cudaGetErrorString(rc)));
  }
  std::string id = text;
  for (char& c : id) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return id;
}

}  // namespace vitslim::dist
