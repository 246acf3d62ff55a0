// Implements the choice of each rank's GPU (see gpu_select.h).
#include "dist/gpu_select.h"

#include <unistd.h>

#include <map>
#include <optional>

#include "core/cuda_device.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/mpi_session.h"
#include "dist/nccl_info.h"

namespace vitslim::dist {

namespace {
constexpr size_t kHostNameBytes = 256;

std::string host_name() {
  char host[kHostNameBytes] = "?";
  gethostname(host, sizeof(host) - 1);
  return host;
}
}  // namespace

int choose_gpu_index(int local_rank, int local_size, int visible, const std::string& host) {
  if (visible <= 0) throw Error(cat("--device cuda: no CUDA device is visible on ", host));
  if (local_size <= visible) return local_rank;
  if (visible == 1) return 0;  // bound by the launcher; check_distinct_gpus verifies it
  throw Error(cat("--device cuda: ", local_size, " ranks on ", host, " but ", visible,
                  " visible GPUs; start at most one rank per GPU (mpirun -np / srun --ntasks-per-node <= ", visible,
                  ")"));
}

void check_distinct_gpus(const std::vector<std::string>& placements) {
  std::map<std::string, size_t> first;
  for (size_t r = 0; r < placements.size(); ++r) {
    const auto [it, fresh] = first.emplace(placements[r], r);
    if (fresh) continue;
    throw CollectiveError(cat("--device cuda: ranks ", it->second, " and ", r, " share one GPU (", placements[r],
                              "); give every rank its own GPU: at most one rank per GPU on each host"));
  }
}

int select_gpu(const MpiSession& mpi) {
  const std::string host = host_name();
  const int index = choose_gpu_index(mpi.local_rank(), mpi.local_size(), cuda::device_count(), host);
  cuda::set_device(index);
  const std::vector<std::string> placements = mpi.allgather_text(cat(host, " ", gpu_bus_id(index)));
  check_distinct_gpus(placements);
  if (mpi.rank() == 0) {
    std::string line = "GPUs:";
    for (size_t r = 0; r < placements.size(); ++r) line += cat(r ? "," : "", " rank ", r, " -> ", placements[r]);
    log_info(line);
  }
  return index;
}

c10::Device open_device(const ComputeConfig& compute, const MpiSession& mpi) {
  static std::optional<c10::Device> chosen;  // GPU selection is collective and logged: once per process
  if (chosen) return *chosen;
  const Device local = cuda::resolve_device(compute.device);  // throws for cuda where there is none
  const long long with_gpu = mpi.allreduce_sum(local == Device::Cuda ? 1 : 0);
  if (with_gpu < mpi.world_size()) {
    if (compute.device == Device::Cuda) throw Error("--device cuda: a rank has no CUDA device");  // not reached
    chosen = c10::Device(c10::kCPU);
    if (compute.device == Device::Auto && mpi.rank() == 0) {
      log_info(with_gpu ? cat("device: cpu (--device auto: only ", with_gpu, " of ", mpi.world_size(),
                              " ranks see a CUDA device)")
                        : std::string("device: cpu"));
    }
    return *chosen;
  }
  const int index = select_gpu(mpi);
  cuda::set_tf32(compute.tf32);
  if (mpi.rank() == 0) log_info(cat("device: cuda, TF32 ", compute.tf32 ? "on" : "off", " for float32"));
  chosen = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  return *chosen;
}

}  // namespace vitslim::dist
