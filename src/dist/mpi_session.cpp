// Implements the RAII MPI session (see mpi_session.h). Every MPI call is checked and reported
// with the host, rank and call site.
#include "dist/mpi_session.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <list>
#include <sstream>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/threads.h"

namespace vitslim::dist {

void check_mpi_call(int rc, const char* call, int rank, const char* file, int line) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  const std::string source = file ? file : "?";
  const size_t slash = source.find_last_of('/');  // the file's name, not the build machine's path
  throw Error(cat(call, " failed at ", slash == std::string::npos ? source : source.substr(slash + 1), ":", line,
                  " on ", host, " rank ", rank, ": ", std::string(text, static_cast<size_t>(len))));
}

#define VITSLIM_MPI(call) check_mpi_call((call), #call, rank_, __FILE__, __LINE__)

struct MpiSession::LocalComm {
  MPI_Comm comm = MPI_COMM_NULL;
  ~LocalComm() {
    if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  }
};

struct WorkClaims::Window {
  MPI_Win win = MPI_WIN_NULL;
};

struct MpiSession::PendingSends {
  std::list<std::pair<std::vector<double>, MPI_Request>> items;
};

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS"}) {
    if (std::getenv(var)) return true;
  }
  return false;
}

MpiSession::MpiSession(int* argc, char*** argv) : sends_(std::make_unique<PendingSends>()) {
  if (!launched_by_mpi()) return;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    VITSLIM_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided));
  }
  active_ = true;
  VITSLIM_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  VITSLIM_MPI(MPI_Comm_size(MPI_COMM_WORLD, &world_size_));
  local_comm_ = std::make_unique<LocalComm>();
  VITSLIM_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local_comm_->comm));
  VITSLIM_MPI(MPI_Comm_rank(local_comm_->comm, &local_rank_));
  VITSLIM_MPI(MPI_Comm_size(local_comm_->comm, &local_size_));
}

MpiSession::~MpiSession() {
  if (!active_) return;
  for (auto& item : sends_->items) MPI_Wait(&item.second, MPI_STATUS_IGNORE);
  local_comm_.reset();  // before MPI_Finalize
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

namespace {
constexpr int kSpinPolls = 1000;                      // MPI_Test at full speed first
constexpr std::chrono::microseconds kPollSleep{100};  // then this between polls
}  // namespace

void MpiSession::finish(void* request, const char* call) const {
  auto* r = static_cast<MPI_Request*>(request);
  if (deadline_seconds_ <= 0) {
    VITSLIM_MPI(MPI_Wait(r, MPI_STATUS_IGNORE));
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  for (int polls = 0;; ++polls) {
    int done = 0;
    VITSLIM_MPI(MPI_Test(r, &done, MPI_STATUS_IGNORE));
    if (done) return;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() > deadline_seconds_) {
      char host[256] = "?";
      gethostname(host, sizeof(host) - 1);
      throw Error(cat(call, " did not complete within --collective-timeout ", deadline_seconds_, " s on rank ", rank_,
                      " (", host, "): another rank is stuck or gone"));
    }
    if (polls > kSpinPolls) std::this_thread::sleep_for(kPollSleep);
  }
}

std::vector<double> MpiSession::gather(const std::vector<double>& local, int root) const {
  if (!active_) return local;
  std::vector<double> all;
  if (rank_ == root) all.resize(local.size() * static_cast<size_t>(world_size_));
  MPI_Request r;
  VITSLIM_MPI(MPI_Igather(local.data(), static_cast<int>(local.size()), MPI_DOUBLE, all.data(),
                          static_cast<int>(local.size()), MPI_DOUBLE, root, MPI_COMM_WORLD, &r));
  finish(&r, "MPI_Gather");
  return all;
}

long long MpiSession::allreduce_sum(long long value) const {
  if (!active_) return value;
  long long total = 0;
  MPI_Request r;
  VITSLIM_MPI(MPI_Iallreduce(&value, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD, &r));
  finish(&r, "MPI_Allreduce (sum)");
  return total;
}

std::vector<int64_t> MpiSession::allreduce_max(std::vector<int64_t> values) const {
  if (!active_ || values.empty()) return values;
  MPI_Request r;
  VITSLIM_MPI(MPI_Iallreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_INT64_T, MPI_MAX,
                             MPI_COMM_WORLD, &r));
  finish(&r, "MPI_Allreduce (max)");
  return values;
}

void MpiSession::barrier() const {
  if (!active_) return;
  MPI_Request r;
  VITSLIM_MPI(MPI_Ibarrier(MPI_COMM_WORLD, &r));
  finish(&r, "MPI_Barrier");
}

std::vector<int64_t> MpiSession::broadcast(std::vector<int64_t> values, int root) const {
  if (!active_) return values;
  long long n = static_cast<long long>(values.size());
  MPI_Request r;
  VITSLIM_MPI(MPI_Ibcast(&n, 1, MPI_LONG_LONG, root, MPI_COMM_WORLD, &r));
  finish(&r, "MPI_Bcast");
  values.resize(static_cast<size_t>(n));
  if (n) {
    VITSLIM_MPI(MPI_Ibcast(values.data(), static_cast<int>(n), MPI_INT64_T, root, MPI_COMM_WORLD, &r));
    finish(&r, "MPI_Bcast");
  }
  return values;
}

void MpiSession::broadcast_bytes(std::string& bytes, int root) const {
  constexpr int64_t kChunk = int64_t{1} << 30;  // MPI counts are int
  const auto size = broadcast({static_cast<int64_t>(bytes.size())}, root);
  if (!active_) return;
  bytes.resize(static_cast<size_t>(size.at(0)));
  for (int64_t at = 0; at < size[0]; at += kChunk) {
    const int n = static_cast<int>(std::min(kChunk, size[0] - at));
    MPI_Request r;
    VITSLIM_MPI(MPI_Ibcast(bytes.data() + at, n, MPI_BYTE, root, MPI_COMM_WORLD, &r));
    finish(&r, "MPI_Bcast");
  }
}

CollectiveDeadline::CollectiveDeadline(const MpiSession& mpi, double seconds)
    : mpi_(mpi), previous_(mpi.deadline_seconds_) {
  mpi_.deadline_seconds_ = seconds;
}

CollectiveDeadline::~CollectiveDeadline() { mpi_.deadline_seconds_ = previous_; }

std::vector<std::string> MpiSession::allgather_text(const std::string& text) const {
  if (!active_) return {text};
  const int n = static_cast<int>(text.size());
  std::vector<int> sizes(static_cast<size_t>(world_size_)), offsets(static_cast<size_t>(world_size_));
  MPI_Request request;
  VITSLIM_MPI(MPI_Iallgather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD, &request));
  finish(&request, "MPI_Allgather");
  long long total = 0;
  for (size_t r = 0; r < sizes.size(); ++r) {
    offsets[r] = static_cast<int>(total);
    total += sizes[r];
  }
  if (total > std::numeric_limits<int>::max()) throw Error(cat("allgather_text: ", total, " bytes are too many"));
  std::string all(static_cast<size_t>(total), '\0');
  VITSLIM_MPI(MPI_Iallgatherv(text.data(), n, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR,
                              MPI_COMM_WORLD, &request));
  finish(&request, "MPI_Allgatherv");
  std::vector<std::string> out;
  for (size_t r = 0; r < sizes.size(); ++r) out.push_back(all.substr(static_cast<size_t>(offsets[r]), sizes[r]));
  return out;
}

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

int sharing_ranks(const std::vector<std::string>& placements, size_t me) {
  const auto split = [](const std::string& p) {
    const size_t space = p.find(' ');
    return std::make_pair(p.substr(0, space), space == std::string::npos ? std::string() : p.substr(space + 1));
  };
  const auto [host, mask] = split(placements.at(me));
  int n = 0;
  for (const std::string& p : placements) {
    const auto [other_host, other_mask] = split(p);
    if (other_host == host && masks_overlap(mask, other_mask)) ++n;
  }
  return n;
}

int ranks_sharing_cores(const MpiSession& mpi) {
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  const std::vector<std::string> placements = mpi.allgather_text(cat(host, " ", affinity_text()));
  return sharing_ranks(placements, static_cast<size_t>(mpi.rank()));
}

void agree_across_ranks(const MpiSession& mpi, const std::string& what, const std::string& text) {
  if (mpi.world_size() == 1) return;
  const auto all = mpi.allgather_text(text);
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r] == all[0]) continue;
    const auto mine = lines_of(all[r]), root = lines_of(all[0]);
    size_t k = 0;
    while (k < mine.size() && k < root.size() && mine[k] == root[k]) ++k;
    auto line = [](const std::vector<std::string>& lines, size_t at) {
      return at < lines.size() ? "'" + lines[at] + "'" : std::string("nothing");
    };
    throw CollectiveError(cat("ranks disagree on their ", what, ": rank ", r, " has ", line(mine, k),
                              " where rank 0 has ", line(root, k),
                              " (start every rank with the same settings and data)"));
  }
}

void MpiSession::isend(std::vector<double> values, int dest, int tag) const {
  if (!active_) throw Error("isend without MPI");
  sends_->items.emplace_back(std::move(values), MPI_REQUEST_NULL);
  auto& item = sends_->items.back();
  VITSLIM_MPI(MPI_Isend(item.first.data(), static_cast<int>(item.first.size()), MPI_DOUBLE, dest, tag, MPI_COMM_WORLD,
                        &item.second));
  // Drop buffers whose sends completed.
  for (auto it = sends_->items.begin(); it != sends_->items.end();) {
    int done = 0;
    VITSLIM_MPI(MPI_Test(&it->second, &done, MPI_STATUS_IGNORE));
    it = done ? sends_->items.erase(it) : std::next(it);
  }
}

void MpiSession::wait_sends() const {
  for (auto& item : sends_->items) VITSLIM_MPI(MPI_Wait(&item.second, MPI_STATUS_IGNORE));
  sends_->items.clear();
}

int MpiSession::receive(std::vector<double>& values, int tag, bool block) const {
  if (!active_) return -1;
  MPI_Status status;
  int flag = 1;
  if (block) {
    VITSLIM_MPI(MPI_Probe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &status));
  } else {
    VITSLIM_MPI(MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &status));
  }
  if (!flag) return -1;
  int count = 0;
  VITSLIM_MPI(MPI_Get_count(&status, MPI_DOUBLE, &count));
  values.resize(static_cast<size_t>(count));
  VITSLIM_MPI(MPI_Recv(values.data(), count, MPI_DOUBLE, status.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  return status.MPI_SOURCE;
}

WorkClaims::WorkClaims(const MpiSession& mpi, int64_t items) : mpi_(mpi) {
  if (!mpi_.active()) {
    local_.assign(static_cast<size_t>(items), 0);
    return;
  }
  const int rank_ = mpi_.rank();
  auto window = std::make_unique<Window>();
  const MPI_Aint bytes = rank_ == 0 ? static_cast<MPI_Aint>(std::max<int64_t>(items, 1) * sizeof(int64_t)) : 0;
  VITSLIM_MPI(MPI_Win_allocate(bytes, sizeof(int64_t), MPI_INFO_NULL, MPI_COMM_WORLD, &base_, &window->win));
  window_ = std::move(window);
  if (rank_ == 0) std::fill(base_, base_ + std::max<int64_t>(items, 1), 0);
  mpi_.barrier();
  VITSLIM_MPI(MPI_Win_lock_all(0, window_->win));
}

WorkClaims::~WorkClaims() {
  if (!window_) return;
  // Unwinding from an error: freeing the window is collective and other ranks may never get
  // here; the executable aborts the job instead.
  if (std::uncaught_exceptions() > 0) {
    static_cast<void>(window_.release());  // left to MPI_Abort, deliberately not freed
    return;
  }
  MPI_Win_unlock_all(window_->win);
  MPI_Win_free(&window_->win);  // collective: every rank has finished claiming
}

bool WorkClaims::claim(int64_t item) {
  if (!window_) {
    if (local_[static_cast<size_t>(item)]) return false;
    local_[static_cast<size_t>(item)] = 1;
    return true;
  }
  const int rank_ = mpi_.rank();
  const MPI_Win win = window_->win;
  // Fetch-and-add: the first rank sees 0 (Open MPI 4.1's emulated compare-and-swap over shared
  // memory crashes; fetch-and-op is reliable there).
  int64_t one = 1, previous = -1;
  VITSLIM_MPI(MPI_Fetch_and_op(&one, &previous, MPI_INT64_T, 0, item, MPI_SUM, win));
  VITSLIM_MPI(MPI_Win_flush(0, win));
  return previous == 0;
}

void MpiSession::abort_with_error(const std::string& what) const {
  std::fprintf(stderr, "vitslim: error (rank %d): %s\n", rank_, first_line(what).c_str());
  std::fflush(stderr);
  abort(1);
}

void MpiSession::abort(int code) const {
  if (active_) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

std::string from_root(const MpiSession& mpi, const std::function<std::string()>& make) {
  if (!mpi.active() || mpi.world_size() == 1) return make();
  constexpr int kRoot = 0;
  std::string bytes;
  std::exception_ptr failure;
  if (mpi.rank() == kRoot) {
    try {
      bytes = make();
    } catch (const std::exception& e) {
      failure = std::current_exception();
      bytes = e.what();
    }
  }
  const auto failed = mpi.broadcast({failure ? 1 : 0}, kRoot);
  mpi.broadcast_bytes(bytes, kRoot);
  if (failure) std::rethrow_exception(failure);
  if (failed.at(0) != 0) throw Error(bytes);
  return bytes;
}

std::function<std::string(const std::function<std::string()>&)> root_share(const MpiSession& mpi) {
  return [&mpi](const std::function<std::string()>& make) { return from_root(mpi, make); };
}

}  // namespace vitslim::dist
