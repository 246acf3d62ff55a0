// Implements rank-aware logging (see log.h).
#include "core/log.h"

#include <cstdio>
#include <ctime>

namespace vitslim {
namespace {
int g_rank = 0;
int g_world = 1;
bool g_quiet = false;
}  // namespace

void set_log_rank(int rank, int world_size) {
  g_rank = rank;
  g_world = world_size;
}

void set_log_quiet(bool quiet) { g_quiet = quiet; }

void log_info(const std::string& line) {
  if (g_rank != 0 || g_quiet) return;
  std::fprintf(stderr, "[vitslim] %s\n", line.c_str());
  std::fflush(stderr);
}

void log_warn(const std::string& line) {
  if (g_world > 1) {
    std::fprintf(stderr, "[vitslim rank %d] warning: %s\n", g_rank, line.c_str());
  } else {
    std::fprintf(stderr, "[vitslim] warning: %s\n", line.c_str());
  }
  std::fflush(stderr);
}

std::string utc_timestamp() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::tm parts{};
  gmtime_r(&t, &parts);
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &parts);
  return buf;
}

}  // namespace vitslim
