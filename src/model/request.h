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

namespace model {
// "preset: deit_tiny (timm deit_tiny_patch16_224), ..." for --model's help (model/presets.cpp).
std::string preset_help();
}  // namespace model
using model::preset_help;

struct ModelRequest {
  std::string preset;  // empty: none
  std::optional<int64_t> img_size, patch_size, in_chans, embed_dim, depth, num_heads, num_classes;
  std::optional<double> mlp_ratio;
  // Variant features (core/shape.h); unset: the preset's, else what the weights show, else DeiT's.
  std::optional<bool> class_token, distilled, no_embed_class, fc_norm, pre_norm, qkv_bias, qk_norm, layer_scale;
  std::optional<int64_t> reg_tokens;
  std::optional<GlobalPool> global_pool;
  std::optional<Activation> act_layer;
  std::optional<double> init_values, norm_eps;
  double drop_path = 0.0;
  std::string weights;                  // .pth / .safetensors; empty: seeded random initialisation
  bool reset_head = false;              // re-initialise the head when the class count differs
  std::vector<int64_t> removed_layers;  // blocks whose attention is removed (x -> 2x)
  model::TomeRequest tome;              // token merging (none asked: what the weights file records)

  // The model flags every model-using job takes (--remove-layers is declared by the job: it
  // names removed or diluting blocks, and may read a search result). tome_tuned_by: a job that
  // chooses --tome-r and --tome-start itself (refused as flags, or with `job_declares_tome_r`
  // declared by that job with its own meaning), or "".
  void declare(Options& o, const std::string& tome_tuned_by = "", bool job_declares_tome_r = false) {
    o.group("model", "Model (a preset, explicit flags, or both; weights fill the rest)");
    o.add("model", preset, preset_help());
    o.add("img-size", img_size, "input resolution (pixels)", positive());
    o.add("patch-size", patch_size, "patch size (pixels)", positive());
    o.add("in-chans", in_chans, "input channels", positive());
    o.add("embed-dim", embed_dim, "embedding width C", positive());
    o.add("depth", depth, "number of blocks", positive());
    o.add("num-heads", num_heads, "attention heads", positive());
    o.add("mlp-ratio", mlp_ratio, "MLP hidden width / C", {0, kMaxMlpRatio, true, false});
    o.add("num-classes", num_classes, "classes of the head (0: none, the model outputs its pooled feature)",
          {0, Range().hi});
    declare_variant(o);
    o.add("drop-path", drop_path, "stochastic depth rate", half_open(0, 1));
    o.add_path("weights", weights,
               ".pth (torch.save zip, {'model': ...} or flat) or .safetensors; none: seeded random init",
               PathRole::InputFile);
    o.add_switch("reset-head", reset_head, "re-initialise the head when the weights have another class count");
    tome.declare(o, tome_tuned_by, job_declares_tome_r);
  }
  // The variant flags, named as timm's VisionTransformer arguments.
  void declare_variant(Options& o) {
    o.add_switch("class-token", class_token, "a class token before the patches (timm class_token)");
    o.add("reg-tokens", reg_tokens, "register tokens after the class token (DINOv2 with registers)", {0, 64});
    o.add_switch("distilled", distilled, "DeiT distillation token and head_dist; logits are the mean of both heads");
    o.add_switch("no-embed-class", no_embed_class, "pos_embed covers the patches only (DeiT-III, registers)");
    o.add_enum("global-pool", global_pool,
               "what the head reads: the class token, the mean of the patch tokens, or both side by side "
               "(token_avg: 2C features, transformers' Dinov2ForImageClassification)",
               kGlobalPoolNames);
    o.add_switch("fc-norm", fc_norm, "LayerNorm after pooling instead of on the tokens (default with avg pooling)");
    o.add_switch("pre-norm", pre_norm, "LayerNorm norm_pre after the embedding; no patch bias (CLIP)");
    o.add_switch("qkv-bias", qkv_bias, "biases of the query/key/value projection (default true)");
    o.add_switch("qk-norm", qk_norm, "LayerNorm of each head's queries and keys");
    o.add_switch("layer-scale", layer_scale, "LayerScale ls1/ls2.gamma on both branches (DeiT-III, DINOv2)");
    o.add("init-values", init_values, "LayerScale's initial gamma (random initialisation; implies --layer-scale)",
          positive());
    o.add_enum("act-layer", act_layer, "MLP activation (quick_gelu: OpenAI CLIP)", kActivationNames);
    o.add("norm-eps", norm_eps, "epsilon of every LayerNorm (default 1e-6; CLIP 1e-5)", {0, 1, true, true});
  }
  // Cross-field checks of the shape flags and of `layers` (removed or diluting blocks).
  void validate(const std::vector<int64_t>& layers) const;
};

}  // namespace vitslim
