// Implements command lines and sbatch scripts (see script.h).
#include "script.h"

#include <unistd.h>

#include <regex>
#include <sstream>

#include "core/error.h"
#include "jobs/job.h"

namespace vitslim::launch {

namespace {

// The shell expression of a run's output directory inside scripts: arrays add the ratio.
constexpr const char* kOut = "\"$OUT\"";

std::string option_words(const std::vector<std::pair<std::string, std::string>>& options) {
  std::string out;
  for (const auto& [key, value] : options) {
    out += " " + shell_quote(value.empty() ? "--" + key : "--" + key + "=" + value);
  }
  return out;
}

std::string directives(const RunDescription& d, bool array) {
  std::ostringstream o;
  o << "#SBATCH --nodes=" << d.nodes << "\n#SBATCH --ntasks-per-node=" << d.tasks_per_node
    << "\n#SBATCH --cpus-per-task=" << d.cpus_per_task;
  if (d.gpus_per_node > 0) o << "\n#SBATCH --gpus-per-node=" << d.gpus_per_node;
  if (!d.time.empty()) o << "\n#SBATCH --time=" << d.time;
  if (!d.partition.empty()) o << "\n#SBATCH --partition=" << d.partition;
  if (!d.account.empty()) o << "\n#SBATCH --account=" << d.account;
  if (!d.qos.empty()) o << "\n#SBATCH --qos=" << d.qos;
  if (array) {
    o << "\n#SBATCH --array=0-" << d.ratios.size() - 1 << "\n#SBATCH --output=" << d.output_dir << "/%x-%A_%a.out";
  } else {
    o << "\n#SBATCH --output=" << d.output_dir << "/%x-%j.out";
  }
  return o.str();
}

}  // namespace

std::string shell_quote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string job_arguments(const RunDescription& d, const std::string& job, const std::string& out) {
  std::string args = shell_quote(job) + option_words(d.options_of(job));
  // The job's own output flags from the registry, with {out} replaced by the output directory and
  // {format} by the job's --format (export: model.onnx or model.safetensors).
  std::string outputs = find_job(job).launch_outputs;
  for (size_t at = outputs.find("{out}"); at != std::string::npos; at = outputs.find("{out}", at + out.size())) {
    outputs.replace(at, 5, out);
  }
  if (const size_t at = outputs.find("{format}"); at != std::string::npos) {
    std::string format = "onnx";
    for (const auto& [key, value] : d.options_of(job)) {
      if (key == "format") format = value;
    }
    static const std::regex kFormat("[a-z0-9]+");  // it goes into a file name, unquoted
    if (!std::regex_match(format, kFormat)) throw Error(cat("[", job, "] format = ", format, ": not a format name"));
    outputs.replace(at, 8, format);
  }
  return outputs.empty() ? args : args + " " + outputs;
}

std::string local_command(const RunDescription& d) {
  std::string binary = shell_quote(d.binary);
  std::string args = job_arguments(d, d.job, shell_quote(d.output_dir));
  if (d.tasks() == 1) return binary + " " + args;
  std::string launcher = shell_quote(d.mpiexec) + " -np " + std::to_string(d.tasks());
  if (d.tasks() > sysconf(_SC_NPROCESSORS_ONLN)) launcher += " --oversubscribe";
  if (geteuid() == 0) launcher += " --allow-run-as-root";
  return launcher + " " + binary + " " + args;
}

std::string fill_template(const std::string& text, const std::map<std::string, std::string>& values,
                          const std::string& template_name) {
  static const std::regex kPlaceholder("@([A-Z_]+)@");
  std::string out;
  auto begin = std::sregex_iterator(text.begin(), text.end(), kPlaceholder);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    const std::smatch& m = *it;
    auto v = values.find(m[1].str());
    if (v == values.end()) throw Error(cat("template ", template_name, ": unknown placeholder ", m[0].str()));
    out += text.substr(last, static_cast<size_t>(m.position(0)) - last) + v->second;
    last = static_cast<size_t>(m.position(0) + m.length(0));
  }
  return out + text.substr(last);
}

std::string render_sbatch(const RunDescription& d, const std::string& stage, const std::string& template_text) {
  const bool array = d.sweep() && stage != "search";
  std::ostringstream setup;
  setup << "export OMP_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n";
  if (array) {
    setup << "RATIOS=(";
    for (const auto& r : d.ratios) setup << " " << shell_quote(r);
    setup << " )\nRATIO=\"${RATIOS[$SLURM_ARRAY_TASK_ID]}\"\nOUT=" << shell_quote(d.output_dir) << "/ratio-\"$RATIO\"\n"
          << "REQUEUE_ID=\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"";
  } else {
    setup << "OUT=" << shell_quote(stage == "search" && d.job == "chain" ? d.output_dir + "/search" : d.output_dir)
          << "\nREQUEUE_ID=\"${SLURM_JOB_ID}\"";
  }
  const std::string srun = "run_step srun --mpi=pmix --kill-on-bad-exit=1 " + shell_quote(d.binary) + " ";
  std::ostringstream steps;
  if (stage == "merge-eval") {
    // The newest checkpoint of this ratio's training run becomes the compact model, then evaluated.
    steps << "CKPT=$(ls \"$OUT\"/checkpoints/step-*.safetensors | tail -n 1)\n"
          << "run_step srun --mpi=pmix --ntasks=1 " << shell_quote(d.binary) << " merge"
          << option_words(d.options_of("merge"))
          << " --checkpoint=\"$CKPT\" --out=\"$OUT\"/compact.safetensors --json=\"$OUT\"/merge.json || status=$?\n"
          << "[[ $status -eq 0 ]] && { " << srun << "eval" << option_words(d.eval_options())
          << " --weights=\"$OUT\"/compact.safetensors --json=\"$OUT\"/eval.json || status=$?; }";
  } else {
    std::string args = job_arguments(d, stage, kOut);
    if (array) {
      const std::string search = d.job == "chain" ? d.output_dir + "/search/search.json" : d.search;
      args += " --remove-layers=" + shell_quote(search) + "@\"$RATIO\"";
    }
    steps << srun << args << " || status=$?";
  }
  std::string run_file = d.file;  // goes into a comment line: no line breaks
  for (char& c : run_file) {
    if (c == '\n' || c == '\r') c = '?';
  }
  std::map<std::string, std::string> values = {{"RUN_FILE", run_file},
                                               {"STAGE", stage},
                                               {"NAME", d.name + (stage == d.job ? "" : "-" + stage)},
                                               {"DIRECTIVES", directives(d, array)},
                                               {"SIGNAL_SECONDS", std::to_string(d.signal_seconds)},
                                               {"SETUP", setup.str()},
                                               {"STEPS", steps.str()}};
  return fill_template(template_text, values, "vitslim.sbatch.in");
}

}  // namespace vitslim::launch
