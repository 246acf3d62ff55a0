// The VisionTransformer of vitslim (timm semantics, docs/method.md sections 1 and 8), one class
// configured by a ModelShape: DeiT and the variants timm builds from the same class (LayerScale,
// register and distillation tokens, no_embed_class, average pooling with fc_norm, norm_pre,
// QK-norm, qkv without bias, QuickGELU). Every block carries an attention mode settable at run time:
//   Full      x = x + DropPath(ls1 Attn(LN1 x))                       (ordinary block)
//   Diluting  x = (2 - lambda) x + lambda DropPath(ls1 Attn(LN1 x))   (dilution learning, section 4)
//   Skipped   x = x                                                    (NOSE measurement, section 3)
//   Removed   x = 2 x; the block owns no norm1/attn/ls1 parameters and computes no attention
//             (x = x in a model whose 2x factors were folded into its weights, model/merge.h)
// followed in every mode by x = x + DropPath(ls2 MLP(LN2 x)); ls1/ls2 (LayerScale) are 1 without it.
// Parameter names equal timm's (blocks.{i}.attn.qkv.weight, blocks.{i}.ls1.gamma, dist_token, ...),
// so state dicts map 1:1.
// Optional taps keep each block's attention-branch and MLP-branch outputs (after LayerScale, before
// scaling and drop-path) of the last forward; when off they cost one branch per block.
// Token merging (ToMe, model/tome.h): a block that merges r tokens does so after its attention
// step and before its MLP, by bipartite soft matching on its attention keys (mean over heads).
// Blocks whose attention is diluting, skipped or removed merge only with mlp_blocks, on their
// input, so a model merges alike through dilution and after its merge into the compact model.
// Later attention adds log(token size) to its logits. Prefix tokens (class, distillation,
// registers) never merge; average pooling weighs each token by its size.
#pragma once

#include <torch/nn.h>

#include <string>
#include <vector>

#include "core/shape.h"
#include "model/attention_mode.h"
#include "model/token_merge.h"
#include "model/tome.h"

namespace vitslim::model {

class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t in_chans, int64_t embed_dim, int64_t patch_size, bool bias);
  torch::Tensor forward(const torch::Tensor& images);  // [B, Cin, H, W] -> [B, N, C]
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelShape& shape);
  torch::Tensor forward(const torch::Tensor& x) { return attend(x, {}, nullptr); }  // [B, N, C] -> [B, N, C]
  // bias: [B, 1, 1, N] added to the logits (proportional attention) or undefined; metric: if not
  // null, receives the keys summed over heads, [B, N, D] (ToMe's similarity metric: cosine of their mean).
  torch::Tensor attend(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* metric);
  // Output for the first `rows` queries only (keys/values from all tokens): [B, N, C] -> [B, rows, C].
  torch::Tensor forward_rows(const torch::Tensor& x, int64_t rows, const torch::Tensor& bias = {});
  int64_t num_heads;
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  torch::nn::LayerNorm q_norm{nullptr}, k_norm{nullptr};  // per head (QK-norm), or none

 private:
  torch::Tensor keys_summed(const torch::Tensor& x, const torch::Tensor& k) const;  // ToMe's metric
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden, Activation act);
  torch::Tensor forward(const torch::Tensor& x);  // [B, N, C] -> [B, N, C]
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  Activation act;
};
TORCH_MODULE(Mlp);

// LayerScale: x * gamma, one factor per channel (timm's ls1/ls2).
class LayerScaleImpl : public torch::nn::Module {
 public:
  LayerScaleImpl(int64_t dim, double init_values);
  torch::Tensor forward(const torch::Tensor& x) { return x * gamma; }  // [B, N, C] -> same
  torch::Tensor gamma;                                                 // [C]
};
TORCH_MODULE(LayerScale);

// What one block merges: r tokens (0: none) with the first `prefix` protected, and whether its
// attention is proportional.
struct BlockMerge {
  int64_t r = 0;
  int64_t prefix = 1;
  bool prop_attn = true;
};

class BlockImpl : public torch::nn::Module {
 public:
  // drop_path: stochastic-depth rate of this block (training only).
  BlockImpl(const ModelShape& shape, double drop_path);
  torch::Tensor forward(const torch::Tensor& x) { return forward(TokenStream{x, {}}, {}).x; }  // [B, N, C] -> same
  TokenStream forward(TokenStream s, const BlockMerge& merge);  // [B, N, C] -> [B, N - r, C]
  // The first `rows` rows of forward(s) without computing the others: [B, N, C] -> [B, rows, C].
  // Used for the last block where only prefix tokens reach the head (they never merge).
  torch::Tensor forward_rows(const TokenStream& s, int64_t rows, bool prop_attn = true);

  // lambda is used by Diluting only and must lie in [0, 1]. Removed is final: the attention
  // parameters are unregistered and cannot come back.
  void set_mode(AttentionMode mode, double lambda = 1.0);
  AttentionMode mode() const { return mode_; }
  double lambda() const { return lambda_; }

  // Factor a Removed block applies to the residual stream: 2, or 1 once folded (model/merge.h).
  void set_removed_factor(double factor) { removed_factor_ = factor; }
  double removed_factor() const { return removed_factor_; }

  void set_taps(bool on);
  bool taps_on() const { return taps_; }
  const torch::Tensor& attn_tap() const { return attn_tap_; }  // [B, N, C], undefined if none
  const torch::Tensor& mlp_tap() const { return mlp_tap_; }    // [B, N, C]

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
  LayerScale ls1{nullptr}, ls2{nullptr};  // none without LayerScale (ls1 also none once removed)

 private:
  torch::Tensor drop_path(const torch::Tensor& branch) const;
  torch::Tensor attention_branch(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* metric);
  torch::Tensor mlp_branch(const torch::Tensor& x);
  AttentionMode mode_ = AttentionMode::Full;
  double lambda_ = 1.0;
  double removed_factor_ = 2.0;
  double drop_path_;
  bool taps_ = false;
  torch::Tensor attn_tap_, mlp_tap_;
};
TORCH_MODULE(Block);

class VisionTransformerImpl : public torch::nn::Module {
 public:
  // Initialises like timm: truncated normal (std 0.02) for linear weights and pos_embed, zero
  // biases, cls_token ~ N(0, 1e-6), LayerNorm (1, 0). Call torch::manual_seed first.
  explicit VisionTransformerImpl(const ModelShape& shape, double drop_path_rate = 0.0);

  // [B, Cin, H, W] -> [B, K] (timm's forward; [B, C] pooled features without a head). Without taps
  // and with token pooling the last block computes the prefix rows only, in training and inference
  // (same logits and gradients, about 7% fewer multiply-adds for DeiT-Ti).
  torch::Tensor forward(const torch::Tensor& images);
  // The head's input, timm's pre-logits (class token, the mean of class and distillation tokens, or
  // the patch-token mean), after the final norm or fc_norm: [B, Cin, H, W] -> [B, C].
  torch::Tensor forward_pooled(const torch::Tensor& images);
  struct Outputs {
    torch::Tensor pooled, logits;  // [B, C], [B, K]
  };
  Outputs forward_outputs(const torch::Tensor& images);  // both from one pass
  // Every token after the last block (before the final norm): [B, Cin, H, W] -> [B, N', C].
  TokenStream forward_tokens(const torch::Tensor& images);
  // The pooled feature and the logits of the tokens leaving the last block ([B, N', C], or only
  // its prefix rows with token pooling): -> [B, C] and [B, K] (= pooled without a head).
  torch::Tensor pool(const TokenStream& s);
  torch::Tensor logits(const TokenStream& s);
  // Pieces of forward for callers that restart from a block boundary (NOSE's prefix cache): embed =
  // patches + prefix tokens + pos_embed (+ norm_pre); run_blocks applies blocks [from, to), merging
  // tokens as token_merging() says.
  torch::Tensor embed(const torch::Tensor& images);                 // -> [B, N, C]
  TokenStream run_blocks(TokenStream s, int64_t from, int64_t to);  // [B, N, C] -> [B, N', C]

  // Token merging of every block; checked against the token counts (Error naming --tome-r).
  void set_token_merging(const TokenMerging& tm);
  const TokenMerging& token_merging() const { return merging_; }
  // What block b merges in its current attention mode (a Full block, or any with mlp_blocks).
  BlockMerge merge_of(int64_t b);

  const ModelShape& shape() const { return shape_; }
  int64_t depth() const { return shape_.depth; }
  Block& block(int64_t i);
  void set_mode(int64_t block, AttentionMode mode, double lambda = 1.0);
  void set_taps(bool on);
  std::vector<int64_t> removed_blocks() const;
  // True once the 2x factors of Removed blocks live in the weights (model/merge.h): Removed blocks
  // then leave the residual stream as it is.
  void set_residual_folded(bool folded);
  bool residual_folded() const { return residual_folded_; }
  // The classes' names, in label order, when the weights name them (a transformers id2label); else empty.
  void set_class_names(std::vector<std::string> names) { class_names_ = std::move(names); }
  const std::vector<std::string>& class_names() const { return class_names_; }

  // Parameters that get no weight decay (1-D tensors, pos_embed and the prefix tokens), timm's convention.
  std::vector<std::string> no_weight_decay_names() const;
  // Where the parameters live (after ->to(device)).
  c10::Device device() const { return pos_embed.device(); }

  PatchEmbed patch_embed{nullptr};
  // [1, 1, C], [1, 1, C], [1, R, C] (undefined where the shape has none), [1, pos_embed_tokens, C]
  torch::Tensor cls_token, dist_token, reg_token, pos_embed;
  torch::nn::LayerNorm norm_pre{nullptr};  // none without pre_norm
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr}, fc_norm{nullptr};  // exactly one of them
  torch::nn::Linear head{nullptr}, head_dist{nullptr};   // none without classes / distillation

 private:
  void check_input(const torch::Tensor& images) const;
  int64_t head_rows() const;  // rows of the last block the head reads (0: all)
  ModelShape shape_;
  std::vector<Block> block_refs_;
  bool residual_folded_ = false;
  TokenMerging merging_;
  std::vector<std::string> class_names_;
};
TORCH_MODULE(VisionTransformer);

}  // namespace vitslim::model
