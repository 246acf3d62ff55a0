// `vitslim export`: a model (weights or a training checkpoint) as ONNX or .safetensors, with its
// preprocessing in the metadata (deploy/export.h does the work).
#include "data/formats/dataset.h"
#include "data/open.h"
#include "deploy/export.h"
#include "jobs/common.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  declare_model(o, c);
  c.data.declare_preprocessing(o);
  c.export_model.declare(o);
  c.compute.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.model.validate(c.model.removed_layers);
  c.export_model.validate(!c.model.weights.empty());
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  deploy::Preprocessing p;
  const Normalisation n = data::requested_normalisation(c.data);
  p.mean = n.mean;
  p.std = n.std;
  p.crop_pct = c.data.crop_pct;
  p.interpolation = enum_name(data::kFilterNames, c.data.interpolation);
  deploy::run_export({c.model, c.export_model, p, c.compute, c.runtime}, mpi);
  return {};
}

}  // namespace

Job export_job() {
  return make_job("export",
                  "a model as ONNX (checked in ONNX Runtime/OpenVINO by scripts/check_onnx.py) or safetensors", declare,
                  validate, run, "--out={out}/model.{format}");
}

}  // namespace vitslim
