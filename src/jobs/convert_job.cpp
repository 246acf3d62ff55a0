// `vitslim convert`: import a .pth/.safetensors checkpoint, export timm-named .safetensors
// (model/model_jobs.h does the work).
#include "jobs/common.h"
#include "jobs/job.h"
#include "model/model_jobs.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  c.model.declare(o);
  declare_remove_layers(o, c.model.removed_layers, kRemoveLayersHelp);
  c.convert.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  if (c.model.weights.empty()) throw Error("convert: --weights is required");
  if (c.convert.out.empty()) throw Error("convert: --out is required");
}

JobResult run(const Config& c, const dist::MpiSession&) {
  model::run_convert(c.model, c.convert, c.runtime);
  return {};
}

}  // namespace

Job convert_job() {
  Job job;
  job.name = "convert";
  job.summary = "import a .pth/.safetensors checkpoint and export timm-named .safetensors";
  job.declare = declare;
  job.validate = validate;
  job.run = run;
  return job;
}

}  // namespace vitslim
