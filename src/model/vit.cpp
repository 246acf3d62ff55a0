// Implements the VisionTransformer and its blocks with per-block attention modes (see vit.h).
#include "model/vit.h"

#include <ATen/ops/scaled_dot_product_attention.h>

#include <cmath>

#include "core/error.h"

namespace vitslim::model {
namespace {

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
  if (linear->bias.defined()) linear->bias.zero_();
}

// x W^T + b through ATen's linear: one fused product with the bias, all of it in bfloat16 under
// autocast. LibTorch's nn::Linear::forward adds the bias in a second step for inputs of 3 or more
// dimensions, which under bf16 autocast runs in float32 with two conversions (a third of DeiT-Ti's
// bf16 inference time on the CPU).
torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return at::linear(x, layer->weight, layer->bias);
}

torch::nn::LayerNorm layer_norm(int64_t dim, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps));
}

// x through an optional module (none: x as it is).
torch::Tensor through(torch::nn::LayerNorm norm, const torch::Tensor& x) { return norm ? norm(x) : x; }
torch::Tensor through(LayerScale scale, const torch::Tensor& x) { return scale ? scale(x) : x; }

constexpr double kQuickGeluScale = 1.702;  // OpenAI CLIP's sigmoid approximation of GELU

}  // namespace

PatchEmbedImpl::PatchEmbedImpl(int64_t in_chans, int64_t embed_dim, int64_t patch_size, bool bias) {
  proj = register_module(
      "proj",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(in_chans, embed_dim, patch_size).stride(patch_size).bias(bias)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& images) {
  return proj(images).flatten(2).transpose(1, 2);  // [B, C, g, g] -> [B, g*g, C]
}

AttentionImpl::AttentionImpl(const ModelShape& shape) : num_heads(shape.num_heads) {
  const int64_t dim = shape.embed_dim;
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(shape.qkv_bias)));
  if (shape.qk_norm) {
    q_norm = register_module("q_norm", layer_norm(dim / num_heads, shape.norm_eps));
    k_norm = register_module("k_norm", layer_norm(dim / num_heads, shape.norm_eps));
  }
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  init_linear(qkv);
  init_linear(proj);
}

torch::Tensor AttentionImpl::keys_summed(const torch::Tensor& x, const torch::Tensor& k) const {
  if (k_norm) return k.sum(1);  // [B, H, N, D] -> [B, N, D]: normalised keys
  // Without QK-norm, one small product with the key weights summed over heads: cheaper than
  // reducing the strided keys.
  const int64_t C = x.size(2), D = C / num_heads;
  auto w = qkv->weight.narrow(0, C, C).reshape({num_heads, D, C}).sum(0);  // [D, C]
  auto b = qkv->bias.defined() ? qkv->bias.narrow(0, C, C).reshape({num_heads, D}).sum(0) : torch::Tensor();
  return at::linear(x, w, b);  // [B, N, D]
}

torch::Tensor AttentionImpl::attend(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* metric) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  const int64_t D = C / num_heads;
  auto parts = linear(qkv, x).reshape({B, N, 3, num_heads, D}).permute({2, 0, 3, 1, 4});  // [3, B, H, N, D]
  auto q = through(q_norm, parts[0]), k = through(k_norm, parts[1]);
  if (metric) *metric = keys_summed(x, k);  // [B, N, D]
  auto mask = bias.defined() ? c10::optional<at::Tensor>(bias.to(parts.scalar_type())) : c10::nullopt;
  auto out = at::scaled_dot_product_attention(q, k, parts[2], mask);  // [B, H, N, D], scale D^-0.5
  return linear(proj, out.transpose(1, 2).reshape({B, N, C}));        // [B, N, C]
}

torch::Tensor AttentionImpl::forward_rows(const torch::Tensor& x, int64_t rows, const torch::Tensor& bias) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2), D = C / num_heads;
  auto w = qkv->weight, b = qkv->bias;  // [3C, C], [3C]: rows q | k | v
  auto part = [&](int64_t from, int64_t count) { return b.defined() ? b.narrow(0, from, count) : torch::Tensor(); };
  auto q = at::linear(x.narrow(1, 0, rows), w.narrow(0, 0, C), part(0, C));  // [B, rows, C]
  auto kv = at::linear(x, w.narrow(0, C, 2 * C), part(C, 2 * C));            // [B, N, 2C]
  kv = kv.reshape({B, N, 2, num_heads, D}).permute({2, 0, 3, 1, 4});         // [2, B, H, N, D]
  q = through(q_norm, q.reshape({B, rows, num_heads, D}).transpose(1, 2));   // [B, H, rows, D]
  auto mask = bias.defined() ? c10::optional<at::Tensor>(bias.to(kv.scalar_type())) : c10::nullopt;
  auto out = at::scaled_dot_product_attention(q, through(k_norm, kv[0]), kv[1], mask);  // [B, H, rows, D]
  return linear(proj, out.transpose(1, 2).reshape({B, rows, C}));                       // [B, rows, C]
}

MlpImpl::MlpImpl(int64_t dim, int64_t hidden, Activation activation) : act(activation) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
  init_linear(fc1);
  init_linear(fc2);
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  auto h = linear(fc1, x);                                                                      // [B, N, 4C]
  h = act == Activation::QuickGelu ? h * torch::sigmoid(kQuickGeluScale * h) : torch::gelu(h);  // exact (erf) GELU
  return linear(fc2, h);
}

LayerScaleImpl::LayerScaleImpl(int64_t dim, double init_values) {
  gamma = register_parameter("gamma", torch::full({dim}, init_values));
}

BlockImpl::BlockImpl(const ModelShape& shape, double drop_path) : drop_path_(drop_path) {
  const int64_t dim = shape.embed_dim;
  norm1 = register_module("norm1", layer_norm(dim, shape.norm_eps));
  attn = register_module("attn", Attention(shape));
  if (shape.layer_scale) ls1 = register_module("ls1", LayerScale(dim, shape.init_values));
  norm2 = register_module("norm2", layer_norm(dim, shape.norm_eps));
  mlp = register_module("mlp",
                        Mlp(dim, static_cast<int64_t>(static_cast<double>(dim) * shape.mlp_ratio), shape.act_layer));
  if (shape.layer_scale) ls2 = register_module("ls2", LayerScale(dim, shape.init_values));
}

void BlockImpl::set_mode(AttentionMode mode, double lambda) {
  if (!(lambda >= 0.0 && lambda <= 1.0)) throw Error(cat("dilution lambda must be in [0, 1], got ", lambda));
  if (is_removed(mode_) && !is_removed(mode)) {
    throw Error(cat("a block whose attention was removed cannot become ", to_string(mode)));
  }
  if (is_removed(mode) && !is_removed(mode_)) {
    unregister_module("norm1");
    unregister_module("attn");
    norm1 = nullptr;
    attn = nullptr;
    if (ls1) {
      unregister_module("ls1");
      ls1 = nullptr;
    }
  }
  mode_ = mode;
  lambda_ = is_diluting(mode) ? lambda : 1.0;
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

torch::Tensor BlockImpl::attention_branch(const torch::Tensor& x, const torch::Tensor& bias, torch::Tensor* metric) {
  return through(ls1, attn->attend(norm1(x), bias, metric));  // [B, N, C]
}

torch::Tensor BlockImpl::mlp_branch(const torch::Tensor& x) { return through(ls2, mlp(norm2(x))); }

TokenStream BlockImpl::forward(TokenStream s, const BlockMerge& merge) {
  // ToMe's similarity: the attention keys of a full block; the block input where attention is
  // diluting (on its way out: it merges as it will once removed), skipped or removed.
  torch::Tensor metric = s.x;
  switch (mode_) {
    case AttentionMode::Full:
    case AttentionMode::Diluting: {
      auto bias = merge.prop_attn ? size_bias(s) : torch::Tensor();
      const bool keys = is_full(mode_) && merge.r > 0;
      auto a = attention_branch(s.x, bias, keys ? &metric : nullptr);  // [B, N, C]
      if (taps_) attn_tap_ = a;
      s.x = is_full(mode_) ? s.x + drop_path(a) : (2.0 - lambda_) * s.x + lambda_ * drop_path(a);
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
  s = merge_tokens(s, metric, merge.r, merge.prefix);  // [B, N - r, C]
  auto m = mlp_branch(s.x);                            // [B, N - r, C]
  if (taps_) mlp_tap_ = m;
  s.x = s.x + drop_path(m);
  return s;
}

torch::Tensor BlockImpl::forward_rows(const TokenStream& s, int64_t rows, bool prop_attn) {
  const auto& x = s.x;
  auto head = x.narrow(1, 0, rows);  // [B, rows, C]
  auto bias = prop_attn ? size_bias(s) : torch::Tensor();
  auto branch = [&] { return through(ls1, attn->forward_rows(norm1(x), rows, bias)); };
  switch (mode_) {
    case AttentionMode::Full:
      head = head + drop_path(branch());
      break;
    case AttentionMode::Diluting:
      head = (2.0 - lambda_) * head + lambda_ * drop_path(branch());
      break;
    case AttentionMode::Skipped:
      break;
    case AttentionMode::Removed:
      if (removed_factor_ != 1.0) head = removed_factor_ * head;
      break;
  }
  return head + drop_path(mlp_branch(head));
}

VisionTransformerImpl::VisionTransformerImpl(const ModelShape& shape, double drop_path_rate) : shape_(shape) {
  const int64_t C = shape.embed_dim;
  patch_embed = register_module("patch_embed", PatchEmbed(shape.in_chans, C, shape.patch_size, !shape.pre_norm));
  if (shape.class_token) cls_token = register_parameter("cls_token", torch::zeros({1, 1, C}));
  if (shape.reg_tokens > 0) reg_token = register_parameter("reg_token", torch::zeros({1, shape.reg_tokens, C}));
  if (shape.distilled) dist_token = register_parameter("dist_token", torch::zeros({1, 1, C}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, shape.pos_embed_tokens(), C}));
  if (shape.pre_norm) norm_pre = register_module("norm_pre", layer_norm(C, shape.norm_eps));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < shape.depth; ++i) {
    // Stochastic depth grows linearly over depth, 0 at the first block (timm).
    double rate = shape.depth > 1 ? drop_path_rate * static_cast<double>(i) / (shape.depth - 1) : 0.0;
    Block blk(shape, rate);
    blocks->push_back(blk);
    block_refs_.push_back(blk);
  }
  if (shape.fc_norm) {
    fc_norm = register_module("fc_norm", layer_norm(C, shape.norm_eps));
  } else {
    norm = register_module("norm", layer_norm(C, shape.norm_eps));
  }
  if (shape.num_classes > 0) {
    head = register_module("head", torch::nn::Linear(shape.pooled_dim(), shape.num_classes));
    init_linear(head);
    if (shape.distilled) {
      head_dist = register_module("head_dist", torch::nn::Linear(C, shape.num_classes));
      init_linear(head_dist);
    }
  }
  trunc_normal_(pos_embed, kInitStd);
  torch::NoGradGuard no_grad;
  if (cls_token.defined()) cls_token.normal_(0.0, kClsInitStd);
  if (reg_token.defined()) reg_token.normal_(0.0, kClsInitStd);
  if (dist_token.defined()) trunc_normal_(dist_token, kInitStd);
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
  const double eps = shape_.norm_eps;
  int64_t ahead = 0;  // removed blocks with index > b
  for (int64_t b = shape_.depth - 1; b >= 0; --b) {
    Block& blk = block_refs_[static_cast<size_t>(b)];
    blk->set_removed_factor(folded ? 1.0 : 2.0);
    const double after = folded ? std::ldexp(1.0, static_cast<int>(ahead)) : 1.0;
    blk->norm2->options.eps(eps * after * after);
    if (is_removed(blk->mode())) {
      ++ahead;
    } else {
      blk->norm1->options.eps(eps * after * after);
    }
  }
}

std::vector<int64_t> VisionTransformerImpl::removed_blocks() const {
  std::vector<int64_t> removed;
  for (size_t i = 0; i < block_refs_.size(); ++i) {
    if (is_removed(block_refs_[i]->mode())) removed.push_back(static_cast<int64_t>(i));
  }
  return removed;
}

std::vector<std::string> VisionTransformerImpl::no_weight_decay_names() const {
  std::vector<std::string> names;
  for (const auto& p : named_parameters()) {
    const auto& k = p.key();
    if (p.value().dim() <= 1 || k == "pos_embed" || k == "cls_token" || k == "dist_token" || k == "reg_token") {
      names.push_back(k);
    }
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
  auto x = patch_embed(images);  // [B, P, C]
  const int64_t B = x.size(0);
  std::vector<torch::Tensor> parts;  // class, registers, distillation as timm orders them
  if (cls_token.defined()) parts.push_back(cls_token.expand({B, -1, -1}));
  if (reg_token.defined()) parts.push_back(reg_token.expand({B, -1, -1}));
  if (dist_token.defined()) parts.push_back(dist_token.expand({B, -1, -1}));
  if (shape_.no_embed_class) x = x + pos_embed;  // pos_embed covers the patches only
  if (!parts.empty()) {
    parts.push_back(x);
    x = torch::cat(parts, 1);  // [B, N, C]
  }
  if (!shape_.no_embed_class) x = x + pos_embed;
  return through(norm_pre, x);
}

TokenStream VisionTransformerImpl::run_blocks(TokenStream s, int64_t from, int64_t to) {
  if (from < 0 || to > shape_.depth || from > to) throw Error(cat("run_blocks: bad range [", from, ", ", to, ")"));
  for (int64_t b = from; b < to; ++b) s = block_refs_[static_cast<size_t>(b)]->forward(std::move(s), merge_of(b));
  return s;
}

BlockMerge VisionTransformerImpl::merge_of(int64_t b) {
  return {merging_.r_at(b, is_full(block(b)->mode())), shape_.num_prefix_tokens(), merging_.prop_attn};
}

void VisionTransformerImpl::set_token_merging(const TokenMerging& tm) {
  if (tm.active()) {
    if (static_cast<int64_t>(tm.r.size()) != shape_.depth) {
      throw Error(cat("token merging names ", tm.r.size(), " blocks, the model has ", shape_.depth));
    }
    std::vector<bool> attention;
    for (const auto& blk : block_refs_) attention.push_back(is_full(blk->mode()));
    // throws where a block cannot merge its r
    token_schedule(shape_.num_tokens(), shape_.num_prefix_tokens(), attention, tm);
  }
  merging_ = tm.active() ? tm : TokenMerging{};
}

int64_t VisionTransformerImpl::head_rows() const {
  if (shape_.global_pool != GlobalPool::Token) return 0;
  return shape_.distilled ? 2 : 1;  // class (and distillation) token
}

TokenStream VisionTransformerImpl::forward_tokens(const torch::Tensor& images) {
  return run_blocks({embed(images), {}}, 0, shape_.depth);
}

namespace {
// Token pooling reads the class token and, distilled, the distillation token (row 1; registers
// come after it only in models without one): [B, N, C] -> [B, C] each.
torch::Tensor row(const torch::Tensor& x, int64_t i) { return x.select(1, i); }
}  // namespace

torch::Tensor VisionTransformerImpl::pool(const TokenStream& s) {
  // LayerNorm is per token: norm(x)[:, i] = norm(x[:, i]).
  if (shape_.global_pool == GlobalPool::Token) {
    auto cls = through(norm, row(s.x, 0));
    if (shape_.distilled) cls = (cls + through(norm, row(s.x, 1))) / 2;  // timm's pre-logits
    return through(fc_norm, cls);                                        // [B, C]
  }
  const int64_t P = shape_.num_prefix_tokens();
  auto patches = through(norm, s.x.narrow(1, P, s.x.size(1) - P));  // [B, N' - P, C]
  torch::Tensor mean;
  if (s.size.defined()) {  // merged tokens stand for several patches: weigh each by its size
    auto size = s.size.narrow(1, P, s.size.size(1) - P).to(patches.scalar_type());  // [B, N' - P, 1]
    mean = (patches * size).sum(1) / size.sum(1);
  } else {
    mean = patches.mean(1);
  }
  if (shape_.global_pool == GlobalPool::TokenAvg) return torch::cat({through(norm, row(s.x, 0)), mean}, 1);  // [B, 2C]
  return through(fc_norm, mean);                                                                             // [B, C]
}

torch::Tensor VisionTransformerImpl::logits(const TokenStream& s) {
  if (!head) return pool(s);
  if (!shape_.distilled) return linear(head, pool(s));  // [B, K]
  // Both heads, averaged (timm at inference and in training without distillation).
  return (linear(head, through(norm, row(s.x, 0))) + linear(head_dist, through(norm, row(s.x, 1)))) / 2;
}

namespace {
TokenStream last_rows(Block& last, const TokenStream& s, int64_t rows, bool prop_attn) {
  return {last->forward_rows(s, rows, prop_attn), {}};  // [B, rows, C]
}
}  // namespace

// The tokens the head reads. With token pooling only the prefix rows of the last block reach it,
// in training too (the other rows get no gradient), so computing them alone is exact: ~7% fewer
// multiply-adds for DeiT-Ti. Prefix tokens never merge, so the last block's merge is skipped.
VisionTransformerImpl::Outputs VisionTransformerImpl::forward_outputs(const torch::Tensor& images) {
  const int64_t rows = head_rows();
  TokenStream s;
  if (rows == 0 || block_refs_.back()->taps_on()) {
    s = forward_tokens(images);
  } else {
    s = last_rows(block_refs_.back(), run_blocks({embed(images), {}}, 0, shape_.depth - 1), rows, merging_.prop_attn);
  }
  Outputs out;
  out.pooled = pool(s);
  out.logits = !head ? out.pooled : shape_.distilled ? logits(s) : linear(head, out.pooled);
  return out;
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& images) { return forward_outputs(images).logits; }

torch::Tensor VisionTransformerImpl::forward_pooled(const torch::Tensor& images) {
  return forward_outputs(images).pooled;
}

}  // namespace vitslim::model
