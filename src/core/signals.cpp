// Implements the stop-signal flag (see signals.h) with sigaction; the handler only stores the
// signal number in a lock-free atomic (async-signal-safe).
#include "core/signals.h"

#include <atomic>
#include <csignal>

#include "core/error.h"

namespace vitslim {

namespace {
// Lock-free atomic: the handler may run on any thread (MPI, OpenMP) while the main thread polls.
std::atomic<int> g_received{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal flag must be lock-free");
constexpr int kSignals[] = {SIGUSR1, SIGTERM};
struct sigaction g_previous[sizeof(kSignals) / sizeof(kSignals[0])];

void on_signal(int signal) {
  int none = 0;
  g_received.compare_exchange_strong(none, signal);
}
}  // namespace

StopSignals::StopSignals() {
  g_received.store(0);
  struct sigaction action = {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (size_t k = 0; k < sizeof(kSignals) / sizeof(kSignals[0]); ++k) {
    if (sigaction(kSignals[k], &action, &g_previous[k]) != 0) throw Error("cannot install the SIGUSR1/SIGTERM handler");
  }
}

StopSignals::~StopSignals() {
  for (size_t k = 0; k < sizeof(kSignals) / sizeof(kSignals[0]); ++k) sigaction(kSignals[k], &g_previous[k], nullptr);
}

int StopSignals::received() { return g_received.load(); }

}  // namespace vitslim
