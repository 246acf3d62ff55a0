// The VisionTransformer of vitslim (DeiT/timm semantics, docs/method.md section 1), one class
// configured by a ModelShape. Every block carries an attention mode settable at run time:
//   Full      x = x + DropPath(Attn(LN1 x))                       (ordinary block)
//   Diluting  x = (2 - lambda) x + lambda DropPath(Attn(LN1 x))   (dilution learning, section 4)
//   Skipped   x = x                                                (NOSE measurement, section 3)
//   Removed   x = 2 x; the block owns no norm1/attn parameters and computes no attention
//             (x = x in a model whose 2x factors were folded into its weights, model/merge.h)
// followed in every mode by x = x + DropPath(MLP(LN2 x)).
// Parameter names equal timm's (blocks.{i}.attn.qkv.weight, ...), so state dicts map 1:1.
// Optional taps keep each block's attention-branch and MLP-branch outputs (before scaling and
// drop-path) of the last forward; when off they cost one branch per block.
// Token merging (ToMe, model/tome.h): a block that merges r tokens does so after its attention
// step and before its MLP, by bipartite soft matching on its attention keys (mean over heads).
// Blocks whose attention is diluting, skipped or removed merge only with mlp_blocks, on their
// input, so a model merges alike through dilution and after its merge into the compact model.
// Later attention adds log(token size) to its logits.
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
  PatchEmbedImpl(int64_t in_chans, int64_t embed_dim, int64_t patch_size);
  torch::Tensor forward(const torch::Tensor& images);  // [B, Cin, H, W] -> [B, N, C]
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t num_heads);
  torch::Tensor forward(const torch::Tensor& x) { return attend(x, {}, nullptr); }  // [B, N, C] -> [B, N, C]
  // bias: [B, 1, 1, N] added to the logits (proportional attention) or undefined; metric: if not
  // null, receives the keys summed over heads, [B, N, D] (ToMe's similarity metric: cosine of their mean).
  torch::Tensor attend(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* metric);
  // Output for the CLS query only (keys/values from all tokens): [B, N, C] -> [B, 1, C].
  torch::Tensor forward_cls(const torch::Tensor& x, const torch::Tensor& bias = {});
  int64_t num_heads;
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);  // [B, N, C] -> [B, N, C]
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// What one block merges: r tokens (0: none), and whether its attention is proportional.
struct BlockMerge {
  int64_t r = 0;
  bool prop_attn = true;
};

class BlockImpl : public torch::nn::Module {
 public:
  // drop_path: stochastic-depth rate of this block (training only).
  BlockImpl(int64_t dim, int64_t num_heads, double mlp_ratio, double drop_path);
  torch::Tensor forward(const torch::Tensor& x) { return forward(TokenStream{x, {}}, {}).x; }  // [B, N, C] -> same
  TokenStream forward(TokenStream s, const BlockMerge& merge);  // [B, N, C] -> [B, N - r, C]
  // The CLS row of forward(s) without computing the other rows' outputs: [B, N, C] -> [B, 1, C].
  // Used for the last block, where only the CLS token reaches the head (it never merges).
  torch::Tensor forward_cls(const TokenStream& s, bool prop_attn = true);

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

 private:
  torch::Tensor drop_path(const torch::Tensor& branch) const;
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

  // [B, Cin, H, W] -> [B, K]. Without taps the last block computes the CLS row only, in training
  // and inference (same logits and gradients, about 7% fewer multiply-adds for DeiT-Ti).
  torch::Tensor forward(const torch::Tensor& images);
  // The head's input, the final-norm class token: [B, Cin, H, W] -> [B, C] (forward = head of it).
  torch::Tensor forward_pooled(const torch::Tensor& images);
  torch::Tensor forward_features(const torch::Tensor& images);  // -> [B, N', C] after norm (N' after merging)
  torch::Tensor forward_head(const torch::Tensor& features);    // [B, N', C] -> [B, K]
  // Pieces of forward_features for callers that restart from a block boundary (NOSE's prefix
  // cache): embed = patches + CLS + pos_embed; run_blocks applies blocks [from, to), merging
  // tokens as token_merging() says.
  torch::Tensor embed(const torch::Tensor& images);                 // -> [B, N+1, C]
  TokenStream run_blocks(TokenStream s, int64_t from, int64_t to);  // [B, N, C] -> [B, N', C]
  torch::Tensor cls_feature(const torch::Tensor& x);                // final norm, CLS: [B, N', C] -> [B, C]

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

  // Parameters that get no weight decay (1-D tensors, pos_embed, cls_token), timm's convention.
  std::vector<std::string> no_weight_decay_names() const;
  // Where the parameters live (after ->to(device)).
  c10::Device device() const { return pos_embed.device(); }

  PatchEmbed patch_embed{nullptr};
  torch::Tensor cls_token, pos_embed;  // [1, 1, C], [1, N+1, C]
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear head{nullptr};

 private:
  void check_input(const torch::Tensor& images) const;
  ModelShape shape_;
  std::vector<Block> block_refs_;
  bool residual_folded_ = false;
  TokenMerging merging_;
};
TORCH_MODULE(VisionTransformer);

}  // namespace vitslim::model
