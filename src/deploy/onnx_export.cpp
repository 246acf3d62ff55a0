// Implements the ONNX graph of a VisionTransformer (see onnx_export.h).
#include "deploy/onnx_export.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <optional>

#include "core/error.h"
#include "core/version.h"
#include "deploy/onnx_graph.h"
#include "deploy/onnx_proto.h"
#include "model/checkpoint.h"

namespace vitslim::deploy {
namespace {

constexpr int64_t kOpset = 17;  // LayerNormalization is in the default domain from 17

// LayerNorm over the last axis; `scale` multiplies its affine output (weight and bias).
std::string layer_norm(GraphBuilder& g, const std::string& x, torch::nn::LayerNorm& norm, const std::string& name,
                       double scale = 1.0) {
  return g.op("LayerNormalization",
              {x, g.weight(name + ".weight", norm->weight * scale), g.weight(name + ".bias", norm->bias * scale)},
              {{"axis", int64_t{-1}}, {"epsilon", static_cast<float>(norm->options.eps())}}, name);
}

// A per-channel scale (LayerScale gamma times `factor`) of x [..., C], or x scaled by `factor`.
std::string channel_scale(GraphBuilder& g, const std::string& x, const model::LayerScale& ls, double factor,
                          const std::string& name) {
  if (!ls)
    return factor == 1.0 ? x : g.op("Mul", {x, g.scalar(name + ".factor", static_cast<float>(factor))}, {}, name);
  return g.op("Mul", {x, g.weight(name + ".gamma", ls->gamma * factor)}, {}, name);
}

// [B, N, C] -> [B, H, N, D], or with `keys_transposed` [B, H, D, N].
std::string heads(GraphBuilder& g, const std::string& x, int64_t num_heads, int64_t head_dim, bool keys_transposed,
                  const std::string& name) {
  auto split = g.op("Reshape", {x, g.ints(name + ".shape", {0, 0, num_heads, head_dim})}, {}, name + ".split");
  const std::vector<int64_t> perm =
      keys_transposed ? std::vector<int64_t>{0, 2, 3, 1} : std::vector<int64_t>{0, 2, 1, 3};
  return g.op("Transpose", {split}, {{"perm", perm}}, name + ".heads");
}

// The attention branch; queries from `q_in` [B, Nq, C], keys/values from `kv_in` [B, N, C]; the
// output [B, Nq, C] is multiplied by `out_scale` (lambda of a diluting block) in the projection.
// bias: [B, 1, 1, N] added to the logits (proportional attention) or "". metric: if not null,
// receives ToMe's similarity metric, the keys summed over heads [B, N, D].
std::string attention(GraphBuilder& g, model::AttentionImpl& attn, const std::string& q_in, const std::string& kv_in,
                      double out_scale, const std::string& bias, std::string* metric, const std::string& name) {
  const int64_t C = attn.proj->weight.size(0), H = attn.num_heads, D = C / H;
  const auto& w = attn.qkv->weight;  // [3C, C]: rows q | k | v
  const auto& b = attn.qkv->bias;
  auto part = [&](const torch::Tensor& t, int64_t i) { return t.defined() ? t.narrow(0, i * C, C) : torch::Tensor(); };
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const bool qk_norm = static_cast<bool>(attn.q_norm);
  // The softmax scale goes into Wq, or into q_norm's affine output with QK-norm.
  auto q = g.linear(q_in, part(w, 0), part(b, 0), name + ".q", qk_norm ? 1.0 : scale);  // [B, Nq, C]
  auto k = g.linear(kv_in, part(w, 1), part(b, 1), name + ".k");                        // [B, N, C]
  auto v = g.linear(kv_in, part(w, 2), part(b, 2), name + ".v");                        // [B, N, C]
  auto qh = heads(g, q, H, D, false, name + ".q");                                      // [B, H, Nq, D]
  std::string kh;                                                                       // [B, H, D, N]
  if (qk_norm) {
    qh = layer_norm(g, qh, attn.q_norm, name + ".q_norm", scale);
    auto kn = layer_norm(g, heads(g, k, H, D, false, name + ".k"), attn.k_norm, name + ".k_norm");  // [B, H, N, D]
    if (metric) {
      *metric = g.op("ReduceSum", {kn, g.ints(name + ".head_axis", {1})}, {{"keepdims", int64_t{0}}},
                     name + ".metric");  // [B, N, D]
    }
    kh = g.op("Transpose", {kn}, {{"perm", std::vector<int64_t>{0, 1, 3, 2}}}, name + ".k_t");
  } else {
    if (metric) {
      auto kb = part(b, 1);
      *metric = g.linear(kv_in, part(w, 1).reshape({H, D, C}).sum(0),
                         kb.defined() ? kb.reshape({H, D}).sum(0) : torch::Tensor(), name + ".metric");  // [B, N, D]
    }
    kh = heads(g, k, H, D, true, name + ".k");
  }
  auto logits = g.op("MatMul", {qh, kh}, {}, name + ".logits");  // [B, H, Nq, N]
  if (!bias.empty()) logits = g.op("Add", {logits, bias}, {}, name + ".size_bias");
  auto probs = g.op("Softmax", {logits}, {{"axis", int64_t{-1}}}, name + ".softmax");
  auto out = g.op("MatMul", {probs, heads(g, v, H, D, false, name + ".v")}, {}, name + ".mix");  // [B, H, Nq, D]
  out = g.op("Transpose", {out}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}, name + ".merge_heads");
  out = g.op("Reshape", {out, g.ints(name + ".out_shape", {0, 0, C})}, {}, name + ".concat");  // [B, Nq, C]
  return g.linear(out, attn.proj->weight, attn.proj->bias, name + ".proj", out_scale);
}

// fc2(GELU(fc1 x)) with GELU(h) = 0.5 h (1 + erf(h / sqrt 2)), or QuickGELU h sigmoid(1.702 h):
// [B, N, C] -> [B, N, C].
std::string mlp(GraphBuilder& g, model::MlpImpl& m, const std::string& x, const std::string& name) {
  auto h = g.linear(x, m.fc1->weight, m.fc1->bias, name + ".fc1");
  if (m.act == Activation::QuickGelu) {
    constexpr float kQuickGeluScale = 1.702F;
    auto gate = g.op("Sigmoid", {g.op("Mul", {h, g.scalar(name + ".quick", kQuickGeluScale)}, {}, name + ".scaled")},
                     {}, name + ".sigmoid");
    return g.linear(g.op("Mul", {h, gate}, {}, name + ".quick_gelu"), m.fc2->weight, m.fc2->bias, name + ".fc2");
  }
  auto erf =
      g.op("Erf", {g.op("Div", {h, g.scalar(name + ".sqrt2", static_cast<float>(std::sqrt(2.0)))}, {}, name + ".div")},
           {}, name + ".erf");
  auto gate = g.op("Add", {erf, g.scalar(name + ".one", 1.0F)}, {}, name + ".add");
  auto gelu =
      g.op("Mul", {g.op("Mul", {h, gate}, {}, name + ".mul"), g.scalar(name + ".half", 0.5F)}, {}, name + ".gelu");
  return g.linear(gelu, m.fc2->weight, m.fc2->bias, name + ".fc2");
}

std::string scaled(GraphBuilder& g, const std::string& x, double factor, const std::string& name) {
  if (factor == 1.0) return x;
  return g.op("Mul", {x, g.scalar(name + ".factor", static_cast<float>(factor))}, {}, name);
}

// log(size) as attention logit bias: [B, N, 1] -> [B, 1, 1, N] ("" while no token merged).
std::string size_bias(GraphBuilder& g, const Stream& s, bool prop_attn, const std::string& name) {
  if (!prop_attn || s.size.empty()) return "";
  auto log = g.op("Log", {s.size}, {}, name + ".log_size");
  auto row = g.op("Transpose", {log}, {{"perm", std::vector<int64_t>{0, 2, 1}}}, name + ".size_row");  // [B, 1, N]
  return g.op("Unsqueeze", {row, g.ints(name + ".axis", {1})}, {}, name + ".size_bias");               // [B, 1, 1, N]
}

// Rows `rows` [B, R] (indices within each image) of x [B, N, K] through one flat Gather: [B, R, K].
std::string gather_rows(GraphBuilder& g, const std::string& x, const std::string& rows, const Batch& bt, int64_t n,
                        int64_t k, const std::string& name) {
  auto flat = g.op(
      "Add", {rows, g.op("Mul", {bt.image, g.ints(name + ".n", {n}, std::vector<int64_t>{})}, {}, name + ".offset")},
      {}, name + ".flat_index");                                                                   // [B, R]
  auto table = g.op("Reshape", {x, g.ints(name + ".table_shape", {-1, k})}, {}, name + ".table");  // [B * N, K]
  return g.op("Gather", {table, flat}, {{"axis", int64_t{0}}}, name + ".rows");                    // [B, R, K]
}

// ToMe's bipartite matching on the metric [B, N, D]: the r A tokens that merge (src, positions in
// A) and the B partner of each (dst, positions in B), both [B, r]. The class token never merges.
struct Matching {
  std::string src, dst;
};
Matching match_tokens(GraphBuilder& g, const std::string& metric, int64_t n, int64_t r, const std::string& name) {
  const int64_t na = (n + 1) / 2;
  auto unit = g.op("Div",
                   {metric, g.op("ReduceL2", {metric}, {{"axes", std::vector<int64_t>{-1}}, {"keepdims", int64_t{1}}},
                                 name + ".norm")},
                   {}, name + ".unit");  // [B, N, D]
  auto half = [&](int64_t first, const char* which) {
    return g.op("Slice",
                {unit, g.ints(name + ".start", {first}), g.ints(name + ".end", {n}), g.ints(name + ".axis", {1}),
                 g.ints(name + ".step", {2})},
                {}, name + which);
  };
  auto b_side = g.op("Transpose", {half(1, ".b")}, {{"perm", std::vector<int64_t>{0, 2, 1}}}, name + ".b_t");
  auto scores = g.op("MatMul", {half(0, ".a"), b_side}, {}, name + ".scores");  // [B, NA, NB]
  std::vector<float> protect(static_cast<size_t>(na), 0.0F);
  protect[0] = -std::numeric_limits<float>::infinity();  // the class token stays
  scores = g.op("Add", {scores, g.floats(name + ".protect", protect, std::vector<int64_t>{1, na, 1})}, {},
                name + ".protected");
  auto best =
      g.op("ReduceMax", {scores}, {{"axes", std::vector<int64_t>{-1}}, {"keepdims", int64_t{0}}}, name + ".best");
  auto partner =
      g.op("ArgMax", {scores}, {{"axis", int64_t{-1}}, {"keepdims", int64_t{0}}}, name + ".partner");        // [B, NA]
  auto src = g.ops("TopK", {best, g.ints(name + ".r", {r})}, {{"axis", int64_t{-1}}}, name + ".src", 2)[1];  // [B, r]
  auto dst = g.op("GatherElements", {partner, src}, {{"axis", int64_t{1}}}, name + ".dst");                  // [B, r]
  return {src, dst};
}

// The rows of the stream that stay, as positions in it: the A tokens that do not merge, in order,
// then every B token: [B, N - r].
std::string kept_rows(GraphBuilder& g, const std::string& src, const Batch& bt, int64_t n, int64_t r,
                      const std::string& name) {
  const int64_t na = (n + 1) / 2, nb = n / 2, kept = na - r;
  // The kept A tokens in order: the top `kept` of (NA - 1 - i), with merging tokens pushed below.
  auto picked = g.op("ReduceSum",
                     {g.op("OneHot", {src, g.ints(name + ".na", {na}), g.floats(name + ".off_on", {0.0F, 1.0F})}, {},
                           name + ".src_one_hot"),
                      g.ints(name + ".src_axis", {1})},
                     {{"keepdims", int64_t{0}}}, name + ".picked");  // [B, NA]: 1 where a token merges
  std::vector<float> order(static_cast<size_t>(na));
  for (int64_t i = 0; i < na; ++i) order[static_cast<size_t>(i)] = static_cast<float>(na - 1 - i);
  auto key = g.op("Sub",
                  {g.floats(name + ".order", order, std::vector<int64_t>{1, na}),
                   g.op("Mul", {picked, g.scalar(name + ".push", static_cast<float>(na))}, {}, name + ".pushed")},
                  {}, name + ".key");
  auto unmerged =
      g.ops("TopK", {key, g.ints(name + ".kept", {kept})}, {{"axis", int64_t{-1}}}, name + ".unmerged", 2)[1];
  std::vector<int64_t> odd(static_cast<size_t>(nb));
  for (int64_t j = 0; j < nb; ++j) odd[static_cast<size_t>(j)] = 2 * j + 1;
  auto odd_rows =
      g.op("Expand",
           {g.ints(name + ".odd", odd, std::vector<int64_t>{1, nb}),
            g.op("Concat", {bt.batch, g.ints(name + ".nb", {nb})}, {{"axis", int64_t{0}}}, name + ".odd_shape")},
           {}, name + ".odd_rows");  // [B, NB]
  auto keep = g.op(
      "Concat",
      {g.op("Mul", {unmerged, g.ints(name + ".two", {2}, std::vector<int64_t>{})}, {}, name + ".even_rows"), odd_rows},
      {{"axis", int64_t{1}}}, name + ".keep");  // [B, N - r]
  return keep;
}

// ToMe's bipartite soft matching and size-weighted merge of r tokens, as model/token_merge.cpp
// does it: A = even positions, B = odd; the class token (A's first) never merges; the r A tokens
// most similar to their best B partner merge into it; output: the other A tokens in order, then B.
// The partners' updates are one-hot products: [B, N, C] -> [B, N - r, C].
Stream merge_tokens(GraphBuilder& g, const Stream& s, const std::string& metric, int64_t r, int64_t C, const Batch& bt,
                    const std::string& name) {
  const int64_t n = s.tokens, kept = (n + 1) / 2 - r, out_n = n - r;
  const auto [src, dst] = match_tokens(g, metric, n, r, name);
  const std::string keep = kept_rows(g, src, bt, n, r, name);
  auto from = g.op("Mul", {src, g.ints(name + ".two_src", {2}, std::vector<int64_t>{})}, {}, name + ".from");  // [B, r]
  auto into =
      g.op("Add", {dst, g.ints(name + ".kept_offset", {kept}, std::vector<int64_t>{})}, {}, name + ".into");  // [B, r]
  auto one_hot = g.op("OneHot", {into, g.ints(name + ".out_n", {out_n}), g.floats(name + ".off_on_into", {0.0F, 1.0F})},
                      {}, name + ".into_one_hot");  // [B, r, N - r]
  auto scatter =
      g.op("Transpose", {one_hot}, {{"perm", std::vector<int64_t>{0, 2, 1}}}, name + ".scatter");  // [B, N - r, r]
  // Sizes: the kept tokens' plus those merging into them.
  std::string size_from, size_keep;
  if (s.size.empty()) {
    size_from = g.floats(name + ".unit_size", {1.0F}, std::vector<int64_t>{1, 1, 1});
    size_keep = size_from;
  } else {
    size_from = gather_rows(g, s.size, from, bt, n, 1, name + ".size_from");  // [B, r, 1]
    size_keep = gather_rows(g, s.size, keep, bt, n, 1, name + ".size_keep");  // [B, N - r, 1]
  }
  auto merged_in = g.op("MatMul",
                        {scatter, g.op("Expand",
                                       {size_from, g.op("Concat", {bt.batch, g.ints(name + ".r_1", {r, 1})},
                                                        {{"axis", int64_t{0}}}, name + ".from_shape")},
                                       {}, name + ".from_sizes")},
                        {}, name + ".merged_in");                                  // [B, N - r, 1]
  Stream out{"", g.op("Add", {size_keep, merged_in}, {}, name + ".size"), out_n};  // [B, N - r, 1]
  // Tokens: x_d + sum_i (s_i / S_d) (x_i - x_d) for each partner d.
  auto x_keep = gather_rows(g, s.x, keep, bt, n, C, name + ".x_keep");          // [B, N - r, C]
  auto x_from = gather_rows(g, s.x, from, bt, n, C, name + ".x_from");          // [B, r, C]
  auto x_dst = g.op("MatMul", {one_hot, x_keep}, {}, name + ".x_dst");          // [B, r, C]
  auto size_dst = g.op("MatMul", {one_hot, out.size}, {}, name + ".size_dst");  // [B, r, 1]
  auto weight = g.op("Div", {size_from, size_dst}, {}, name + ".weight");
  auto delta =
      g.op("Mul", {g.op("Sub", {x_from, x_dst}, {}, name + ".diff"), weight}, {}, name + ".delta");  // [B, r, C]
  out.x = g.op("Add", {x_keep, g.op("MatMul", {scatter, delta}, {}, name + ".scattered")}, {}, name + ".x");
  return out;
}

// One block: the stream [B, N, C] -> [B, N - r, C], or with head_rows > 0 the first head_rows
// rows only [B, head_rows, C] (the last block of a model that pools its prefix tokens).
Stream block(GraphBuilder& g, model::BlockImpl& blk, const Stream& s, const model::BlockMerge& merge, int64_t head_rows,
             const Batch& bt, const std::string& name) {
  const std::string& x = s.x;
  const bool rows_only = head_rows > 0;
  auto rows =
      rows_only
          ? g.op("Slice",
                 {x, g.ints(name + ".start", {0}), g.ints(name + ".end", {head_rows}), g.ints(name + ".axis", {1})}, {},
                 name + ".rows")
          : x;  // [B, Nq, C]
  const bool merges = merge.r > 0 && !rows_only;
  std::string y, metric = x;  // ToMe's metric: the keys of a full block, else the block's input
  switch (blk.mode()) {
    case model::AttentionMode::Full:
    case model::AttentionMode::Diluting: {
      const bool diluting = model::is_diluting(blk.mode());
      const double lambda = diluting ? blk.lambda() : 1.0;
      auto h = layer_norm(g, x, blk.norm1, name + ".norm1");
      auto q_in = rows_only ? layer_norm(g, rows, blk.norm1, name + ".norm1_rows") : h;
      const bool keys = !diluting && merges;
      // lambda goes into the projection, or into gamma where the block has LayerScale
      auto a = attention(g, *blk.attn, q_in, h, blk.ls1 ? 1.0 : lambda, size_bias(g, s, merge.prop_attn, name),
                         keys ? &metric : nullptr, name + ".attn");
      if (blk.ls1) a = channel_scale(g, a, blk.ls1, lambda, name + ".ls1");
      auto residual = diluting ? scaled(g, rows, 2.0 - lambda, name + ".dilute") : rows;
      y = g.op("Add", {residual, a}, {}, name + ".attn_residual");
      break;
    }
    case model::AttentionMode::Removed:
      y = scaled(g, rows, blk.removed_factor(), name + ".removed");
      break;
    case model::AttentionMode::Skipped:
      throw Error(cat("ONNX export: ", name, " is in NOSE's skipped mode, which only measurement uses"));
  }
  Stream out{y, s.size, rows_only ? head_rows : s.tokens};
  if (merges) out = merge_tokens(g, out, metric, merge.r, blk.mlp->fc2->weight.size(0), bt, name + ".merge");
  auto m = mlp(g, *blk.mlp, layer_norm(g, out.x, blk.norm2, name + ".norm2"), name + ".mlp");
  m = channel_scale(g, m, blk.ls2, 1.0, name + ".ls2");
  out.x = g.op("Add", {out.x, m}, {}, name + ".mlp_residual");
  return out;
}

// A [1, R, C] parameter repeated over the batch: [B, R, C].
std::string expand_token(GraphBuilder& g, const torch::Tensor& token, const std::string& name, const Batch& bt) {
  auto shape = g.op("Concat", {bt.batch, g.ints(name + ".shape", {token.size(1), token.size(2)})},
                    {{"axis", int64_t{0}}}, name + ".expand_shape");
  return g.op("Expand", {g.weight(name, token), shape}, {}, name + ".expand");
}

// Patches + prefix tokens + position embedding (+ norm_pre): images [B, Cin, H, W] -> [B, N, C].
std::string embed(GraphBuilder& g, model::VisionTransformerImpl& vit, const std::string& images, const Batch& bt) {
  const ModelShape& s = vit.shape();
  auto& conv = vit.patch_embed->proj;
  std::vector<std::string> conv_in = {images, g.weight("patch_embed.proj.weight", conv->weight)};
  if (conv->bias.defined()) conv_in.push_back(g.weight("patch_embed.proj.bias", conv->bias));
  auto patches = g.op("Conv", conv_in,
                      {{"kernel_shape", std::vector<int64_t>{s.patch_size, s.patch_size}},
                       {"strides", std::vector<int64_t>{s.patch_size, s.patch_size}}},
                      "patch_embed.proj");  // [B, C, g, g]
  patches = g.op("Reshape", {patches, g.ints("patch_embed.shape", {0, s.embed_dim, -1})}, {}, "patch_embed.flatten");
  patches = g.op("Transpose", {patches}, {{"perm", std::vector<int64_t>{0, 2, 1}}}, "patch_embed.tokens");  // [B, P, C]
  auto add_pos = [&](const std::string& x) {
    return g.op("Add", {x, g.weight("pos_embed", vit.pos_embed)}, {}, "pos_embed.add");
  };
  if (s.no_embed_class) patches = add_pos(patches);
  std::vector<std::string> parts;  // class, registers, distillation as the model orders them
  if (vit.cls_token.defined()) parts.push_back(expand_token(g, vit.cls_token, "cls_token", bt));
  if (vit.reg_token.defined()) parts.push_back(expand_token(g, vit.reg_token, "reg_token", bt));
  if (vit.dist_token.defined()) parts.push_back(expand_token(g, vit.dist_token, "dist_token", bt));
  parts.push_back(patches);
  auto x = parts.size() == 1 ? patches : g.op("Concat", parts, {{"axis", int64_t{1}}}, "tokens");  // [B, N, C]
  if (!s.no_embed_class) x = add_pos(x);
  return vit.norm_pre ? layer_norm(g, x, vit.norm_pre, "norm_pre") : x;
}

// The tokens leaving the last block -> logits [B, K] (or the pooled feature [B, C] without a head),
// as VisionTransformerImpl::logits: token pooling reads rows 0 (and 1, distilled) of x; average
// pooling the mean of the patch tokens (no token merging here, export_onnx refuses it).
std::string head(GraphBuilder& g, model::VisionTransformerImpl& vit, const Stream& out) {
  const ModelShape& s = vit.shape();
  auto row = [&](int64_t i) {  // normed row i: [B, C]
    auto r = g.op("Gather", {out.x, g.ints(cat("row", i), {i}, std::vector<int64_t>{})}, {{"axis", int64_t{1}}},
                  cat("token", i));
    return vit.norm ? layer_norm(g, r, vit.norm, cat("norm.row", i)) : r;
  };
  std::string pooled;
  if (s.global_pool == GlobalPool::Token) {
    if (s.distilled && vit.head) {
      auto a = g.linear(row(0), vit.head->weight, vit.head->bias, "head");
      auto d = g.linear(row(1), vit.head_dist->weight, vit.head_dist->bias, "head_dist");
      return g.op("Mul", {g.op("Add", {a, d}, {}, "heads.sum"), g.scalar("heads.half", 0.5F)}, {}, "heads.mean");
    }
    pooled = row(0);
    if (s.distilled) {
      pooled = g.op("Mul", {g.op("Add", {pooled, row(1)}, {}, "pre_logits.sum"), g.scalar("pre_logits.half", 0.5F)}, {},
                    "pre_logits");
    }
  } else {
    const int64_t P = s.num_prefix_tokens();
    auto patches =
        g.op("Slice", {out.x, g.ints("pool.start", {P}), g.ints("pool.end", {out.tokens}), g.ints("pool.axis", {1})},
             {}, "pool.patches");  // [B, N - P, C]
    if (vit.norm) patches = layer_norm(g, patches, vit.norm, "norm");
    // Opset 17's ReduceMean takes its axes as an attribute (an input only from opset 18).
    pooled = g.op("ReduceMean", {patches}, {{"axes", std::vector<int64_t>{1}}, {"keepdims", int64_t{0}}},
                  "pool");  // [B, C]
    if (s.global_pool == GlobalPool::TokenAvg)
      pooled = g.op("Concat", {row(0), pooled}, {{"axis", int64_t{1}}}, "pool.token_avg");  // [B, 2C]
  }
  if (vit.fc_norm) pooled = layer_norm(g, pooled, vit.fc_norm, "fc_norm");
  return vit.head ? g.linear(pooled, vit.head->weight, vit.head->bias, "head") : pooled;
}

// The batch size and, when tokens merge, each image's index (0..B-1) as a column.
Batch batch_values(GraphBuilder& g, const std::string& images, bool merging) {
  Batch bt;
  bt.batch = g.op("Shape", {images}, {{"start", int64_t{0}}, {"end", int64_t{1}}}, "batch");  // [1]
  if (!merging) return bt;
  auto count = g.op("Squeeze", {bt.batch}, {}, "batch.count");  // scalar
  auto range =
      g.op("Range",
           {g.ints("batch.zero", {0}, std::vector<int64_t>{}), count, g.ints("batch.one", {1}, std::vector<int64_t>{})},
           {}, "batch.range");
  bt.image = g.op("Unsqueeze", {range, g.ints("batch.axis", {1})}, {}, "batch.image");  // [B, 1]
  return bt;
}

}  // namespace

uint64_t write_onnx(model::VisionTransformer& model, const std::map<std::string, std::string>& metadata,
                    const std::string& path, OutputSet* outputs) {
  torch::NoGradGuard no_grad;
  const ModelShape& s = model->shape();
  onnx::Model m;
  m.opset = kOpset;
  m.producer_name = "vitslim";
  m.producer_version = kVersion;
  m.graph_name = "vitslim_vit";
  m.inputs.push_back({"images", onnx::DataType::Float, {std::string("batch"), s.in_chans, s.img_size, s.img_size}});
  m.outputs.push_back({"logits", onnx::DataType::Float, {std::string("batch"), s.output_dim()}});
  if (model->token_merging().active() && (s.num_prefix_tokens() != 1 || s.global_pool != GlobalPool::Token)) {
    throw Error(
        cat("ONNX export: token merging is exported for models with one class token and token pooling; this "
            "model has ",
            s.num_prefix_tokens(), " prefix tokens and ", enum_name(kGlobalPoolNames, s.global_pool),
            " pooling (export without --tome-r, or as safetensors)"));
  }
  GraphBuilder g(m);
  const Batch bt = batch_values(g, "images", model->token_merging().active());
  Stream stream{embed(g, *model, "images", bt), "", s.num_tokens()};
  const int64_t head_rows = s.global_pool == GlobalPool::Token ? (s.distilled ? 2 : 1) : 0;
  for (int64_t b = 0; b < s.depth; ++b) {
    stream =
        block(g, *model->block(b), stream, model->merge_of(b), b == s.depth - 1 ? head_rows : 0, bt, cat("blocks.", b));
  }
  head(g, *model, stream);  // [B, K]
  g.rename_last_output("logits");
  for (const auto& kv : model::model_metadata(model)) {
    if (kv.first != "format") m.metadata.push_back(kv);  // safetensors' own key
  }
  for (const auto& kv : metadata) m.metadata.push_back(kv);
  const auto encoded = onnx::encode(m);
  if (outputs) {
    outputs->write(path, encoded.pieces);
  } else {
    write_pieces_atomic(path, encoded.pieces);
  }
  return encoded.size;
}

}  // namespace vitslim::deploy
