// The job registry: each job is one file (jobs/<name>_job.cpp) that declares its name, one-line
// summary, options, validation and run function in a Job value; main.cpp, `vitslim --help`,
// `--dump-config` and the launcher's job list all come from jobs(). Torch-free header.
#pragma once

#include <string>
#include <vector>

#include "jobs/config.h"

namespace vitslim::dist {
class MpiSession;
}

namespace vitslim {

// What a finished job reports up: whether it completed or a signal stopped it (resumable).
struct JobResult {
  bool stopped_by_signal = false;
};

struct Job {
  std::string name;
  std::string summary;
  // Job-specific defaults, set before the declarations (nullptr: none).
  void (*defaults)(Config& config) = nullptr;
  // Binds the job's options to the fields of `config` (defaults: the fields' values); changes no field.
  void (*declare)(Options& options, Config& config) = nullptr;
  // Checks across parts (ranges are checked by the declarations); throws Error naming the flag.
  void (*validate)(const Config& config) = nullptr;
  JobResult (*run)(const Config& config, const dist::MpiSession& mpi) = nullptr;
  // Output flags the launcher appends; "{out}" stands for the run's output directory, "{format}"
  // for the job's --format (default onnx).
  std::string launch_outputs;
  // SIGUSR1/SIGTERM stop it at its next safe point (a checkpoint) instead of ending the process;
  // main arms the handler before anything else, so a signal during start-up is not lost.
  bool stops_at_signal = false;
};

// A Job from its parts (the job files' one-line definitions).
Job make_job(const std::string& name, const std::string& summary, void (*declare)(Options&, Config&),
             void (*validate)(const Config&), JobResult (*run)(const Config&, const dist::MpiSession&),
             const std::string& launch_outputs = "", void (*defaults)(Config&) = nullptr);

// Every job, in the order `vitslim --help` lists them.
const std::vector<Job>& jobs();
// Throws Error naming the job when there is none of that name.
const Job& find_job(const std::string& name);

struct ParsedCommand {
  Config config;
  bool help = false;         // --help: print `help_text` and exit 0
  bool dump_config = false;  // --dump-config: print config_to_ini(config) and exit 0
  std::string help_text;
};

// argv[1] is the job name. Returns a validated Config; throws Error with one line naming the bad
// flag or file.
ParsedCommand parse_options(int argc, const char* const argv[]);
// The same from a job name and its arguments.
ParsedCommand parse_job_options(const std::string& job, const std::vector<std::string>& args);

// The resolved configuration of config.job as INI text (what --dump-config prints and traces
// store); parse_options() of it gives the same configuration back.
std::string config_to_ini(const Config& config);

}  // namespace vitslim
