// Implements the merge job (see merge_checkpoint.h).
#include "train/merge_checkpoint.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/version.h"
#include "model/checkpoint.h"
#include "model/merge.h"
#include "model/weights/train_checkpoint.h"

namespace vitslim::train {

namespace {

constexpr double kExactTolerance = 1e-5;  // compact vs lambda-0 model: the same arithmetic
constexpr double kFoldTolerance = 1e-5;   // folded: exact up to float rounding (relative to the logits)

struct Selection {
  std::vector<int64_t> diluting;  // at lambda 0, attention parameters still present
  std::vector<int64_t> removed;   // already removed during training
};

Selection selected_blocks(const model::Checkpoint& ck) {
  Selection s;
  for (size_t b = 0; b < ck.state.modes.size(); ++b) {
    const auto mode = model::parse_attention_mode(ck.state.modes[b], "checkpoint " + ck.path);
    const double lambda = b < ck.state.lambdas.size() ? ck.state.lambdas[b] : 1.0;
    if (model::is_diluting(mode)) {
      if (lambda != 0.0) {
        throw Error(cat("checkpoint ", ck.path, ": block ", b, " is still diluting at lambda ", fmt(lambda),
                        " (global step ", ck.state.global_step,
                        "); merge needs every diluted block at lambda 0: train past ",
                        "--decay-epochs and merge a later checkpoint"));
      }
      s.diluting.push_back(static_cast<int64_t>(b));
    } else if (model::is_removed(mode)) {
      s.removed.push_back(static_cast<int64_t>(b));
    }
  }
  if (s.diluting.empty() && s.removed.empty()) {
    throw Error(cat("checkpoint ", ck.path, ": no block was diluted; nothing to merge"));
  }
  return s;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

namespace {

struct MergeCheck {
  double diff = 0, fold_diff = 0;
  bool folded = false;
};

// The compact model must give the lambda-0 checkpoint model's logits on random inputs (and so
// must the folded one, relative to the logits' size); nothing is written otherwise.
MergeCheck check_equivalence(model::VisionTransformer& reference, model::VisionTransformer& compact,
                             const MergeConfig& m, uint64_t seed) {
  const ModelShape& shape = compact->shape();
  torch::manual_seed(seed);
  auto images = torch::randn({m.check_images, shape.in_chans, shape.img_size, shape.img_size});  // [N, C, H, W]
  c10::InferenceMode inference;
  const auto want = reference->forward(images);  // [N, K]
  MergeCheck check;
  check.diff = max_abs_diff(compact->forward(images), want);
  if (!(check.diff <= kExactTolerance)) {
    throw Error(cat("merge: the compact model's logits differ from the checkpoint's by ", check.diff, " (> ",
                    kExactTolerance, "); nothing written"));
  }
  if (!m.fold_residual) return check;
  check.folded = model::fold_residual(compact);
  check.fold_diff = max_abs_diff(compact->forward(images), want);
  const double scale = std::max(1.0, want.abs().max().item<double>());
  if (!(check.fold_diff <= kFoldTolerance * scale)) {
    throw Error(cat("merge: the folded model's logits differ by ", check.fold_diff, " (> ", kFoldTolerance * scale,
                    "); nothing written"));
  }
  return check;
}

int64_t parameter_count(model::VisionTransformer& model) {
  int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  return n;
}

// Prints the summary line and writes the JSON summary into `outputs`.
void report(const MergeConfig& m, const Selection& sel, model::VisionTransformer& reference,
            model::VisionTransformer& compact, const MergeCheck& check, OutputSet& outputs) {
  const int64_t params = parameter_count(compact), before = parameter_count(reference);
  std::printf("merge: %s -> %s, attention removed in blocks %s, %.3fM -> %.3fM parameters, max |logits diff| %.2e%s\n",
              m.checkpoint.c_str(), m.out.c_str(), join_list(compact->removed_blocks()).c_str(), before / 1e6,
              params / 1e6, check.diff,
              check.folded ? cat(", folded (diff ", fmt(check.fold_diff, 3), ")").c_str() : "");
  if (m.json.empty()) return;
  const nlohmann::json j = {{"program", "vitslim"},
                            {"version", kVersion},
                            {"job", "merge"},
                            {"checkpoint", m.checkpoint},
                            {"out", m.out},
                            {"removed_layers", compact->removed_blocks()},
                            {"merged_now", sel.diluting},
                            {"params_before", before},
                            {"params_after", params},
                            {"max_abs_diff", check.diff},
                            {"folded", check.folded},
                            {"fold_max_abs_diff", check.fold_diff},
                            {"check_images", m.check_images}};
  outputs.write(m.json, json_text(j) + "\n");
}

}  // namespace

void run_merge(const MergeInputs& in, const dist::MpiSession& mpi) {
  const MergeConfig& m = in.merge;
  const RuntimeConfig& runtime = in.runtime;
  if (mpi.rank() != 0) return;  // one process does it all
  check_writable_output(m.out, "--out");
  if (!m.json.empty()) check_writable_output(m.json, "--json");
  const model::Checkpoint ck = model::read_checkpoint(m.checkpoint);
  const Selection sel = selected_blocks(ck);
  ModelRequest request;  // the shape comes from the checkpoint's tensors and metadata
  auto reference = model::build_model(request, runtime.seed, model::checkpoint_model_weights(ck));
  auto compact = model::build_model(request, runtime.seed, model::checkpoint_model_weights(ck));
  for (int64_t b : sel.diluting) {
    reference->set_mode(b, model::AttentionMode::Diluting, 0.0);
    compact->set_mode(b, model::AttentionMode::Removed);
  }
  reference->eval();
  compact->eval();
  log_info(cat("merge: ", compact->shape().describe(), "; attention removed in blocks ",
               join_list(compact->removed_blocks()), " (", sel.diluting.size(), " merged now at lambda 0, ",
               sel.removed.size(), " removed during training)"));
  const MergeCheck check = check_equivalence(reference, compact, m, runtime.seed);
  OutputSet outputs;  // the compact model and its summary appear together
  model::export_safetensors(compact, m.out, {}, &outputs);
  report(m, sel, reference, compact, check, outputs);
  outputs.commit();
}

}  // namespace vitslim::train
