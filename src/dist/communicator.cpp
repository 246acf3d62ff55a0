// Implements the Local and MPI communicator backends (see communicator.h). The MPI backend works
// on a private duplicate of MPI_COMM_WORLD so its collectives never interleave with the session's.
#include "dist/communicator.h"

#include <mpi.h>

#include <cstring>

#include "core/error.h"
#include "dist/mpi_session.h"

namespace vitslim::dist {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: return 4;
    case DType::Float64:
    case DType::Int64: return 8;
  }
  return 0;
}

namespace {

class DoneWork : public Work {
 public:
  void wait() override {}
  bool test() override { return true; }
};

// One process: every collective is the identity.
class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  std::unique_ptr<Work> allreduce_sum_async(void*, int64_t, DType) override { return std::make_unique<DoneWork>(); }
  void allreduce_max(void*, int64_t, DType) override {}
  void broadcast(void*, int64_t, int) override {}
  void allgather(const void* data, int64_t bytes, void* out) override {
    std::memcpy(out, data, static_cast<size_t>(bytes));
  }
};

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int64: return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}

int checked_count(int64_t count, const char* what) {
  if (count < 0 || count > INT32_MAX) throw Error(cat(what, ": ", count, " elements exceed one MPI message"));
  return static_cast<int>(count);
}

class MpiWork : public Work {
 public:
  MpiWork(MPI_Request request, int rank) : request_(request), rank_(rank) {}
  ~MpiWork() override {
    if (request_ != MPI_REQUEST_NULL) MPI_Wait(&request_, MPI_STATUS_IGNORE);  // never leave it dangling
  }
  void wait() override { check_mpi_call(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait(allreduce)", rank_); }
  bool test() override {
    int done = 0;
    check_mpi_call(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "MPI_Test(allreduce)", rank_);
    return done != 0;
  }

 private:
  MPI_Request request_;
  int rank_;
};

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(const MpiSession& mpi) : rank_(mpi.rank()), size_(mpi.world_size()) {
    check_mpi_call(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup", rank_);
  }
  ~MpiCommunicator() override { MPI_Comm_free(&comm_); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  std::unique_ptr<Work> allreduce_sum_async(void* data, int64_t count, DType dtype) override {
    MPI_Request request = MPI_REQUEST_NULL;
    check_mpi_call(MPI_Iallreduce(MPI_IN_PLACE, data, checked_count(count, "all-reduce"), mpi_type(dtype), MPI_SUM,
                                  comm_, &request),
                   "MPI_Iallreduce", rank_);
    return std::make_unique<MpiWork>(request, rank_);
  }
  void allreduce_max(void* data, int64_t count, DType dtype) override {
    check_mpi_call(MPI_Allreduce(MPI_IN_PLACE, data, checked_count(count, "all-reduce"), mpi_type(dtype), MPI_MAX, comm_),
                   "MPI_Allreduce(max)", rank_);
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    check_mpi_call(MPI_Bcast(data, checked_count(bytes, "broadcast"), MPI_BYTE, root, comm_), "MPI_Bcast", rank_);
  }
  void allgather(const void* data, int64_t bytes, void* out) override {
    const int n = checked_count(bytes, "all-gather");
    check_mpi_call(MPI_Allgather(data, n, MPI_BYTE, out, n, MPI_BYTE, comm_), "MPI_Allgather", rank_);
  }

 private:
  int rank_, size_;
  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace

std::unique_ptr<Communicator> make_cpu_communicator(const MpiSession& mpi) {
  if (!mpi.active() || mpi.world_size() == 1) return std::make_unique<LocalCommunicator>();
  return std::make_unique<MpiCommunicator>(mpi);
}

}  // namespace vitslim::dist
