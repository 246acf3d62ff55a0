// What the user asks of the model: a preset and/or explicit shape fields, weights, head reset and
// the blocks whose attention is removed, each field declared once with its option. Unset fields
// come from the preset, then from the weights file (model/presets.h resolve_shape). No torch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/shape.h"
#include "model/tome.h"

namespace vitslim {

inline constexpr double kMaxMlpRatio = 64;

struct ModelRequest {
  std::string preset;  // empty: none
  std::optional<int64_t> img_size, patch_size, in_chans, embed_dim, depth, num_heads, num_classes;
  std::optional<double> mlp_ratio;
  double drop_path = 0.0;
  std::string weights;                  // .pth / .safetensors; empty: seeded random initialisation
  bool reset_head = false;              // re-initialise the head when the class count differs
  std::vector<int64_t> removed_layers;  // blocks whose attention is removed (x -> 2x)
  model::TomeRequest tome;              // token merging (none asked: what the weights file records)

  // The model flags every model-using job takes (--remove-layers is declared by the job: it
  // names removed or diluting blocks, and may read a search result). tome_tuned_by: a job that
  // chooses --tome-r and --tome-start itself (refused as flags), or "".
  void declare(Options& o, const std::string& tome_tuned_by = "") {
    o.group("model", "Model (a preset, explicit flags, or both; weights fill the rest)");
    o.add("model", preset, "preset: deit_tiny, deit_small, deit_base (patch16_224), vit_fmnist, vit_test");
    o.add("img-size", img_size, "input resolution (pixels)", positive());
    o.add("patch-size", patch_size, "patch size (pixels)", positive());
    o.add("in-chans", in_chans, "input channels", positive());
    o.add("embed-dim", embed_dim, "embedding width C", positive());
    o.add("depth", depth, "number of blocks", positive());
    o.add("num-heads", num_heads, "attention heads", positive());
    o.add("mlp-ratio", mlp_ratio, "MLP hidden width / C", {0, kMaxMlpRatio, true, false});
    o.add("num-classes", num_classes, "classes of the head", positive());
    o.add("drop-path", drop_path, "stochastic depth rate", half_open(0, 1));
    o.add_path("weights", weights,
               ".pth (torch.save zip, {'model': ...} or flat) or .safetensors; none: seeded random init",
               PathRole::InputFile);
    o.add_switch("reset-head", reset_head, "re-initialise the head when the weights have another class count");
    tome.declare(o, tome_tuned_by);
  }
  // Cross-field checks of the shape flags and of `layers` (removed or diluting blocks).
  void validate(const std::vector<int64_t>& layers) const;
};

}  // namespace vitslim
