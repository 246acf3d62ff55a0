// `vitslim convert`: import a .pth/.safetensors checkpoint, export timm-named .safetensors
// (model/convert.h does the work).
#include "jobs/common.h"
#include "jobs/job.h"
#include "model/convert.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  declare_model(o, c);
  c.convert.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  if (c.model.weights.empty()) throw Error("convert: --weights is required");
  if (c.convert.out.empty()) throw Error("convert: --out is required");
}

JobResult run(const Config& c, const dist::MpiSession&) {
  model::run_convert({c.model, c.convert, c.runtime});
  return {};
}

}  // namespace

Job convert_job() {
  return make_job("convert", "import a .pth/.safetensors checkpoint and export timm-named .safetensors", declare,
                  validate, run);
}

}  // namespace vitslim
