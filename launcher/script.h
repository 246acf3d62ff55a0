// Command lines and sbatch scripts from a run description. Every value that reaches a shell is
// single-quoted (a value with spaces, quotes or $(...) stays one literal word); values that go into
// #SBATCH directives were restricted to a safe character set when the description was read.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "run_description.h"

namespace vitslim::launch {

// 'value' with every ' written as '\'' (POSIX shell).
std::string shell_quote(const std::string& value);

// vitslim's arguments for `job` (after the binary): the job, its options from the description, and
// the launcher's output paths under `out_dir` (quoted shell words, joined by spaces).
std::string job_arguments(const RunDescription& d, const std::string& job, const std::string& out_dir);

// Runs on this machine: mpiexec -np N (flags for oversubscription and root as needed) or the
// binary alone for one task.
std::string local_command(const RunDescription& d);

// One sbatch script from the template text (@NAME@ style placeholders, see slurm/README.md).
// `stage`: the job to run (train, search, ..., or "merge-eval"); array jobs map
// SLURM_ARRAY_TASK_ID to one of the sweep's ratios.
std::string render_sbatch(const RunDescription& d, const std::string& stage, const std::string& template_text);

// Replaces every @KEY@ of `text`; an unknown placeholder is an error naming it.
std::string fill_template(const std::string& text, const std::map<std::string, std::string>& values,
                          const std::string& template_name);

}  // namespace vitslim::launch
