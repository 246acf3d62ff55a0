// Implements the VisionTransformer and its blocks with per-block attention modes (see vit.h).
#include "model/vit.h"

#include <ATen/ops/scaled_dot_product_attention.h>

#include <cmath>

#include "core/error.h"

namespace vitslim::model {
namespace {

constexpr double kLayerNormEps = 1e-6;
constexpr double kInitStd = 0.02;
constexpr double kClsInitStd = 1e-6;
constexpr double kTruncBound = 2.0;  // timm truncates at +-2 (absolute, not in std units)

// Truncated normal by inverse CDF, as torch.nn.init.trunc_normal_.
void trunc_normal_(torch::Tensor t, double std) {
  torch::NoGradGuard no_grad;
  auto cdf = [](double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); };
  double lo = cdf(-kTruncBound / std), hi = cdf(kTruncBound / std);
  t.uniform_(2 * lo - 1, 2 * hi - 1);
  t.erfinv_();
  t.mul_(std * std::sqrt(2.0));
  t.clamp_(-kTruncBound, kTruncBound);
}

void init_linear(torch::nn::Linear& linear) {
  trunc_normal_(linear->weight, kInitStd);
  torch::NoGradGuard no_grad;
  linear->bias.zero_();
}

// x W^T + b through ATen's linear: one fused product with the bias, all of it in bfloat16 under
// autocast. LibTorch's nn::Linear::forward adds the bias in a second step for inputs of 3 or more
// dimensions, which under bf16 autocast runs in float32 with two conversions (a third of DeiT-Ti's
// bf16 inference time on the CPU).
torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return at::linear(x, layer->weight, layer->bias);
}

torch::nn::LayerNorm layer_norm(int64_t dim) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(kLayerNormEps));
}

}  // namespace

PatchEmbedImpl::PatchEmbedImpl(int64_t in_chans, int64_t embed_dim, int64_t patch_size) {
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_chans, embed_dim, patch_size).stride(patch_size)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& images) {
  return proj(images).flatten(2).transpose(1, 2);  // [B, C, g, g] -> [B, g*g, C]
}

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads) : num_heads(heads) {
  qkv = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  init_linear(qkv);
  init_linear(proj);
}

torch::Tensor AttentionImpl::attend(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* metric) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  const int64_t D = C / num_heads;
  auto parts = linear(qkv, x).reshape({B, N, 3, num_heads, D}).permute({2, 0, 3, 1, 4});  // [3, B, H, N, D]
  if (metric) {
    // The keys summed over heads (same cosine as their mean) as one small product with the key
    // weights summed over heads: cheaper than reducing the strided keys.
    auto w = qkv->weight.narrow(0, C, C).reshape({num_heads, D, C}).sum(0);  // [D, C]
    auto b = qkv->bias.narrow(0, C, C).reshape({num_heads, D}).sum(0);       // [D]
    *metric = at::linear(x, w, b);                                           // [B, N, D]
  }
  auto mask = bias.defined() ? c10::optional<at::Tensor>(bias.to(parts.scalar_type())) : c10::nullopt;
  auto out = at::scaled_dot_product_attention(parts[0], parts[1], parts[2], mask);  // [B, H, N, D], scale D^-0.5
  return linear(proj, out.transpose(1, 2).reshape({B, N, C}));                      // [B, N, C]
}

torch::Tensor AttentionImpl::forward_cls(const torch::Tensor& x, const torch::Tensor& bias) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2), D = C / num_heads;
  auto w = qkv->weight, b = qkv->bias;                                           // [3C, C], [3C]: rows q | k | v
  auto q = at::linear(x.narrow(1, 0, 1), w.narrow(0, 0, C), b.narrow(0, 0, C));  // [B, 1, C]
  auto kv = at::linear(x, w.narrow(0, C, 2 * C), b.narrow(0, C, 2 * C));         // [B, N, 2C]
  kv = kv.reshape({B, N, 2, num_heads, D}).permute({2, 0, 3, 1, 4});             // [2, B, H, N, D]
  auto mask = bias.defined() ? c10::optional<at::Tensor>(bias.to(kv.scalar_type())) : c10::nullopt;
  auto out = at::scaled_dot_product_attention(q.reshape({B, 1, num_heads, D}).transpose(1, 2), kv[0], kv[1], mask);
  return linear(proj, out.transpose(1, 2).reshape({B, 1, C}));  // [B, 1, C]
}

MlpImpl::MlpImpl(int64_t dim, int64_t hidden) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
  init_linear(fc1);
  init_linear(fc2);
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return linear(fc2, torch::gelu(linear(fc1, x)));  // exact (erf) GELU, [B, N, 4C] inside
}

BlockImpl::BlockImpl(int64_t dim, int64_t num_heads, double mlp_ratio, double drop_path) : drop_path_(drop_path) {
  norm1 = register_module("norm1", layer_norm(dim));
  attn = register_module("attn", Attention(dim, num_heads));
  norm2 = register_module("norm2", layer_norm(dim));
  mlp = register_module("mlp", Mlp(dim, static_cast<int64_t>(dim * mlp_ratio)));
}

void BlockImpl::set_mode(AttentionMode mode, double lambda) {
  if (!(lambda >= 0.0 && lambda <= 1.0)) throw Error(cat("dilution lambda must be in [0, 1], got ", lambda));
  if (mode_ == AttentionMode::Removed && mode != AttentionMode::Removed) {
    throw Error(cat("a block whose attention was removed cannot become ", to_string(mode)));
  }
  if (mode == AttentionMode::Removed && mode_ != AttentionMode::Removed) {
    unregister_module("norm1");
    unregister_module("attn");
    norm1 = nullptr;
    attn = nullptr;
  }
  mode_ = mode;
  lambda_ = mode == AttentionMode::Diluting ? lambda : 1.0;
}

void BlockImpl::set_taps(bool on) {
  taps_ = on;
  attn_tap_ = torch::Tensor();
  mlp_tap_ = torch::Tensor();
}

torch::Tensor BlockImpl::drop_path(const torch::Tensor& branch) const {
  if (!is_training() || drop_path_ == 0.0) return branch;
  const double keep = 1.0 - drop_path_;
  auto mask = torch::empty({branch.size(0), 1, 1}, branch.options()).bernoulli_(keep);  // per sample
  return branch * mask / keep;
}

TokenStream BlockImpl::forward(TokenStream s, const BlockMerge& merge) {
  // ToMe's similarity: the attention keys of a full block; the block input where attention is
  // diluting (on its way out: it merges as it will once removed), skipped or removed.
  torch::Tensor metric = s.x;
  switch (mode_) {
    case AttentionMode::Full:
    case AttentionMode::Diluting: {
      auto bias = merge.prop_attn ? size_bias(s) : torch::Tensor();
      const bool keys = mode_ == AttentionMode::Full && merge.r > 0;
      auto a = attn->attend(norm1(s.x), bias, keys ? &metric : nullptr);  // [B, N, C]
      if (taps_) attn_tap_ = a;
      s.x = mode_ == AttentionMode::Full ? s.x + drop_path(a) : (2.0 - lambda_) * s.x + lambda_ * drop_path(a);
      break;
    }
    case AttentionMode::Skipped:
      if (taps_) attn_tap_ = torch::Tensor();
      break;
    case AttentionMode::Removed:
      if (taps_) attn_tap_ = torch::Tensor();
      if (removed_factor_ != 1.0) s.x = removed_factor_ * s.x;
      break;
  }
  s = merge_tokens(s, metric, merge.r);  // [B, N - r, C]
  auto m = mlp(norm2(s.x));              // [B, N - r, C]
  if (taps_) mlp_tap_ = m;
  s.x = s.x + drop_path(m);
  return s;
}

torch::Tensor BlockImpl::forward_cls(const TokenStream& s, bool prop_attn) {
  const auto& x = s.x;
  auto cls = x.narrow(1, 0, 1);  // [B, 1, C]
  auto bias = prop_attn ? size_bias(s) : torch::Tensor();
  switch (mode_) {
    case AttentionMode::Full:
      cls = cls + drop_path(attn->forward_cls(norm1(x), bias));
      break;
    case AttentionMode::Diluting:
      cls = (2.0 - lambda_) * cls + lambda_ * drop_path(attn->forward_cls(norm1(x), bias));
      break;
    case AttentionMode::Skipped:
      break;
    case AttentionMode::Removed:
      if (removed_factor_ != 1.0) cls = removed_factor_ * cls;
      break;
  }
  return cls + drop_path(mlp(norm2(cls)));
}

VisionTransformerImpl::VisionTransformerImpl(const ModelShape& shape, double drop_path_rate) : shape_(shape) {
  const int64_t C = shape.embed_dim;
  patch_embed = register_module("patch_embed", PatchEmbed(shape.in_chans, C, shape.patch_size));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, C}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, shape.num_tokens(), C}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < shape.depth; ++i) {
    // Stochastic depth grows linearly over depth, 0 at the first block (timm).
    double rate = shape.depth > 1 ? drop_path_rate * static_cast<double>(i) / (shape.depth - 1) : 0.0;
    Block blk(C, shape.num_heads, shape.mlp_ratio, rate);
    blocks->push_back(blk);
    block_refs_.push_back(blk);
  }
  norm = register_module("norm", layer_norm(C));
  head = register_module("head", torch::nn::Linear(C, shape.num_classes));
  init_linear(head);
  trunc_normal_(pos_embed, kInitStd);
  torch::NoGradGuard no_grad;
  cls_token.normal_(0.0, kClsInitStd);
}

Block& VisionTransformerImpl::block(int64_t i) {
  if (i < 0 || i >= shape_.depth) throw Error(cat("block index ", i, " out of range (depth ", shape_.depth, ")"));
  return block_refs_[static_cast<size_t>(i)];
}

void VisionTransformerImpl::set_mode(int64_t i, AttentionMode mode, double lambda) { block(i)->set_mode(mode, lambda); }

void VisionTransformerImpl::set_taps(bool on) {
  for (auto& blk : block_refs_) blk->set_taps(on);
}

void VisionTransformerImpl::set_residual_folded(bool folded) {
  residual_folded_ = folded;
  // Folded, the stream entering a LayerNorm is s = 2^(removed blocks still ahead) times the
  // original; eps * s^2 makes LN(s x) equal LN(x) exactly (model/merge.h).
  int64_t ahead = 0;  // removed blocks with index > b
  for (int64_t b = shape_.depth - 1; b >= 0; --b) {
    Block& blk = block_refs_[static_cast<size_t>(b)];
    blk->set_removed_factor(folded ? 1.0 : 2.0);
    const double after = folded ? std::ldexp(1.0, static_cast<int>(ahead)) : 1.0;
    blk->norm2->options.eps(kLayerNormEps * after * after);
    if (blk->mode() == AttentionMode::Removed) {
      ++ahead;
    } else {
      blk->norm1->options.eps(kLayerNormEps * after * after);
    }
  }
}

std::vector<int64_t> VisionTransformerImpl::removed_blocks() const {
  std::vector<int64_t> removed;
  for (size_t i = 0; i < block_refs_.size(); ++i) {
    if (block_refs_[i]->mode() == AttentionMode::Removed) removed.push_back(static_cast<int64_t>(i));
  }
  return removed;
}

std::vector<std::string> VisionTransformerImpl::no_weight_decay_names() const {
  std::vector<std::string> names;
  for (const auto& p : named_parameters()) {
    if (p.value().dim() <= 1 || p.key() == "pos_embed" || p.key() == "cls_token") names.push_back(p.key());
  }
  return names;
}

void VisionTransformerImpl::check_input(const torch::Tensor& images) const {
  if (images.dim() != 4 || images.size(1) != shape_.in_chans || images.size(2) != shape_.img_size ||
      images.size(3) != shape_.img_size) {
    throw Error(cat("model input has shape ", images.sizes(), ", expected [B, ", shape_.in_chans, ", ", shape_.img_size,
                    ", ", shape_.img_size, "]"));
  }
}

torch::Tensor VisionTransformerImpl::embed(const torch::Tensor& images) {
  check_input(images);
  auto x = patch_embed(images);                                                  // [B, N, C]
  return torch::cat({cls_token.expand({x.size(0), -1, -1}), x}, 1) + pos_embed;  // [B, N+1, C]
}

TokenStream VisionTransformerImpl::run_blocks(TokenStream s, int64_t from, int64_t to) {
  if (from < 0 || to > shape_.depth || from > to) throw Error(cat("run_blocks: bad range [", from, ", ", to, ")"));
  for (int64_t b = from; b < to; ++b) s = block_refs_[static_cast<size_t>(b)]->forward(std::move(s), merge_of(b));
  return s;
}

BlockMerge VisionTransformerImpl::merge_of(int64_t b) {
  return {merging_.r_at(b, block(b)->mode() == AttentionMode::Full), merging_.prop_attn};
}

void VisionTransformerImpl::set_token_merging(const TokenMerging& tm) {
  if (tm.active()) {
    if (static_cast<int64_t>(tm.r.size()) != shape_.depth) {
      throw Error(cat("token merging names ", tm.r.size(), " blocks, the model has ", shape_.depth));
    }
    std::vector<bool> attention;
    for (const auto& blk : block_refs_) attention.push_back(blk->mode() == AttentionMode::Full);
    token_schedule(shape_.num_tokens(), attention, tm);  // throws where a block cannot merge its r
  }
  merging_ = tm.active() ? tm : TokenMerging{};
}

torch::Tensor VisionTransformerImpl::cls_feature(const torch::Tensor& x) {
  return norm(x.narrow(1, 0, 1)).select(1, 0);  // LayerNorm is per token: norm(x)[:, 0] = norm(x[:, 0])
}

torch::Tensor VisionTransformerImpl::forward_features(const torch::Tensor& images) {
  return norm(run_blocks({embed(images), {}}, 0, shape_.depth).x);
}

torch::Tensor VisionTransformerImpl::forward_head(const torch::Tensor& features) {
  return linear(head, features.select(1, 0));  // CLS token [B, C] -> [B, K]
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& images) {
  if (block_refs_.back()->taps_on()) return forward_head(forward_features(images));
  return linear(head, forward_pooled(images));  // [B, K]
}

torch::Tensor VisionTransformerImpl::forward_pooled(const torch::Tensor& images) {
  // Only the CLS row of the last block reaches the head, in training too (the other rows get no
  // gradient), so computing it alone is exact: ~7% fewer multiply-adds for DeiT-Ti.
  if (block_refs_.back()->taps_on()) return forward_features(images).select(1, 0);
  // The class token never merges, so the last block's merge cannot change it: skipped.
  auto s = run_blocks({embed(images), {}}, 0, shape_.depth - 1);    // [B, N', C]
  auto x = block_refs_.back()->forward_cls(s, merging_.prop_attn);  // [B, 1, C]
  return norm(x).select(1, 0);                                      // [B, C]
}

}  // namespace vitslim::model
