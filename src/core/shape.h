// The shape of a VisionTransformer, fully resolved (docs/method.md sections 1 and 8): the DeiT
// sizes plus the variant features of timm's VisionTransformer (LayerScale, register tokens,
// distillation token, pooling, pre-norm, QK-norm, QuickGELU), each named as timm's argument. It
// lives in core because the model, the data layer (input size, channels, classes) and the deploy
// layer need it; no torch.
#pragma once

#include <cstdint>
#include <string>

#include "core/options.h"

namespace vitslim {

// What reaches the head: the class token (timm global_pool='token'), the mean of the patch tokens
// (global_pool='avg', MAE/BEiT fine-tunes), or both side by side, [class token, mean of patches]
// (2C features: transformers' Dinov2ForImageClassification).
enum class GlobalPool { Token, Avg, TokenAvg };
inline const EnumNames<GlobalPool> kGlobalPoolNames = {
    {GlobalPool::Token, "token"}, {GlobalPool::Avg, "avg"}, {GlobalPool::TokenAvg, "token_avg"}};

// The MLP's activation: exact GELU, or OpenAI CLIP's QuickGELU x * sigmoid(1.702 x).
enum class Activation { Gelu, QuickGelu };
inline const EnumNames<Activation> kActivationNames = {{Activation::Gelu, "gelu"},
                                                       {Activation::QuickGelu, "quick_gelu"}};

inline constexpr double kDefaultNormEps = 1e-6;     // timm ViT LayerNorm
inline constexpr double kDefaultInitValues = 1e-5;  // LayerScale's initial gamma when none is named

struct ModelShape {
  int64_t img_size = 224;
  int64_t patch_size = 16;
  int64_t in_chans = 3;
  int64_t embed_dim = 192;
  int64_t depth = 12;
  int64_t num_heads = 3;
  double mlp_ratio = 4.0;
  int64_t num_classes = 1000;  // 0: no head (a backbone); the model outputs its pooled feature

  // Variant features; defaults are DeiT's.
  bool class_token = true;
  int64_t reg_tokens = 0;       // register tokens (DINOv2 with registers), after the class token
  bool distilled = false;       // DeiT distillation token (after the class token) and head_dist
  bool no_embed_class = false;  // pos_embed covers the patches only (DeiT-III, registers)
  GlobalPool global_pool = GlobalPool::Token;
  bool fc_norm = false;   // LayerNorm after pooling instead of the final norm on the tokens
  bool pre_norm = false;  // norm_pre after the embedding; the patch projection has no bias (CLIP)
  bool qkv_bias = true;
  bool qk_norm = false;                     // LayerNorm of each head's queries and keys
  bool layer_scale = false;                 // ls1/ls2.gamma scale each branch
  double init_values = kDefaultInitValues;  // LayerScale's initial gamma (random initialisation only)
  Activation act_layer = Activation::Gelu;
  double norm_eps = kDefaultNormEps;  // every LayerNorm's epsilon (CLIP: 1e-5)

  int64_t grid() const { return img_size / patch_size; }
  // Tokens before the patches: class, distillation, registers (never merged, never pooled by avg).
  int64_t num_prefix_tokens() const { return (class_token ? 1 : 0) + (distilled ? 1 : 0) + reg_tokens; }
  int64_t num_tokens() const { return grid() * grid() + num_prefix_tokens(); }
  int64_t pos_embed_tokens() const { return grid() * grid() + (no_embed_class ? 0 : num_prefix_tokens()); }
  // What forward returns per image: logits, or the pooled feature of a model without a head.
  // The pooled features the head reads: C, or 2C for token_avg.
  int64_t pooled_dim() const { return global_pool == GlobalPool::TokenAvg ? 2 * embed_dim : embed_dim; }
  int64_t output_dim() const { return num_classes > 0 ? num_classes : pooled_dim(); }
  bool operator==(const ModelShape& o) const;
  std::string describe() const;
  // The variant features that differ from DeiT's, as "layer_scale, reg_tokens=4" ("" for DeiT).
  std::string describe_variant() const;
};

}  // namespace vitslim
