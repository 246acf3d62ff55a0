// Implements nccl_description() for builds with NCCL: asks the linked library for its version.
#include <nccl.h>

#include "core/error.h"
#include "dist/nccl_info.h"

namespace vitslim::dist {

std::string nccl_description() {
  int version = 0;
  if (ncclGetVersion(&version) != ncclSuccess) return "NCCL: version unavailable";
  // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
  return cat("NCCL ", version / 10000, ".", (version % 10000) / 100, ".", version % 100);
}

}  // namespace vitslim::dist
