// Implements rank-aware logging (see log.h).
#include "core/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

namespace vitslim {
namespace {
int g_rank = 0;
int g_world = 1;
bool g_quiet = false;
const auto g_loaded = std::chrono::steady_clock::now();
constexpr int kStartTimeField = 22;  // proc(5): starttime, clock ticks after boot

// Seconds from boot to this process's start, and from boot to now; false where /proc lacks them.
bool boot_relative_times(double& started, double& now) {
  std::ifstream stat("/proc/self/stat"), uptime("/proc/uptime");
  std::string line;
  if (!std::getline(stat, line) || !(uptime >> now)) return false;
  const size_t close = line.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return false;
  std::istringstream fields(line.substr(close + 1));
  std::string field;
  int k = 2;  // the fields after the name start at 3
  while (k < kStartTimeField && fields >> field) ++k;
  if (k != kStartTimeField) return false;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  started = std::stod(field) / static_cast<double>(ticks > 0 ? ticks : 100);
  return true;
}
}  // namespace

double process_seconds() {
  double started = 0, now = 0;
  try {
    if (boot_relative_times(started, now) && now >= started) return now - started;
  } catch (const std::exception&) {
    // an unexpected /proc format: fall back below
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - g_loaded).count();
}

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
