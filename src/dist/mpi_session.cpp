// Implements the RAII MPI session (see mpi_session.h). Every MPI call is checked and reported
// with the host, rank and call site.
#include "dist/mpi_session.h"

#include <mpi.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace vitslim::dist {
namespace {

void check(int rc, const char* call, int rank) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  throw Error(cat(call, " failed on ", host, " rank ", rank, ": ", std::string(text, static_cast<size_t>(len))));
}

#define VITSLIM_MPI(call) check((call), #call, rank_)

}  // namespace

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS"}) {
    if (std::getenv(var)) return true;
  }
  return false;
}

MpiSession::MpiSession(int* argc, char*** argv) {
  if (!launched_by_mpi()) return;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    VITSLIM_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  }
  active_ = true;
  VITSLIM_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  VITSLIM_MPI(MPI_Comm_size(MPI_COMM_WORLD, &world_size_));
  auto* local = new MPI_Comm;
  VITSLIM_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, local));
  local_comm_ = local;
  VITSLIM_MPI(MPI_Comm_rank(*local, &local_rank_));
  VITSLIM_MPI(MPI_Comm_size(*local, &local_size_));
}

MpiSession::~MpiSession() {
  if (!active_) return;
  if (local_comm_) {
    auto* local = static_cast<MPI_Comm*>(local_comm_);
    MPI_Comm_free(local);
    delete local;
  }
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::vector<double> MpiSession::gather(const std::vector<double>& local, int root) const {
  if (!active_) return local;
  std::vector<double> all;
  if (rank_ == root) all.resize(local.size() * static_cast<size_t>(world_size_));
  VITSLIM_MPI(MPI_Gather(local.data(), static_cast<int>(local.size()), MPI_DOUBLE, all.data(),
                         static_cast<int>(local.size()), MPI_DOUBLE, root, MPI_COMM_WORLD));
  return all;
}

long long MpiSession::allreduce_sum(long long value) const {
  if (!active_) return value;
  long long total = 0;
  VITSLIM_MPI(MPI_Allreduce(&value, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD));
  return total;
}

void MpiSession::barrier() const {
  if (active_) VITSLIM_MPI(MPI_Barrier(MPI_COMM_WORLD));
}

void MpiSession::abort(int code) const {
  if (active_) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace vitslim::dist
