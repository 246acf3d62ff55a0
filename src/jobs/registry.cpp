// Implements the job registry (see job.h): the list of jobs, option parsing through each job's
// declarations, and the INI dump of a configuration.
#include <algorithm>

#include "jobs/common.h"
#include "jobs/job.h"
#include "model/presets.h"
#include "search/result.h"

namespace vitslim {

// One definition per job file (jobs/<name>_job.cpp).
Job entropy_job();
Job search_job();
Job eval_job();
Job convert_job();
Job bench_job();
Job train_job();
Job merge_job();
Job bench_data_job();
Job pipeline_job();
Job plan_job();
Job tome_sweep_job();
Job export_job();
Job predict_job();
Job make_shards_job();
Job index_job();

const std::vector<Job>& jobs() {
  static const std::vector<Job> kJobs = {entropy_job(),  search_job(),      eval_job(),       predict_job(),
                                         convert_job(),  export_job(),      bench_job(),      tome_sweep_job(),
                                         train_job(),    merge_job(),       bench_data_job(), plan_job(),
                                         pipeline_job(), make_shards_job(), index_job()};
  return kJobs;
}

Job make_job(const std::string& name, const std::string& summary, void (*declare)(Options&, Config&),
             void (*validate)(const Config&), JobResult (*run)(const Config&, const dist::MpiSession&),
             const std::string& launch_outputs, void (*defaults)(Config&)) {
  Job job;
  job.name = name;
  job.summary = summary;
  job.defaults = defaults;
  job.declare = declare;
  job.validate = validate;
  job.run = run;
  job.launch_outputs = launch_outputs;
  return job;
}

void declare_model(Options& options, Config& config, const std::string& tome_tuned_by) {
  config.model.declare(options, tome_tuned_by);
  declare_remove_layers(options, config.model.removed_layers, kRemoveLayersHelp);
}

std::string train_config_ini(const Config& base, const ModelRequest& model, const DataConfig& data,
                             const TrainConfig& train) {
  Config c = base;
  c.job = "train";
  c.model = model;
  c.data = data;
  c.train = train;
  return config_to_ini(c);
}

const Job& find_job(const std::string& name) {
  for (const Job& job : jobs()) {
    if (job.name == name) return job;
  }
  throw Error(cat("unknown job '", name, "'; run `vitslim --help` for the list of jobs"));
}

void declare_remove_layers(Options& options, std::vector<int64_t>& layers, const char* help) {
  Option o;
  o.flag = "remove-layers";
  o.help = help;
  o.parse = [&layers](const std::string& v) {
    layers = v.find('@') != std::string::npos ? search::layers_from_search(v) : parse_int_list(v, "--remove-layers");
  };
  o.text = [&layers]() { return std::optional<std::string>(join_list(layers)); };
  o.samples = []() { return std::vector<std::string>{"0", "1,2", "0,1,3"}; };
  options.add_custom(std::move(o));
}

ParsedCommand parse_job_options(const std::string& name, const std::vector<std::string>& args) {
  const Job& job = find_job(name);
  ParsedCommand result;
  result.config.job = name;
  if (job.defaults) job.defaults(result.config);
  Options options;
  job.declare(options, result.config);
  const OptionRequest request = parse_declared(name, options, args);
  // Photos default to the normalisation the preset's pretrained weights expect (data/formats/dataset.h).
  if (auto norm = model::preset_normalisation(result.config.model.preset)) {
    result.config.data.preset_mean = norm->mean;
    result.config.data.preset_std = norm->std;
  }
  result.help = request.help;
  result.dump_config = request.dump_config;
  result.help_text = request.help_text;
  if (!result.help) {
    job.validate(result.config);
    std::vector<std::string> config_files;
    if (!request.config_file.empty()) config_files.push_back(request.config_file);
    refuse_colliding_paths(options, config_files);
  }
  return result;
}

ParsedCommand parse_options(int argc, const char* const argv[]) {
  if (argc < 2) throw Error("no job given; run `vitslim --help` for the list of jobs");
  return parse_job_options(argv[1], std::vector<std::string>(argv + 2, argv + argc));
}

std::string config_to_ini(const Config& config) {
  Config copy = config;  // the declarations bind to fields; the copy keeps `config` const
  Options options;
  find_job(config.job).declare(options, copy);
  return options_to_ini(config.job, options);
}

}  // namespace vitslim
