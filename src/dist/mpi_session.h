// RAII MPI session. MPI is initialised only when the process was started by an MPI launcher
// (mpirun/mpiexec, srun --mpi=pmix), detected from the launcher's environment; a plain process
// runs as rank 0 of 1 without touching MPI. Local rank/size come from MPI_Comm_split_type
// (shared memory) so threads can be shared among the ranks of a node.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace vitslim::dist {

// Throws Error naming the MPI call, where it was made (file:line of the caller), the host and
// the rank when rc is not MPI_SUCCESS.
void check_mpi_call(int rc, const char* call, int rank, const char* file = __builtin_FILE(),
                    int line = __builtin_LINE());

// True when an MPI launcher started this process (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_SIZE).
bool launched_by_mpi();

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  bool active() const { return active_; }
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

  // Every rank sends `local` (same length everywhere); root receives world_size * n values in
  // rank order, the others an empty vector.
  std::vector<double> gather(const std::vector<double>& local, int root = 0) const;
  // Sum of an integer over ranks, on every rank.
  long long allreduce_sum(long long value) const;
  // Element-wise maximum over ranks (same length everywhere), on every rank.
  std::vector<int64_t> allreduce_max(std::vector<int64_t> values) const;
  void barrier() const;
  // Root's vector on every rank (sizes may differ before the call).
  std::vector<int64_t> broadcast(std::vector<int64_t> values, int root = 0) const;
  // Every rank's text, in rank order, on every rank (lengths may differ).
  std::vector<std::string> allgather_text(const std::string& text) const;
  // Non-blocking send; the buffer is kept until wait_sends() or the destructor.
  void isend(std::vector<double> values, int dest, int tag) const;
  void wait_sends() const;
  // Receives one message with `tag` from any rank into `values`; returns its source, or -1
  // when `block` is false and nothing is waiting.
  int receive(std::vector<double>& values, int tag, bool block) const;
  // Root's bytes on every rank (any size; chunked broadcasts).
  void broadcast_bytes(std::string& bytes, int root) const;
  // Ends every rank of the job (after a fatal error on this one).
  [[noreturn]] void abort(int code) const;
  // Prints "vitslim: error (rank R): <first line of what>" and ends every rank with exit code 1.
  // Jobs holding collective resources (NCCL, progress threads) call it before unwinding them.
  [[noreturn]] void abort_with_error(const std::string& what) const;

 private:
  friend class CollectiveDeadline;
  // Completes a started collective; with a deadline armed (CollectiveDeadline) it polls and
  // throws naming `call` once the deadline has passed.
  void finish(void* request, const char* call) const;

  // 0: wait forever. Set while a CollectiveDeadline lives: a setting of the session's waiting, not
  // of its state, so the jobs' const sessions can arm it.
  mutable double deadline_seconds_ = 0;
  bool active_ = false;
  int rank_ = 0, world_size_ = 1, local_rank_ = 0, local_size_ = 1;
  struct LocalComm;  // the node's MPI_Comm (shared memory), freed with the session
  std::unique_ptr<LocalComm> local_comm_;
  struct PendingSends;
  std::unique_ptr<PendingSends> sends_;
};

// While alive, every blocking collective of `mpi` (gather, all-reduce, barrier, broadcast,
// all-gather) that is still unfinished after `seconds` throws an Error naming the call, the rank
// and the host; the executables then end every rank with MPI_Abort, so no rank waits for a stuck
// or dead peer until the walltime. 0: no deadline. The trainer arms it with --collective-timeout.
class CollectiveDeadline {
 public:
  CollectiveDeadline(const MpiSession& mpi, double seconds);
  ~CollectiveDeadline();
  CollectiveDeadline(const CollectiveDeadline&) = delete;
  CollectiveDeadline& operator=(const CollectiveDeadline&) = delete;

 private:
  const MpiSession& mpi_;
  double previous_;
};

// Checks that every rank holds the same `text` (its settings, its data sizes): one all-gather;
// on a difference every rank throws the same CollectiveError, naming `what`, the first rank that
// differs and its first differing line beside rank 0's. Ranks that disagree would otherwise mix
// inconsistent statistics or wait forever in a collective.
void agree_across_ranks(const MpiSession& mpi, const std::string& what, const std::string& text);

// Collective: how many ranks of this host have a CPU affinity mask that overlaps this rank's,
// itself included (core/threads.h configure_threads divides the cores by it). `placements[r]` is
// rank r's "host mask"; sharing_ranks is the pure part.
int ranks_sharing_cores(const MpiSession& mpi);
int sharing_ranks(const std::vector<std::string>& placements, size_t me);

// Rank 0 runs `make` and every rank returns its bytes (one broadcast): work that every rank would
// otherwise repeat (listing a dataset of a million files). An exception on rank 0 is re-thrown
// there and reaches the other ranks as an Error with its message, so no rank waits forever.
std::string from_root(const MpiSession& mpi, const std::function<std::string()>& make);
// from_root bound to `mpi`, in the form the data layer takes (data::RootShare).
std::function<std::string(const std::function<std::string()>&)> root_share(const MpiSession& mpi);

// Claims on n work items shared by every rank, for dynamic distribution with affinity: each
// rank walks its own preferred order and claim(i) succeeds for exactly one rank per item
// (an atomic fetch-and-add on per-item flags in a window at rank 0), so idle ranks take what slow ones have
// not reached. Construction and destruction are collective.
class WorkClaims {
 public:
  WorkClaims(const MpiSession& mpi, int64_t items);
  ~WorkClaims();
  WorkClaims(const WorkClaims&) = delete;
  WorkClaims& operator=(const WorkClaims&) = delete;
  bool claim(int64_t item);

 private:
  const MpiSession& mpi_;
  std::vector<int64_t> local_;  // single process
  struct Window;                // the MPI_Win of the claims, freed collectively
  std::unique_ptr<Window> window_;
  int64_t* base_ = nullptr;
};

}  // namespace vitslim::dist
