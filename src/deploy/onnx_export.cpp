// Implements the ONNX graph of a VisionTransformer (see onnx_export.h).
#include "deploy/onnx_export.h"

#include <torch/torch.h>

#include <cmath>

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
  std::string ints(const std::string& name, const std::vector<int64_t>& values) {
    onnx::Initializer init;
    init.name = unique(name);
    init.type = onnx::DataType::Int64;
    init.dims = {static_cast<int64_t>(values.size())};
    init.owned.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t));
    model_.initializers.push_back(std::move(init));
    return model_.initializers.back().name;
  }
  std::string scalar(const std::string& name, float value) {
    onnx::Initializer init;
    init.name = unique(name);
    init.owned.assign(reinterpret_cast<const char*>(&value), sizeof value);
    model_.initializers.push_back(std::move(init));
    return model_.initializers.back().name;
  }
  // One node with one output; returns the output's name (`name`, made unique).
  std::string op(const std::string& type, std::vector<std::string> inputs, std::vector<Attribute> attributes,
                 const std::string& name) {
    onnx::Node n;
    n.op_type = type;
    n.inputs = std::move(inputs);
    n.attributes = std::move(attributes);
    n.name = unique(name);
    n.outputs = {n.name};
    model_.nodes.push_back(std::move(n));
    return model_.nodes.back().name;
  }
  // The graph's output gets a fixed name: the last node's output is renamed.
  void rename_last_output(const std::string& name) { model_.nodes.back().outputs = {name}; }

 private:
  std::string unique(const std::string& name) {
    const int64_t n = used_[name]++;
    return n == 0 ? name : cat(name, "_", n);
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
  const std::vector<int64_t> perm = keys_transposed ? std::vector<int64_t>{0, 2, 3, 1} : std::vector<int64_t>{0, 2, 1, 3};
  return g.op("Transpose", {split}, {{"perm", perm}}, name + ".heads");
}

// The attention branch; queries from `q_in` [B, Nq, C], keys/values from `kv_in` [B, N, C]; the
// output [B, Nq, C] is multiplied by `out_scale` (lambda of a diluting block) in the projection.
std::string attention(GraphBuilder& g, model::AttentionImpl& attn, const std::string& q_in, const std::string& kv_in,
                      double out_scale, const std::string& name) {
  const int64_t C = attn.proj->weight.size(0), H = attn.num_heads, D = C / H;
  const auto& w = attn.qkv->weight;  // [3C, C]: rows q | k | v
  const auto& b = attn.qkv->bias;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  auto q = g.linear(q_in, w.narrow(0, 0, C), b.narrow(0, 0, C), name + ".q", scale);   // [B, Nq, C]
  auto k = g.linear(kv_in, w.narrow(0, C, C), b.narrow(0, C, C), name + ".k");         // [B, N, C]
  auto v = g.linear(kv_in, w.narrow(0, 2 * C, C), b.narrow(0, 2 * C, C), name + ".v");  // [B, N, C]
  auto logits = g.op("MatMul", {heads(g, q, H, D, false, name + ".q"), heads(g, k, H, D, true, name + ".k")}, {},
                     name + ".logits");                                                  // [B, H, Nq, N]
  auto probs = g.op("Softmax", {logits}, {{"axis", int64_t{-1}}}, name + ".softmax");
  auto out = g.op("MatMul", {probs, heads(g, v, H, D, false, name + ".v")}, {}, name + ".mix");  // [B, H, Nq, D]
  out = g.op("Transpose", {out}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}, name + ".merge_heads");
  out = g.op("Reshape", {out, g.ints(name + ".out_shape", {0, 0, C})}, {}, name + ".concat");  // [B, Nq, C]
  return g.linear(out, attn.proj->weight, attn.proj->bias, name + ".proj", out_scale);
}

// fc2(GELU(fc1 x)) with GELU(h) = 0.5 h (1 + erf(h / sqrt 2)): [B, N, C] -> [B, N, C].
std::string mlp(GraphBuilder& g, model::MlpImpl& m, const std::string& x, const std::string& name) {
  auto h = g.linear(x, m.fc1->weight, m.fc1->bias, name + ".fc1");
  auto erf = g.op("Erf", {g.op("Div", {h, g.scalar(name + ".sqrt2", static_cast<float>(std::sqrt(2.0)))}, {}, name + ".div")},
                  {}, name + ".erf");
  auto gate = g.op("Add", {erf, g.scalar(name + ".one", 1.0F)}, {}, name + ".add");
  auto gelu = g.op("Mul", {g.op("Mul", {h, gate}, {}, name + ".mul"), g.scalar(name + ".half", 0.5F)}, {}, name + ".gelu");
  return g.linear(gelu, m.fc2->weight, m.fc2->bias, name + ".fc2");
}

std::string scaled(GraphBuilder& g, const std::string& x, double factor, const std::string& name) {
  if (factor == 1.0) return x;
  return g.op("Mul", {x, g.scalar(name + ".factor", static_cast<float>(factor))}, {}, name);
}

// One block: [B, N, C] -> [B, N, C], or with cls_only the class row [B, 1, C].
std::string block(GraphBuilder& g, model::BlockImpl& blk, const std::string& x, bool cls_only, const std::string& name) {
  auto rows = cls_only ? g.op("Slice", {x, g.ints(name + ".start", {0}), g.ints(name + ".end", {1}), g.ints(name + ".axis", {1})},
                              {}, name + ".cls")
                       : x;  // [B, Nq, C]
  std::string y;
  switch (blk.mode()) {
    case model::AttentionMode::Full:
    case model::AttentionMode::Diluting: {
      const bool diluting = blk.mode() == model::AttentionMode::Diluting;
      auto h = layer_norm(g, x, blk.norm1, name + ".norm1");
      auto q_in = cls_only ? layer_norm(g, rows, blk.norm1, name + ".norm1_cls") : h;
      auto a = attention(g, *blk.attn, q_in, h, diluting ? blk.lambda() : 1.0, name + ".attn");
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
  auto m = mlp(g, *blk.mlp, layer_norm(g, y, blk.norm2, name + ".norm2"), name + ".mlp");
  return g.op("Add", {y, m}, {}, name + ".mlp_residual");
}

// Patches + class token + position embedding: images [B, Cin, H, W] -> [B, N+1, C].
std::string embed(GraphBuilder& g, model::VisionTransformerImpl& vit, const std::string& images) {
  const ModelShape& s = vit.shape();
  auto& conv = vit.patch_embed->proj;
  auto patches = g.op("Conv", {images, g.weight("patch_embed.proj.weight", conv->weight), g.weight("patch_embed.proj.bias", conv->bias)},
                      {{"kernel_shape", std::vector<int64_t>{s.patch_size, s.patch_size}},
                       {"strides", std::vector<int64_t>{s.patch_size, s.patch_size}}},
                      "patch_embed.proj");  // [B, C, g, g]
  patches = g.op("Reshape", {patches, g.ints("patch_embed.shape", {0, s.embed_dim, -1})}, {}, "patch_embed.flatten");
  patches = g.op("Transpose", {patches}, {{"perm", std::vector<int64_t>{0, 2, 1}}}, "patch_embed.tokens");  // [B, N, C]
  auto batch = g.op("Shape", {images}, {{"start", int64_t{0}}, {"end", int64_t{1}}}, "batch");             // [1]
  auto cls_shape = g.op("Concat", {batch, g.ints("cls_token.shape", {1, s.embed_dim})}, {{"axis", int64_t{0}}},
                        "cls_token.expand_shape");
  auto cls = g.op("Expand", {g.weight("cls_token", vit.cls_token), cls_shape}, {}, "cls_token.expand");  // [B, 1, C]
  auto x = g.op("Concat", {cls, patches}, {{"axis", int64_t{1}}}, "tokens");
  return g.op("Add", {x, g.weight("pos_embed", vit.pos_embed)}, {}, "pos_embed.add");
}

}  // namespace

uint64_t write_onnx(model::VisionTransformer& model, const std::map<std::string, std::string>& metadata,
                    const std::string& path) {
  if (model->token_merging().active()) {
    throw Error(cat("ONNX export: the model merges tokens (", model->token_merging().describe(),
                    "), which the ONNX graph does not support yet; pass --tome-r 0 to export it without merging"));
  }
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
  auto x = embed(g, *model, "images");
  for (int64_t b = 0; b < s.depth; ++b) x = block(g, *model->block(b), x, b == s.depth - 1, cat("blocks.", b));
  x = layer_norm(g, x, model->norm, "norm");                                                  // [B, 1, C]
  x = g.op("Reshape", {x, g.ints("cls.shape", {0, s.embed_dim})}, {}, "cls");                  // [B, C]
  g.linear(x, model->head->weight, model->head->bias, "head");                               // [B, K]
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
