// The `vitslim` executable: parse -> validate -> run -> report. It is the only place that
// catches errors: one line naming the bad input on stderr, a non-zero exit, and under MPI an
// abort of every rank so that no rank is left waiting.
#include <ATen/Parallel.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <new>
#include <optional>
#include <string>

#include "core/cpu_memory.h"
#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/threads.h"
#include "core/version.h"
#include "dist/mpi_session.h"
#include "dist/nccl_info.h"
#include "jobs/job.h"
#include "model/presets.h"

namespace {

constexpr int kExitBadInput = 2;

void print_usage() {
  std::printf("vitslim %s: remove attention layers from Vision Transformers (NOSE + dilution)\n\n", vitslim::kVersion);
  std::printf("usage: vitslim <job> [options]     vitslim <job> --help\n\njobs:\n");
  for (const auto& job : vitslim::jobs()) std::printf("  %-10s %s\n", job.name.c_str(), job.summary.c_str());
  std::printf("\ncommon: --config FILE (INI), --dump-config, --threads N, --seed N\n");
}

// The job on every rank. Errors: one line on stderr; under MPI every rank ends.
int run_job(const vitslim::Config& config, vitslim::dist::MpiSession& mpi) {
  try {
    vitslim::set_log_rank(mpi.rank(), mpi.world_size());
    vitslim::set_log_quiet(config.runtime.quiet);
    int threads = vitslim::configure_threads(config.runtime.threads, vitslim::dist::ranks_sharing_cores(mpi));
    vitslim::log_info(vitslim::cat("vitslim ", vitslim::kVersion, " ", config.job, ": ", threads,
                                   " threads per process, ", mpi.world_size(), " process(es)"));
    // Ranks started with different settings (or binaries) would mix statistics or hang.
    vitslim::dist::agree_across_ranks(
        mpi, "settings", vitslim::cat("version ", vitslim::kVersion, "\n", vitslim::config_to_ini(config)));
    const vitslim::JobResult result = vitslim::find_job(config.job).run(config, mpi);
    // A signal-stopped run exits 0 too (Slurm requeues it), but says that it is unfinished.
    if (result.stopped_by_signal) {
      vitslim::log_info(config.job + ": stopped by a signal; rerun the same command to resume");
    }
    return 0;
  } catch (const vitslim::CollectiveError& e) {
    // Every rank stopped here together: report once, finalize MPI normally.
    if (mpi.rank() == 0) std::fprintf(stderr, "vitslim: error: %s\n", vitslim::first_line(e.what()).c_str());
    return 1;
  } catch (const std::exception& e) {
    const bool memory = dynamic_cast<const std::bad_alloc*>(&e) != nullptr;
    const std::string what = memory ? vitslim::cat("out of memory in ", config.job,
                                                   " (try a smaller --batch-size, fewer --workers, or more memory)")
                                    : vitslim::first_line(e.what());
    if (mpi.world_size() > 1) mpi.abort_with_error(what);
    std::fprintf(stderr, "vitslim: error: %s\n", what.c_str());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Past a file size limit (ulimit -f) a write fails with EFBIG and the job reports it and removes its
  // partial outputs, instead of being killed by SIGXFSZ with them left behind.
  std::signal(SIGXFSZ, SIG_IGN);
  vitslim::tune_malloc_for_images();
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    print_usage();
    return argc < 2 ? kExitBadInput : 0;
  }
  if (std::string(argv[1]) == "--version") {
    std::printf("vitslim %s (%s)\n", vitslim::kVersion, vitslim::dist::nccl_description().c_str());
    return 0;
  }
  vitslim::ParsedCommand command;
  try {
    command = vitslim::parse_options(argc, argv);
    if (command.dump_config) vitslim::model::fill_from_preset(command.config.model);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitslim: error: %s\n", e.what());
    return kExitBadInput;
  }
  if (command.help || command.dump_config) {
    std::printf("%s", command.help ? command.help_text.c_str() : vitslim::config_to_ini(command.config).c_str());
    return 0;
  }
  // Armed before MPI starts: Slurm's SIGUSR1 may come at any time, even during start-up.
  std::optional<vitslim::StopSignals> stop_signals;
  if (vitslim::find_job(command.config.job).stops_at_signal) stop_signals.emplace();
  std::unique_ptr<vitslim::dist::MpiSession> mpi;
  try {
    mpi = std::make_unique<vitslim::dist::MpiSession>(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitslim: error: %s\n", e.what());
    return 1;
  }
  return run_job(command.config, *mpi);
}
