// Implements nccl_info.h for builds without NCCL (VITSLIM_NCCL=OFF or not found).
#include "dist/nccl_info.h"

#include "core/error.h"

namespace vitslim::dist {

std::string nccl_description() { return "NCCL: not built"; }

std::string gpu_bus_id(int index) { return cat("device ", index); }

}  // namespace vitslim::dist
