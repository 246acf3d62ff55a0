// Logging for vitslim: informational lines go to stderr on rank 0 only (set_log_rank), warnings
// from every rank carry the rank when the job has more than one. Results go to stdout or files.
#pragma once

#include <string>

namespace vitslim {

void set_log_rank(int rank, int world_size);
void set_log_quiet(bool quiet);
void log_info(const std::string& line);
void log_warn(const std::string& line);
// Seconds since this process started (its start time in /proc/self/stat; where that cannot be
// read, since vitslim's static initialisation).
double process_seconds();
// Now as ISO 8601 UTC, e.g. 2026-11-24T10:08:00Z (trace and summary timestamps).
std::string utc_timestamp();

}  // namespace vitslim
