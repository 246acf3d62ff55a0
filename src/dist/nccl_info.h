// Which NCCL this build links (the NCCL communicator backend itself comes with the trainer), and
// the PCI bus id of a GPU through the CUDA runtime that NCCL builds link.
#pragma once

#include <string>

namespace vitslim::dist {

// "NCCL 2.30.7" when built with NCCL, "NCCL: not built" otherwise.
std::string nccl_description();

// "0000:1b:00.0", as nvidia-smi prints it, for CUDA device `index`; "device <index>" where this
// build has no CUDA runtime of its own (no NCCL).
std::string gpu_bus_id(int index);

}  // namespace vitslim::dist
