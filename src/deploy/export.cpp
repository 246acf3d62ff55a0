// Implements the export job (see export.h).
#include "deploy/export.h"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include "core/atomic_file.h"
#include "core/cuda_device.h"
#include "core/error.h"
#include "core/log.h"
#include "core/options.h"
#include "deploy/hf_export.h"
#include "deploy/onnx_export.h"
#include "dist/gpu_select.h"
#include "model/checkpoint.h"
#include "model/weights/train_checkpoint.h"

namespace vitslim::deploy {
namespace fs = std::filesystem;
namespace {

// Metadata keys of the preprocessing and of blocks still diluting.
constexpr const char* kMetaInputSize = "vitslim.input_size";  // "C,H,W"
constexpr const char* kMetaMean = "vitslim.mean";
constexpr const char* kMetaStd = "vitslim.std";
constexpr const char* kMetaCropPct = "vitslim.crop_pct";
constexpr const char* kMetaInterpolation = "vitslim.interpolation";
constexpr const char* kMetaDiluting = "vitslim.diluting";  // "block:lambda,..."

std::string join_numbers(const std::vector<double>& values) {
  std::string out;
  for (double v : values) {
    if (!out.empty()) out += ',';
    out += fmt(v, 8);
  }
  return out;
}

// The checkpoint's blocks that are diluting, with their lambdas, set to `lambda` when given
// (0: removed). Refused while any is above 0 and no lambda is given.
std::map<int64_t, double> set_dilution(model::VisionTransformer& vit, const model::Checkpoint& ck,
                                       const std::optional<double>& lambda) {
  std::map<int64_t, double> diluting;
  std::string above_zero;
  for (size_t b = 0; b < ck.state.modes.size(); ++b) {
    if (!model::is_diluting(model::parse_attention_mode(ck.state.modes[b], "checkpoint " + ck.path))) {
      continue;
    }
    const double at = b < ck.state.lambdas.size() ? ck.state.lambdas[b] : 1.0;
    if (at > 0) above_zero += cat(above_zero.empty() ? "" : ", ", "block ", b, " at lambda ", fmt(at));
    diluting[static_cast<int64_t>(b)] = lambda ? *lambda : at;
  }
  if (diluting.empty() && lambda) {
    throw Error(cat("export: --lambda ", fmt(*lambda), ": checkpoint ", ck.path, " has no diluting block"));
  }
  if (!above_zero.empty() && !lambda) {
    throw Error(cat("export: checkpoint ", ck.path, " has blocks still diluting (", above_zero,
                    "); pass --lambda to export them at a chosen lambda (0: removed)"));
  }
  for (const auto& [b, at] : diluting) {
    vit->set_mode(b, at == 0 ? model::AttentionMode::Removed : model::AttentionMode::Diluting, at);
  }
  return diluting;
}

std::map<std::string, std::string> metadata(model::VisionTransformer& vit, const Preprocessing& p,
                                            const std::map<int64_t, double>& diluting) {
  const ModelShape& s = vit->shape();
  std::map<std::string, std::string> meta = {
      {kMetaInputSize, cat(s.in_chans, ",", s.img_size, ",", s.img_size)},
      {kMetaMean, join_numbers(p.mean)},
      {kMetaStd, join_numbers(p.std)},
      {kMetaCropPct, fmt(p.crop_pct, 8)},
      {kMetaInterpolation, p.interpolation},
  };
  std::string dil;
  for (const auto& [b, at] : diluting) {
    if (at > 0) dil += cat(dil.empty() ? "" : ",", b, ":", fmt(at, 8));
  }
  if (!dil.empty()) meta[kMetaDiluting] = dil;
  return meta;
}

// --format hf's --out: a folder that is new, empty, or (with --force) replaced file by file; never
// the folder an input lies in (a transformers folder exported over itself).
void check_new_folder(const std::string& dir, bool force, const std::vector<std::string>& inputs,
                      const std::string& sample) {
  for (const auto& input : inputs) {
    if (input.empty()) continue;
    const auto in = canonical_path(input), out = canonical_path(dir);
    if (in == out || path_inside(in, out))
      throw Error(cat("--out ", dir, ": holds the input ", input, "; the export would overwrite it"));
  }
  if (!sample.empty() && path_inside(canonical_path(sample), canonical_path(dir)))
    throw Error(cat("--sample ", sample, " lies inside --out ", dir, " (the transformers folder); write it elsewhere"));
  std::error_code ec;
  const auto status = fs::symlink_status(dir, ec);
  if (!fs::exists(status)) {
    check_writable_output(dir, "--out");
    return;
  }
  if (!fs::is_directory(dir, ec))
    throw Error(cat("--out ", dir, ": exists and is not a folder (--format hf writes one)"));
  if (!fs::is_empty(dir, ec) && !force)
    throw Error(cat("--out ", dir, ": a folder that is not empty; pass --force to write into it"));
  // --force replaces what an export writes; other files (old weights, shards) would be read with it.
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!hf_folder_file(name))
      throw Error(cat("--out ", dir, ": holds ", name, ", which an export does not write; choose an empty folder"));
  }
}

// The folder --format hf writes into, created now and removed again unless keep() (the export
// failed before its files were committed).
class NewFolder {
 public:
  explicit NewFolder(std::string dir) : dir_(std::move(dir)) {
    std::error_code ec;
    created_ = !fs::exists(dir_, ec);
    fs::create_directories(dir_, ec);
    if (ec) throw Error(cat("--out ", dir_, ": cannot create (", ec.message(), ")"));
  }
  ~NewFolder() {
    std::error_code ec;
    if (created_ && !kept_) fs::remove_all(dir_, ec);  // only what this run created, which its OutputSet emptied
  }
  NewFolder(const NewFolder&) = delete;
  NewFolder& operator=(const NewFolder&) = delete;
  void keep() { kept_ = true; }

 private:
  std::string dir_;
  bool created_ = false, kept_ = false;
};

// Seeded CPU images (the same on every device) and the model's logits for them on `device`.
void write_sample(model::VisionTransformer& vit, const ExportConfig& config, uint64_t seed, c10::Device device,
                  OutputSet& outputs) {
  const ModelShape& s = vit->shape();
  torch::manual_seed(seed);
  auto images = torch::randn({config.sample_images, s.in_chans, s.img_size, s.img_size});  // [N, C, H, W]
  vit->to(device);
  torch::Tensor logits;
  {
    c10::InferenceMode inference;
    logits = vit->forward(cuda::to_device(images, device)).to(torch::kCPU);  // [N, K]
  }
  model::write_safetensors(config.sample, {{"images", images}, {"logits", logits}},
                           {{"format", "pt"}, {"vitslim.model", config.out}}, &outputs);
}

// Writes `vit` in config.format into `outputs` (a transformers folder also into `folder`, removed
// again unless kept); returns the bytes written where the format counts them (ONNX), else 0. A new
// format is a compile error here until it is written.
uint64_t write_model(model::VisionTransformer& vit, const std::map<std::string, std::string>& meta,
                     const ExportConfig& config, OutputSet& outputs, std::unique_ptr<NewFolder>& folder) {
  switch (config.format) {
    case ExportFormat::Onnx:
      return write_onnx(vit, meta, config.out, &outputs);
    case ExportFormat::Hf: {
      folder = std::make_unique<NewFolder>(config.out);
      const std::string architecture = write_hf_folder(vit, meta, config.out, outputs);
      log_info(cat("export: ", config.out, " holds a transformers ", architecture,
                   architecture == "VitslimVisionTransformer" ? " (load with trust_remote_code=True)" : ""));
      return 0;
    }
    case ExportFormat::Safetensors:
      model::export_safetensors(vit, config.out, meta, &outputs);
      return 0;
  }
  throw Error("export: unknown --format");
}

}  // namespace

void run_export(const ExportInputs& in, const dist::MpiSession& mpi) {
  const ModelRequest& request = in.model;
  const ExportConfig& config = in.export_model;
  const Preprocessing& preprocessing = in.preprocessing;
  const RuntimeConfig& runtime = in.runtime;
  const c10::Device device = dist::open_device(in.compute, mpi);
  if (config.format == ExportFormat::Hf) {
    check_new_folder(config.out, config.force, {request.weights, config.checkpoint}, config.sample);
  } else {
    check_new_output(config.out, "--out", config.force);
  }
  if (!config.sample.empty()) check_new_output(config.sample, "--sample", config.force);
  std::map<int64_t, double> diluting;
  model::VisionTransformer vit{nullptr};
  if (config.checkpoint.empty()) {
    vit = model::build_model(request, runtime.seed);
  } else {
    const model::Checkpoint ck = model::read_checkpoint(config.checkpoint);
    vit = model::build_model(request, runtime.seed, model::checkpoint_model_weights(ck));
    diluting = set_dilution(vit, ck, config.lambda);
  }
  vit->eval();
  auto meta = metadata(vit, preprocessing, diluting);
  OutputSet outputs;                  // the model and its sample appear together
  std::unique_ptr<NewFolder> folder;  // --format hf: removed again when the export fails
  if (config.format != ExportFormat::Onnx && meta.count(kMetaDiluting)) {
    throw Error(cat("export --format ", enum_name(kExportFormatNames, config.format), ": blocks ", meta[kMetaDiluting],
                    " would be diluting, which only ONNX records; use --format onnx or --lambda 0"));
  }
  const uint64_t bytes = write_model(vit, meta, config, outputs, folder);
  if (!config.sample.empty()) write_sample(vit, config, runtime.seed, device, outputs);
  outputs.commit();
  if (folder) folder->keep();
  std::printf("wrote %s (%s%s): %s, attention removed in blocks [%s]%s%s\n", config.out.c_str(),
              enum_name(kExportFormatNames, config.format),
              bytes ? cat(", ", fmt(static_cast<double>(bytes) / 1e6, 4), " MB").c_str() : "",
              vit->shape().describe().c_str(), join_list(vit->removed_blocks()).c_str(),
              meta.count(kMetaDiluting) ? cat(", diluting ", meta[kMetaDiluting]).c_str() : "",
              vit->residual_folded() ? ", residual folded" : "");
  if (!config.sample.empty()) log_info(cat("sample: ", config.sample_images, " images and logits in ", config.sample));
}

}  // namespace vitslim::deploy
