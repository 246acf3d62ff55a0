// Implements the ONNX graph of a VisionTransformer (see onnx_export.h).
#include "deploy/onnx_export.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <optional>

#include "core/error.h"
#include "core/version.h"
#include "deploy/onnx_proto.h"
#include "model/checkpoint.h"

namespace vitslim::deploy {
namespace {

using onnx::Attribute;

constexpr int64_t kOpset = 17;  // LayerNormalization is in the default domain from 17

// Builds the node list with unique value names and keeps every tensor it references alive.
class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::Model& model) : model_(model) {}

  // A float32 constant named `name` (contiguous CPU copy kept here).
  std::string weight(const std::string& name, const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    keep_.push_back(c);
    onnx::Initializer init;
    init.name = name;
    init.dims = c.sizes().vec();
    init.data = c.data_ptr();
    init.bytes = static_cast<size_t>(c.numel()) * sizeof(float);
    model_.initializers.push_back(std::move(init));
    return name;
  }
  // x @ W^T + b of a Linear (W [out, in]): [..., in] -> [..., out]; `scale` multiplies both.
  std::string linear(const std::string& x, const torch::Tensor& w, const torch::Tensor& b, const std::string& name,
                     double scale = 1.0) {
    auto wt = weight(name + ".weight_t", w.t() * scale);
    auto bias = weight(name + ".bias", b * scale);
    return op("Add", {op("MatMul", {x, wt}, {}, name + ".matmul"), bias}, {}, name);
  }
  // An int64 constant, 1-D unless `dims` says otherwise ({} for a scalar).
  std::string ints(const std::string& name, const std::vector<int64_t>& values,
                   std::optional<std::vector<int64_t>> dims = std::nullopt) {
    return constant(name, onnx::DataType::Int64, values.data(), values.size() * sizeof(int64_t),
                    dims ? *dims : std::vector<int64_t>{static_cast<int64_t>(values.size())});
  }
  // A float constant, 1-D unless `dims` says otherwise.
  std::string floats(const std::string& name, const std::vector<float>& values,
                     std::optional<std::vector<int64_t>> dims = std::nullopt) {
    return constant(name, onnx::DataType::Float, values.data(), values.size() * sizeof(float),
                    dims ? *dims : std::vector<int64_t>{static_cast<int64_t>(values.size())});
  }
  std::string scalar(const std::string& name, float value) { return floats(name, {value}, std::vector<int64_t>{}); }
  // One node with one output; returns the output's name (`name`, made unique).
  std::string op(const std::string& type, std::vector<std::string> inputs, std::vector<Attribute> attributes,
                 const std::string& name) {
    return ops(type, std::move(inputs), std::move(attributes), name, 1).front();
  }
  // One node with `outputs` outputs, named <name>, <name>.1, ...
  std::vector<std::string> ops(const std::string& type, std::vector<std::string> inputs,
                               std::vector<Attribute> attributes, const std::string& name, int outputs) {
    onnx::Node n;
    n.op_type = type;
    n.inputs = std::move(inputs);
    n.attributes = std::move(attributes);
    n.name = unique(name);
    n.outputs = {n.name};
    for (int i = 1; i < outputs; ++i) n.outputs.push_back(cat(n.name, ".", i));
    model_.nodes.push_back(std::move(n));
    return model_.nodes.back().outputs;
  }
  // The graph's output gets a fixed name: the last node's output is renamed.
  void rename_last_output(const std::string& name) { model_.nodes.back().outputs = {name}; }

 private:
  std::string unique(const std::string& name) {
    const int64_t n = used_[name]++;
    return n == 0 ? name : cat(name, "_", n);
  }
  std::string constant(const std::string& name, onnx::DataType type, const void* data, size_t bytes,
                       std::vector<int64_t> dims) {
    onnx::Initializer init;
    init.name = unique(name);
    init.type = type;
    init.dims = std::move(dims);
    init.owned.assign(static_cast<const char*>(data), bytes);
    model_.initializers.push_back(std::move(init));
    return model_.initializers.back().name;
  }

  onnx::Model& model_;
  std::vector<torch::Tensor> keep_;
  std::map<std::string, int64_t> used_;
};

std::string layer_norm(GraphBuilder& g, const std::string& x, torch::nn::LayerNorm& norm, const std::string& name) {
  return g.op("LayerNormalization", {x, g.weight(name + ".weight", norm->weight), g.weight(name + ".bias", norm->bias)},
              {{"axis", int64_t{-1}}, {"epsilon", static_cast<float>(norm->options.eps())}}, name);
}

// [B, N, C] -> [B, H, N, D], or with `keys_transposed` [B, H, D, N].
std::string heads(GraphBuilder& g, const std::string& x, int64_t num_heads, int64_t head_dim, bool keys_transposed,
                  const std::string& name) {
  auto split = g.op("Reshape", {x, g.ints(name + ".shape", {0, 0, num_heads, head_dim})}, {}, name + ".split");
  const std::vector<int64_t> perm =
      keys_transposed ? std::vector<int64_t>{0, 2, 3, 1} : std::vector<int64_t>{0, 2, 1, 3};
  return g.op("Transpose", {split}, {{"perm", perm}}, name + ".heads");
}

// The token stream between blocks: tokens [B, N, C] and, once any merged, their sizes [B, N, 1].
struct Stream {
  std::string x, size;  // size "": every token has size 1
  int64_t tokens = 0;   // N
};

// Values of the batch every merge needs: the batch size [1] and each image's index [B, 1].
struct Batch {
  std::string batch, image;
};

// The attention branch; queries from `q_in` [B, Nq, C], keys/values from `kv_in` [B, N, C]; the
// output [B, Nq, C] is multiplied by `out_scale` (lambda of a diluting block) in the projection.
// bias: [B, 1, 1, N] added to the logits (proportional attention) or "". metric: if not null,
// receives ToMe's similarity metric, the keys summed over heads [B, N, D].
std::string attention(GraphBuilder& g, model::AttentionImpl& attn, const std::string& q_in, const std::string& kv_in,
                      double out_scale, const std::string& bias, std::string* metric, const std::string& name) {
  const int64_t C = attn.proj->weight.size(0), H = attn.num_heads, D = C / H;
  const auto& w = attn.qkv->weight;  // [3C, C]: rows q | k | v
  const auto& b = attn.qkv->bias;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  auto q = g.linear(q_in, w.narrow(0, 0, C), b.narrow(0, 0, C), name + ".q", scale);    // [B, Nq, C]
  auto k = g.linear(kv_in, w.narrow(0, C, C), b.narrow(0, C, C), name + ".k");          // [B, N, C]
  auto v = g.linear(kv_in, w.narrow(0, 2 * C, C), b.narrow(0, 2 * C, C), name + ".v");  // [B, N, C]
  if (metric) {
    *metric = g.linear(kv_in, w.narrow(0, C, C).reshape({H, D, C}).sum(0), b.narrow(0, C, C).reshape({H, D}).sum(0),
                       name + ".metric");  // [B, N, D]
  }
  auto logits = g.op("MatMul", {heads(g, q, H, D, false, name + ".q"), heads(g, k, H, D, true, name + ".k")}, {},
                     name + ".logits");  // [B, H, Nq, N]
  if (!bias.empty()) logits = g.op("Add", {logits, bias}, {}, name + ".size_bias");
  auto probs = g.op("Softmax", {logits}, {{"axis", int64_t{-1}}}, name + ".softmax");
  auto out = g.op("MatMul", {probs, heads(g, v, H, D, false, name + ".v")}, {}, name + ".mix");  // [B, H, Nq, D]
  out = g.op("Transpose", {out}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}, name + ".merge_heads");
  out = g.op("Reshape", {out, g.ints(name + ".out_shape", {0, 0, C})}, {}, name + ".concat");  // [B, Nq, C]
  return g.linear(out, attn.proj->weight, attn.proj->bias, name + ".proj", out_scale);
}

// fc2(GELU(fc1 x)) with GELU(h) = 0.5 h (1 + erf(h / sqrt 2)): [B, N, C] -> [B, N, C].
std::string mlp(GraphBuilder& g, model::MlpImpl& m, const std::string& x, const std::string& name) {
  auto h = g.linear(x, m.fc1->weight, m.fc1->bias, name + ".fc1");
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

// ToMe's bipartite soft matching and size-weighted merge of r tokens, as model/token_merge.cpp
// does it: A = even positions, B = odd; the class token (A's first) never merges; the r A tokens
// most similar to their best B partner merge into it; output: the other A tokens in order, then B.
// The partners' updates are one-hot products: [B, N, C] -> [B, N - r, C].
Stream merge_tokens(GraphBuilder& g, const Stream& s, const std::string& metric, int64_t r, int64_t C, const Batch& bt,
                    const std::string& name) {
  const int64_t n = s.tokens, na = (n + 1) / 2, nb = n / 2, kept = na - r, out_n = n - r;
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

// One block: the stream [B, N, C] -> [B, N - r, C], or with cls_only the class row [B, 1, C].
Stream block(GraphBuilder& g, model::BlockImpl& blk, const Stream& s, const model::BlockMerge& merge, bool cls_only,
             const Batch& bt, const std::string& name) {
  const std::string& x = s.x;
  auto rows =
      cls_only
          ? g.op("Slice", {x, g.ints(name + ".start", {0}), g.ints(name + ".end", {1}), g.ints(name + ".axis", {1})},
                 {}, name + ".cls")
          : x;  // [B, Nq, C]
  const bool merges = merge.r > 0 && !cls_only;
  std::string y, metric = x;  // ToMe's metric: the keys of a full block, else the block's input
  switch (blk.mode()) {
    case model::AttentionMode::Full:
    case model::AttentionMode::Diluting: {
      const bool diluting = blk.mode() == model::AttentionMode::Diluting;
      auto h = layer_norm(g, x, blk.norm1, name + ".norm1");
      auto q_in = cls_only ? layer_norm(g, rows, blk.norm1, name + ".norm1_cls") : h;
      const bool keys = !diluting && merges;
      auto a = attention(g, *blk.attn, q_in, h, diluting ? blk.lambda() : 1.0, size_bias(g, s, merge.prop_attn, name),
                         keys ? &metric : nullptr, name + ".attn");
      auto residual = diluting ? scaled(g, rows, 2.0 - blk.lambda(), name + ".dilute") : rows;
      y = g.op("Add", {residual, a}, {}, name + ".attn_residual");
      break;
    }
    case model::AttentionMode::Removed:
      y = scaled(g, rows, blk.removed_factor(), name + ".removed");
      break;
    case model::AttentionMode::Skipped:
      throw Error(cat("ONNX export: ", name, " is in NOSE's skipped mode, which only measurement uses"));
  }
  Stream out{y, s.size, cls_only ? 1 : s.tokens};
  if (merges) out = merge_tokens(g, out, metric, merge.r, blk.mlp->fc2->weight.size(0), bt, name + ".merge");
  auto m = mlp(g, *blk.mlp, layer_norm(g, out.x, blk.norm2, name + ".norm2"), name + ".mlp");
  out.x = g.op("Add", {out.x, m}, {}, name + ".mlp_residual");
  return out;
}

// Patches + class token + position embedding: images [B, Cin, H, W] -> [B, N+1, C].
std::string embed(GraphBuilder& g, model::VisionTransformerImpl& vit, const std::string& images, const Batch& bt) {
  const ModelShape& s = vit.shape();
  auto& conv = vit.patch_embed->proj;
  auto patches =
      g.op("Conv",
           {images, g.weight("patch_embed.proj.weight", conv->weight), g.weight("patch_embed.proj.bias", conv->bias)},
           {{"kernel_shape", std::vector<int64_t>{s.patch_size, s.patch_size}},
            {"strides", std::vector<int64_t>{s.patch_size, s.patch_size}}},
           "patch_embed.proj");  // [B, C, g, g]
  patches = g.op("Reshape", {patches, g.ints("patch_embed.shape", {0, s.embed_dim, -1})}, {}, "patch_embed.flatten");
  patches = g.op("Transpose", {patches}, {{"perm", std::vector<int64_t>{0, 2, 1}}}, "patch_embed.tokens");  // [B, N, C]
  auto cls_shape = g.op("Concat", {bt.batch, g.ints("cls_token.shape", {1, s.embed_dim})}, {{"axis", int64_t{0}}},
                        "cls_token.expand_shape");
  auto cls = g.op("Expand", {g.weight("cls_token", vit.cls_token), cls_shape}, {}, "cls_token.expand");  // [B, 1, C]
  auto x = g.op("Concat", {cls, patches}, {{"axis", int64_t{1}}}, "tokens");
  return g.op("Add", {x, g.weight("pos_embed", vit.pos_embed)}, {}, "pos_embed.add");
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
                    const std::string& path) {
  torch::NoGradGuard no_grad;
  const ModelShape& s = model->shape();
  onnx::Model m;
  m.opset = kOpset;
  m.producer_name = "vitslim";
  m.producer_version = kVersion;
  m.graph_name = "vitslim_vit";
  m.inputs.push_back({"images", onnx::DataType::Float, {std::string("batch"), s.in_chans, s.img_size, s.img_size}});
  m.outputs.push_back({"logits", onnx::DataType::Float, {std::string("batch"), s.num_classes}});
  GraphBuilder g(m);
  const Batch bt = batch_values(g, "images", model->token_merging().active());
  Stream stream{embed(g, *model, "images", bt), "", s.num_tokens()};
  for (int64_t b = 0; b < s.depth; ++b) {
    stream = block(g, *model->block(b), stream, model->merge_of(b), b == s.depth - 1, bt, cat("blocks.", b));
  }
  auto x = layer_norm(g, stream.x, model->norm, "norm");                       // [B, 1, C]
  x = g.op("Reshape", {x, g.ints("cls.shape", {0, s.embed_dim})}, {}, "cls");  // [B, C]
  g.linear(x, model->head->weight, model->head->bias, "head");                 // [B, K]
  g.rename_last_output("logits");
  for (const auto& kv : model::model_metadata(model)) {
    if (kv.first != "format") m.metadata.push_back(kv);  // safetensors' own key
  }
  for (const auto& kv : metadata) m.metadata.push_back(kv);
  const auto encoded = onnx::encode(m);
  write_pieces_atomic(path, encoded.pieces);
  return encoded.size;
}

}  // namespace vitslim::deploy
