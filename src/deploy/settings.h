// Settings of the deployment jobs, each field declared once with its option: `vitslim export`
// (a model as ONNX or safetensors) and `vitslim predict` (top-k classes of images as CSV). No torch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/error.h"
#include "core/options.h"
#include "core/runtime.h"

namespace vitslim {

enum class ExportFormat { Onnx, Safetensors, Hf };
inline const EnumNames<ExportFormat> kExportFormatNames = {
    {ExportFormat::Onnx, "onnx"}, {ExportFormat::Safetensors, "safetensors"}, {ExportFormat::Hf, "hf"}};

inline constexpr int64_t kMaxSampleImages = 1024;

struct ExportConfig {
  ExportFormat format = ExportFormat::Onnx;
  std::string out;
  std::string checkpoint;        // a training checkpoint instead of --weights (blocks may be diluting)
  std::optional<double> lambda;  // diluting blocks of --checkpoint are exported at this lambda
  bool force = false;            // overwrite an existing --out
  std::string sample;            // .safetensors: seeded random "images" and the model's "logits"
  int64_t sample_images = 4;

  void declare(Options& o) {
    o.group("export", "Export");
    o.add_enum("format", format,
               "file format: onnx (opset 17, dynamic batch), safetensors (timm names) or hf (a Hugging Face "
               "transformers folder: config.json + model.safetensors, + modeling_vitslim.py for remote code)",
               kExportFormatNames);
    o.add_path("out", out, "the exported model file (--format hf: a folder, new or empty)", PathRole::OutputFile);
    o.add_path("checkpoint", checkpoint,
               "export a training checkpoint (<out-dir>/checkpoints/step-N.safetensors) instead of --weights",
               PathRole::InputFile);
    o.add("lambda", lambda,
          "with --checkpoint: export its diluting blocks at this lambda (0: removed); required while any is > 0",
          closed(0, 1));
    o.add_switch("force", force, "overwrite --out (and --sample) when they exist");
    o.add_path("sample", sample,
               "also write seeded random input images and the model's logits for them (.safetensors), to check "
               "the export in another runtime",
               PathRole::OutputFile);
    o.add("sample-images", sample_images, "images in --sample", closed(1, kMaxSampleImages));
  }
  void validate(bool weights_given) const {
    if (out.empty()) throw Error("export: --out is required");
    if (!checkpoint.empty() && weights_given) throw Error("export: give --weights or --checkpoint, not both");
    if (lambda && checkpoint.empty()) throw Error("export: --lambda needs --checkpoint (a model with diluting blocks)");
  }
};

inline constexpr int64_t kMaxTopK = 1000;

struct PredictConfig {
  std::string images;      // an image file or a folder (searched recursively); empty: the --data-set split
  std::string image_list;  // a text file naming one image per line
  std::string out;         // CSV: file, label, top-k classes and probabilities (names with --class-index)
  int64_t topk = 5;
  std::string save_logits;    // .safetensors: "logits" [N, K] in input order
  std::string save_features;  // .safetensors: "features" [N, C], the pooled (pre-head) features
  int64_t limit = 0;          // first N images (0: all)
  bool bf16 = false;
  bool force = false;

  void declare(Options& o) {
    o.group("predict", "Prediction");
    o.add_path("images", images, "an image file, or a folder of .jpg/.jpeg/.png files (recursive, sorted)",
               PathRole::InputFile);
    o.add_path("image-list", image_list,
               "a text file naming one image file per line, relative to its folder; each line is a name as written "
               "(spaces and # included), empty lines are skipped",
               PathRole::InputFile);
    o.add_path("out", out, "predictions as CSV: one row per image, in input order", PathRole::OutputFile);
    o.add("topk", topk, "classes per image in the CSV", closed(1, kMaxTopK));
    o.add_path("save-logits", save_logits, "also write the logits [N, K] as .safetensors (input order)",
               PathRole::OutputFile);
    o.add_path("save-features", save_features,
               "also write the pooled features [N, C] (the head's input) as .safetensors (input order)",
               PathRole::OutputFile);
    o.add("limit", limit, "first N images (0: all)", at_least(0));
    o.add_switch("bf16", bf16, kBf16Help);
    o.add_switch("force", force, "overwrite outputs that exist");
  }
  void validate() const {
    if (out.empty()) throw Error("predict: --out is required");
    if (!images.empty() && !image_list.empty()) throw Error("predict: give --images or --image-list, not both");
  }
};

}  // namespace vitslim
