// Implements reading and validating run descriptions (see run_description.h).
#include "run_description.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.h"
#include "jobs/job.h"

namespace vitslim::launch {

namespace {

// The jobs a run description can launch: those whose registry entry names their output flags.
bool launchable(const std::string& name) {
  for (const Job& job : jobs()) {
    if (job.name == name) return !job.launch_outputs.empty();
  }
  return false;
}

// The keys the launcher owns in a job's section: every option the job declares as something it
// writes (PathRole::OutputFile/OutputDir: --out, --json, --csv, --sample, --save-logits, ...),
// every flag of its launch_outputs (merge's --checkpoint), and --config.
std::set<std::string> owned_keys(const std::string& name) {
  const Job& job = find_job(name);
  Config config;
  if (job.defaults) job.defaults(config);
  Options options;
  job.declare(options, config);
  std::set<std::string> keys = {"config"};
  for (const Option& o : options.all()) {
    if (o.role == PathRole::OutputFile || o.role == PathRole::OutputDir) keys.insert(o.flag);
  }
  static const std::regex kFlag(R"(--([a-z][a-z0-9-]*)=)");
  for (auto it = std::sregex_iterator(job.launch_outputs.begin(), job.launch_outputs.end(), kFlag);
       it != std::sregex_iterator(); ++it) {
    keys.insert((*it)[1].str());
  }
  return keys;
}
// Values that go into #SBATCH lines unquoted: a conservative character set, so no value can
// end the directive or reach a shell.
const std::regex kSlurmValue(R"([A-Za-z0-9_.:,+\-=/]*)");
const std::regex kOptionKey(R"([a-z][a-z0-9-]*)");
const std::regex kRatio(R"(0?\.[0-9]+)");
// A run name becomes a file name under output_dir and a Slurm job name: no path, no leading dot or dash.
const std::regex kRunName(R"([A-Za-z0-9_][A-Za-z0-9_.+\-]*)");
// Counts far above any cluster's, so that products such as nodes x tasks_per_node stay exact.
constexpr int64_t kMaxNodes = 100000;
constexpr int64_t kMaxTasksPerNode = 1024;
constexpr int64_t kMaxCpusPerTask = 1024;
constexpr int64_t kMaxGpusPerNode = 64;
constexpr int64_t kMaxSignalSeconds = 24 * 3600;

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// A `;` or `#` after whitespace starts a comment that runs to the end of the line (INI habit).
std::string strip_comment(const std::string& line) {
  for (size_t i = 1; i < line.size(); ++i) {
    if ((line[i] == ';' || line[i] == '#') && (line[i - 1] == ' ' || line[i - 1] == '\t')) return line.substr(0, i);
  }
  return line;
}

int64_t positive(const std::string& value, const std::string& where, int64_t max) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || v <= 0) throw Error(cat(where, ": '", value, "' is not a positive integer"));
  if (v > max) throw Error(cat(where, ": ", value, " is more than ", max));
  return v;
}

// Control characters (a NUL, a carriage return inside a value, escapes) cannot reach a script.
void check_printable(const std::string& line, const std::string& where) {
  for (unsigned char ch : line) {
    if ((ch < ' ' && ch != '\t' && ch != '\r') || ch == 0x7F) {
      throw Error(cat(where, ": control character 0x", std::hex, static_cast<int>(ch), " in the line"));
    }
  }
}

std::string slurm_value(const std::string& value, const std::string& where) {
  if (!std::regex_match(value, kSlurmValue)) {
    throw Error(cat(where, ": '", value, "' has characters a Slurm directive cannot carry safely"));
  }
  return value;
}

}  // namespace

std::string launchable_list() {
  std::string out;
  for (const Job& job : jobs()) {
    if (!job.launch_outputs.empty()) out += (out.empty() ? "" : ", ") + job.name;
  }
  return out;
}

namespace {

void read_sweep_key(RunDescription& d, const std::string& key, const std::string& value, const std::string& at) {
  if (key == "ratios") {
    std::string item;
    std::istringstream list(value);
    while (std::getline(list, item, ',')) {
      item = trim(item);
      if (!std::regex_match(item, kRatio)) throw Error(cat(at, ": '", item, "' is not a ratio like 0.25"));
      d.ratios.push_back(item);
    }
  } else if (key == "search") {
    d.search = value;
  } else {
    throw Error(cat(at, ": unknown key in [sweep] (ratios, search)"));
  }
}

void read_launch_key(RunDescription& d, const std::string& key, const std::string& value, const std::string& at) {
  const std::map<std::string, std::string*> text = {{"job", &d.job},
                                                    {"mode", &d.mode},
                                                    {"output_dir", &d.output_dir},
                                                    {"binary", &d.binary},
                                                    {"mpiexec", &d.mpiexec}};
  const std::map<std::string, std::string*> slurm = {
      {"name", &d.name}, {"time", &d.time}, {"partition", &d.partition}, {"account", &d.account}, {"qos", &d.qos}};
  const std::map<std::string, std::pair<int64_t*, int64_t>> counts = {
      {"nodes", {&d.nodes, kMaxNodes}},
      {"tasks_per_node", {&d.tasks_per_node, kMaxTasksPerNode}},
      {"cpus_per_task", {&d.cpus_per_task, kMaxCpusPerTask}},
      {"signal_seconds", {&d.signal_seconds, kMaxSignalSeconds}}};
  if (auto it = text.find(key); it != text.end()) {
    *it->second = value;
  } else if (auto sl = slurm.find(key); sl != slurm.end()) {
    *sl->second = slurm_value(value, at);
  } else if (auto n = counts.find(key); n != counts.end()) {
    *n->second.first = positive(value, at, n->second.second);
  } else if (key == "gpus_per_node") {
    d.gpus_per_node = value == "0" ? 0 : positive(value, at, kMaxGpusPerNode);
  } else {
    throw Error(cat(at, ": unknown key in [launch]"));
  }
}

// One `key = value` line of `section`.
void read_key(RunDescription& d, const std::string& section, const std::string& text, const std::string& where,
              std::set<std::string>& seen) {
  const size_t eq = text.find('=');
  const std::string key = trim(eq == std::string::npos ? text : text.substr(0, eq));
  const std::string value = eq == std::string::npos ? "" : trim(text.substr(eq + 1));
  const std::string at = cat(where, ": ", key);
  if (launchable(section)) {
    if (!std::regex_match(key, kOptionKey)) throw Error(cat(where, ": '", key, "' is not an option name"));
    if (owned_keys(section).count(key)) {
      throw Error(cat(at, ": output paths are set by the launcher (output_dir in [launch]); remove it"));
    }
    if (!seen.insert(section + "." + key).second) throw Error(cat(at, ": given twice"));
    d.options[section].emplace_back(key, value);
    return;
  }
  if (!seen.insert(section + "." + key).second) throw Error(cat(at, ": given twice"));
  if (section == "sweep") {
    read_sweep_key(d, key, value, at);
  } else {
    read_launch_key(d, key, value, at);
  }
}

// Settings that only make sense together.
void check_description(const RunDescription& d, const std::string& path) {
  if (!launchable(d.job) && d.job != "chain") {
    throw Error(cat(path, ": job '", d.job, "' is not one of ", launchable_list(), ", chain"));
  }
  slurm_value(d.output_dir, cat(path, ": output_dir"));
  if (d.mode != "local" && d.mode != "sbatch")
    throw Error(cat(path, ": mode must be local or sbatch, got '", d.mode, "'"));
  if (d.output_dir.empty()) throw Error(cat(path, ": output_dir is empty"));
  if (!std::regex_match(d.name, kRunName)) {
    throw Error(cat(path, ": name '", d.name, "' must be letters, digits, _ . + - (no path, no leading . or -)"));
  }
  if (d.output_dir.front() == '-') throw Error(cat(path, ": output_dir '", d.output_dir, "' starts with '-'"));
  if (d.job == "chain" && !d.sweep()) throw Error(cat(path, ": job = chain needs [sweep] ratios"));
  if (d.job == "chain" && d.mode != "sbatch") {
    throw Error(cat(path, ": job = chain submits dependent Slurm jobs; mode = sbatch"));
  }
  if (d.sweep()) {
    if (d.job != "train" && d.job != "chain") {
      throw Error(cat(path, ": a [sweep] over ratios runs train or chain, not ", d.job));
    }
    if (d.job == "train" && d.search.empty()) {
      throw Error(cat(path, ": [sweep] ratios need search = <vitslim search --json result>"));
    }
    for (const auto& [key, value] : d.options_of("train")) {
      if (key == "remove-layers")
        throw Error(cat(path, ": [sweep] sets --remove-layers per task; remove it from [train]"));
    }
  }
  if (d.mode == "local" && d.nodes > 1) throw Error(cat(path, ": mode = local runs on this machine; nodes must be 1"));
  if (d.mode == "local" && d.sweep()) {
    throw Error(cat(path,
                    ": a [sweep] is a Slurm job array (mode = sbatch); mode = local runs one job, so run "
                    "each ratio as its own train"));
  }
}

}  // namespace

RunDescription read_run_description(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(cat("run description ", path, ": cannot open"));
  RunDescription d;
  d.file = path;
  std::string section, line;
  std::set<std::string> seen;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = cat(path, ":", number);
    check_printable(line, where);
    const std::string text = trim(strip_comment(line));
    if (text.empty() || text[0] == '#' || text[0] == ';') continue;
    if (text.front() == '[') {
      if (text.back() != ']') throw Error(cat(where, ": malformed section header '", text, "'"));
      section = trim(text.substr(1, text.size() - 2));
      if (section != "launch" && section != "sweep" && !launchable(section)) {
        throw Error(cat(where, ": unknown section [", section,
                        "] (expected [launch], [sweep] or a job: ", launchable_list(), ")"));
      }
      continue;
    }
    if (section.empty()) throw Error(cat(where, ": a key before any [section]"));
    read_key(d, section, text, where, seen);
  }
  if (d.cpus_per_task == 0) d.cpus_per_task = d.gpus_per_node > 0 ? kCpusPerGpuRank : 1;
  check_description(d, path);
  return d;
}

std::vector<std::pair<std::string, std::string>> RunDescription::eval_options() const {
  std::vector<std::pair<std::string, std::string>> out = options_of("eval");
  for (const auto& [key, value] : options_of("train")) {
    if (key != "device" && key != "tf32") continue;
    const bool given = std::any_of(out.begin(), out.end(), [&](const auto& kv) { return kv.first == key; });
    if (!given) out.emplace_back(key, value);
  }
  return out;
}

const std::vector<std::pair<std::string, std::string>>& RunDescription::options_of(const std::string& job) const {
  static const std::vector<std::pair<std::string, std::string>> kNone;
  auto it = options.find(job);
  return it == options.end() ? kNone : it->second;
}

}  // namespace vitslim::launch
