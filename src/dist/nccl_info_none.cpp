// Implements nccl_description() for builds without NCCL (VITSLIM_NCCL=OFF or not found).
#include "dist/nccl_info.h"

namespace vitslim::dist {

std::string nccl_description() { return "NCCL: not built"; }

}  // namespace vitslim::dist
