// The run description `vitslim-launch` reads: an INI file with
//   [launch]   where and how: job (entropy|search|train|merge|eval|pipeline, or chain), mode
//              (local|sbatch), name, nodes, tasks_per_node, gpus_per_node, cpus_per_task, time,
//              partition, account, qos, output_dir, signal_seconds, binary, mpiexec
//   [<job>]    that job's vitslim options, `key = value` for `--key=value` (`key =` alone: a flag);
//              output paths are the launcher's (under output_dir)
//   [sweep]    ratios = 0.25,0.5 (and for job = train, search = FILE): a job array, one task per
//              ratio, each with --remove-layers SEARCH@RATIO and its own <output_dir>/ratio-<r>
// job = chain submits search -> train per ratio -> merge + eval per ratio as dependent jobs, with
// options from [search], [train] and [eval]. A `;` or `#` after whitespace starts a comment. Parsed
// once and validated in one place; every error names the file, line and key.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vitslim::launch {

// The jobs a run description can launch (their registry entries name their outputs), comma-separated.
std::string launchable_list();

// CPUs a GPU rank gets when cpus_per_task is not given: its loader decodes ~800 images/s per
// core, and one H100 trains DeiT-B at ~2,500-3,000 images/s.
inline constexpr int64_t kCpusPerGpuRank = 8;

struct RunDescription {
  std::string file;  // where it came from (messages)
  std::string job = "train";
  std::string mode = "local";  // local | sbatch
  std::string name = "vitslim";
  int64_t nodes = 1;
  int64_t tasks_per_node = 1;
  int64_t gpus_per_node = 0;
  int64_t cpus_per_task = 0;  // unset: kCpusPerGpuRank with gpus_per_node, else 1
  std::string time;           // Slurm time limit, e.g. 48:00:00 (empty: the partition's default)
  std::string partition, account, qos;
  std::string output_dir = "runs/launch";
  int64_t signal_seconds = 120;  // SIGUSR1 this long before the time limit (checkpoint + requeue)
  std::string binary = "vitslim";
  std::string mpiexec = "mpirun";
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> options;  // by job, in file order
  std::vector<std::string> ratios;                                                  // [sweep]
  std::string search;                                                               // [sweep] search result file

  int64_t tasks() const { return nodes * tasks_per_node; }
  const std::vector<std::pair<std::string, std::string>>& options_of(const std::string& job) const;
  // The evaluation step of a chain: [eval]'s options, plus [train]'s device and tf32 where [eval]
  // does not set them (the model is evaluated where it was trained).
  std::vector<std::pair<std::string, std::string>> eval_options() const;
  bool sweep() const { return !ratios.empty(); }
};

// Throws vitslim::Error naming file:line for unknown sections/keys, bad numbers, Slurm values that
// could not be passed safely, and inconsistent settings.
RunDescription read_run_description(const std::string& path);

}  // namespace vitslim::launch
