// Which NCCL this build links (the NCCL communicator backend itself comes with the trainer).
#pragma once

#include <string>

namespace vitslim::dist {

// "NCCL 2.30.7" when built with NCCL, "NCCL: not built" otherwise.
std::string nccl_description();

}  // namespace vitslim::dist
