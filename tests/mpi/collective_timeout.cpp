// vitslim_timeout_check: a peer that hangs instead of dying, under mpiexec -np 2. Rank 1 stops
// joining collectives for good (as a rank stuck in checkpoint I/O would: it blocks until the job is
// ended) while rank 0 waits for an all-reduce with a 1 s --collective-timeout; rank 0 must stop the
// job with one error line naming its rank and step, as the trainer does, instead of waiting until
// the walltime. With the argument `barrier` rank 0 waits in an MPI barrier under a 1 s
// CollectiveDeadline instead (the MPI collectives of the trainer's sync points and evaluation).
// tests/mpi/collective_timeout.sh runs it and checks the outcome.
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <vector>

#include <unistd.h>

#include "dist/communicator.h"
#include "dist/mpi_session.h"

namespace {
constexpr double kTimeoutSeconds = 1;
constexpr int64_t kElements = 1024;
}  // namespace

// As in the trainer, the error ends every rank before the communicator unwinds: its progress
// thread is inside an all-reduce the stuck rank will never join.
int main(int argc, char** argv) {
  vitslim::dist::MpiSession mpi(&argc, &argv);
  auto comm = vitslim::dist::make_cpu_communicator(mpi, vitslim::dist::CommOptions{kTimeoutSeconds});
  try {
    std::vector<float> buffer(kElements, 1.0f);
    comm->allreduce_sum(buffer.data(), kElements, vitslim::dist::DType::Float32);  // both ranks: fine
    if (mpi.rank() == 1) {
      for (;;) pause();  // stuck until the job is ended
    }
    if (argc > 1 && std::strcmp(argv[1], "barrier") == 0) {
      const vitslim::dist::CollectiveDeadline deadline(mpi, kTimeoutSeconds);
      mpi.barrier();
      std::printf("rank %d: the barrier completed\n", mpi.rank());
      return 0;
    }
    comm->set_context("global step 7");
    comm->allreduce_sum(buffer.data(), kElements, vitslim::dist::DType::Float32);
    std::printf("rank %d: the all-reduce completed\n", mpi.rank());
    return 0;
  } catch (const std::exception& e) {
    mpi.abort_with_error(e.what());
  }
}
