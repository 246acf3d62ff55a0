// Chooses the communicator backend for a device (see communicator.h). The only file that needs
// LibTorch's CUDA headers (for the current stream), compiled in when LibTorch is a CUDA build.
#include "core/error.h"
#include "dist/communicator.h"
#include "dist/mpi_session.h"

#if defined(VITSLIM_TORCH_CUDA) && defined(VITSLIM_HAVE_NCCL)
#include <c10/cuda/CUDAStream.h>

#include "dist/nccl_communicator.h"
#endif

namespace vitslim::dist {

std::unique_ptr<Communicator> make_communicator(const MpiSession& mpi, Device device, int cuda_index,
                                                const CommOptions& options) {
  if (device != Device::Cuda || mpi.world_size() == 1) return make_cpu_communicator(mpi, options);
#if defined(VITSLIM_TORCH_CUDA) && defined(VITSLIM_HAVE_NCCL)
  const auto index = static_cast<c10::DeviceIndex>(cuda_index);
  // Asked at every call: the calling thread's current stream of the GPU, as ProcessGroupNCCL does.
  auto current = [index] { return static_cast<void*>(c10::cuda::getCurrentCUDAStream(index).stream()); };
  return std::make_unique<NcclCommunicator>(mpi, cuda_index, current, options);
#else
  (void)cuda_index;
  throw Error(cat("--device cuda with ", mpi.world_size(), " ranks needs NCCL and a CUDA build of LibTorch; this ",
                  "build has ",
#if defined(VITSLIM_HAVE_NCCL)
                  "NCCL but a CPU LibTorch"
#else
                  "no NCCL"
#endif
                  ));
#endif
}

}  // namespace vitslim::dist
