// Implements the transformers folder export (see hf_export.h): the choice of class, the stock
// classes' key names (the inverse of model/weights/hf_checkpoint.cpp's table), and
// config.json for the stock classes and for the template.
#include "deploy/hf_export.h"

#include <torch/torch.h>

#include <array>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "core/json_text.h"
#include "core/version.h"
#include "model/checkpoint.h"

namespace vitslim::deploy {
namespace fs = std::filesystem;
namespace {

constexpr const char* kTemplateFile = "modeling_vitslim.py";

using Tensors = std::vector<std::pair<std::string, at::Tensor>>;

nlohmann::json labels(model::VisionTransformer& vit) {
  nlohmann::json id2label = nlohmann::json::object();
  const auto& names = vit->class_names();
  for (int64_t k = 0; k < vit->shape().num_classes; ++k)
    id2label[std::to_string(k)] = names.empty() ? cat("LABEL_", k) : names[static_cast<size_t>(k)];
  return id2label;
}

// A stock transformers class that computes a vitslim model exactly: its names (the inverse of
// model/weights/hf_checkpoint.cpp's table) and config.json.
struct StockClass {
  std::string architecture, model_type;
  std::string prefix;                       // of every key: "vit.", "deit.", "", "vision_model."
  std::string layers;                       // "encoder.layer." or "encoder.layers."
  std::map<std::string, std::string> stem;  // timm name -> transformers name (after prefix, unless it starts with '/')
  std::map<std::string, std::string> blocks;  // timm module -> transformers module
  std::array<std::string, 3> qkv;             // transformers modules of q, k, v
};

const std::map<std::string, std::string>& vit_blocks() {
  static const std::map<std::string, std::string> kMap = {{"norm1", "layernorm_before"},
                                                          {"norm2", "layernorm_after"},
                                                          {"attn.proj", "attention.output.dense"},
                                                          {"mlp.fc1", "intermediate.dense"},
                                                          {"mlp.fc2", "output.dense"}};
  return kMap;
}

const std::map<std::string, std::string>& vit_embeddings() {
  static const std::map<std::string, std::string> kMap = {
      {"cls_token", "embeddings.cls_token"},
      {"pos_embed", "embeddings.position_embeddings"},
      {"patch_embed.proj.weight", "embeddings.patch_embeddings.projection.weight"},
      {"patch_embed.proj.bias", "embeddings.patch_embeddings.projection.bias"},
      {"norm.weight", "layernorm.weight"},
      {"norm.bias", "layernorm.bias"}};
  return kMap;
}
const std::array<std::string, 3> kVitAttention = {"attention.attention.query", "attention.attention.key",
                                                  "attention.attention.value"};

// ViT, and DeiT with its teacher head.
std::optional<StockClass> vit_class(const ModelShape& s) {
  const bool plain = !s.pre_norm && s.act_layer == Activation::Gelu && !s.no_embed_class;
  if (!plain || s.global_pool != GlobalPool::Token || s.layer_scale || s.reg_tokens != 0) return std::nullopt;
  if (s.distilled && s.num_classes == 0) return std::nullopt;
  StockClass c{s.distilled         ? "DeiTForImageClassificationWithTeacher"
               : s.num_classes > 0 ? "ViTForImageClassification"
                                   : "ViTModel",
               s.distilled ? "deit" : "vit",
               s.num_classes == 0 ? ""
               : s.distilled      ? "deit."
                                  : "vit.",
               "encoder.layer.",
               vit_embeddings(),
               vit_blocks(),
               kVitAttention};
  c.stem["dist_token"] = "embeddings.distillation_token";
  c.stem["head.weight"] = s.distilled ? "/cls_classifier.weight" : "/classifier.weight";
  c.stem["head.bias"] = s.distilled ? "/cls_classifier.bias" : "/classifier.bias";
  c.stem["head_dist.weight"] = "/distillation_classifier.weight";
  c.stem["head_dist.bias"] = "/distillation_classifier.bias";
  return c;
}

// DINOv2, with or without registers.
std::optional<StockClass> dinov2_class(model::VisionTransformer& vit) {
  const ModelShape& s = vit->shape();
  const bool token = s.global_pool == GlobalPool::Token;
  const int64_t hidden = vit->block(0)->mlp->fc1->weight.size(0);
  const bool registers = s.reg_tokens > 0 && s.no_embed_class;
  const bool classifier = s.num_classes > 0;  // Dinov2ForImageClassification reads [CLS, mean of patches]
  if (!s.pre_norm && s.act_layer == Activation::Gelu && s.layer_scale && !s.distilled && token != classifier &&
      hidden % s.embed_dim == 0 && (registers || (s.reg_tokens == 0 && !s.no_embed_class))) {  // DINOv2
    const std::string type = registers ? "dinov2_with_registers" : "dinov2";
    StockClass c{cat(registers ? "Dinov2WithRegisters" : "Dinov2", classifier ? "ForImageClassification" : "Model"),
                 type,
                 classifier ? type + "." : "",
                 "encoder.layer.",
                 vit_embeddings(),
                 {{"norm1", "norm1"},
                  {"norm2", "norm2"},
                  {"attn.proj", "attention.output.dense"},
                  {"mlp.fc1", "mlp.fc1"},
                  {"mlp.fc2", "mlp.fc2"},
                  {"ls1", "layer_scale1"},
                  {"ls2", "layer_scale2"}},
                 kVitAttention};
    c.stem["reg_token"] = "embeddings.register_tokens";
    c.stem["head.weight"] = "/classifier.weight";
    c.stem["head.bias"] = "/classifier.bias";
    return c;
  }
  return std::nullopt;
}

// CLIP's vision tower (its projection has no bias: the head's must be zero).
std::optional<StockClass> clip_class(model::VisionTransformer& vit) {
  const ModelShape& s = vit->shape();
  const bool token = s.global_pool == GlobalPool::Token;
  const bool zero_bias = s.num_classes == 0 || vit->head->bias.abs().max().item<double>() == 0.0;
  if (token && s.pre_norm && s.act_layer == Activation::QuickGelu && !s.layer_scale && s.reg_tokens == 0 &&
      !s.distilled && !s.no_embed_class && zero_bias) {  // CLIP's vision tower
    return StockClass{s.num_classes > 0 ? "CLIPVisionModelWithProjection" : "CLIPVisionModel",
                      "clip_vision_model",
                      s.num_classes > 0 ? "vision_model." : "",  // as transformers saves each class
                      "encoder.layers.",
                      {{"cls_token", "embeddings.class_embedding"},
                       {"pos_embed", "embeddings.position_embedding.weight"},
                       {"patch_embed.proj.weight", "embeddings.patch_embedding.weight"},
                       {"norm_pre.weight", "pre_layrnorm.weight"},
                       {"norm_pre.bias", "pre_layrnorm.bias"},
                       {"norm.weight", "post_layernorm.weight"},
                       {"norm.bias", "post_layernorm.bias"},
                       {"head.weight", "/visual_projection.weight"},
                       {"head.bias", ""}},  // zero: the projection has none
                      {{"norm1", "layer_norm1"},
                       {"norm2", "layer_norm2"},
                       {"attn.proj", "self_attn.out_proj"},
                       {"mlp.fc1", "mlp.fc1"},
                       {"mlp.fc2", "mlp.fc2"}},
                      {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}};
  }
  return std::nullopt;
}

// The model's features no stock class has, or nullopt when one computes it exactly. Unpruned only.
std::optional<StockClass> stock_class(model::VisionTransformer& vit) {
  const ModelShape& s = vit->shape();
  if (!vit->removed_blocks().empty() || vit->residual_folded() || vit->token_merging().active() || !s.class_token ||
      s.global_pool == GlobalPool::Avg || s.fc_norm || !s.qkv_bias || s.qk_norm)
    return std::nullopt;
  if (auto c = vit_class(s)) return c;
  if (auto c = dinov2_class(vit)) return c;
  return clip_class(vit);
}

// Layout differences undone: CLIP's flat class embedding and position table; DINOv2 registers,
// whose class token carries its position (a zero row goes back in front of the positions).
at::Tensor to_stock_layout(const StockClass& c, const std::string& name, at::Tensor t) {
  if (c.model_type == "clip_vision_model" && name == "cls_token") return t.reshape({-1});             // [C]
  if (c.model_type == "clip_vision_model" && name == "pos_embed") return t.reshape({-1, t.size(2)});  // [N, C]
  if (c.model_type == "dinov2_with_registers" && name == "pos_embed")
    return torch::cat({torch::zeros({1, 1, t.size(2)}, t.options()), t}, 1);
  return t;
}

Tensors stock_tensors(model::VisionTransformer& vit, const StockClass& c) {
  Tensors out;
  auto full = [&](const std::string& name) { return name[0] == '/' ? name.substr(1) : c.prefix + name; };
  for (const auto& p : vit->named_parameters()) {
    const std::string& name = p.key();
    const at::Tensor t = to_stock_layout(c, name, p.value().detach().to(torch::kFloat));
    if (auto it = c.stem.find(name); it != c.stem.end()) {
      if (!it->second.empty()) out.emplace_back(full(it->second), t);
      continue;
    }
    const auto dot = name.find('.', 7);  // "blocks.N.rest"
    const std::string block = c.prefix + c.layers + name.substr(7, dot - 7) + ".", rest = name.substr(dot + 1);
    const auto leaf_at = rest.rfind('.');
    const std::string module = rest.substr(0, leaf_at), leaf = rest.substr(leaf_at + 1);
    if (module == "attn.qkv") {
      const auto parts = t.chunk(3, 0);
      for (size_t i = 0; i < 3; ++i) out.emplace_back(block + c.qkv[i] + "." + leaf, parts[i]);
    } else if (auto it = c.blocks.find(module); it != c.blocks.end()) {
      out.emplace_back(block + it->second + "." + (leaf == "gamma" ? "lambda1" : leaf), t);
    } else {
      throw Error(cat("export --format hf: parameter ", name, " has no ", c.architecture, " name"));
    }
  }
  if (c.model_type.rfind("dinov2", 0) == 0)  // the masked-image-modelling token, unused in inference
    out.emplace_back(c.prefix + "embeddings.mask_token", torch::zeros({1, vit->shape().embed_dim}));
  return out;
}

nlohmann::json stock_config(model::VisionTransformer& vit, const StockClass& c) {
  const ModelShape& s = vit->shape();
  const int64_t hidden = vit->block(0)->mlp->fc1->weight.size(0);
  nlohmann::json j = {{"architectures", {c.architecture}},
                      {"model_type", c.model_type},
                      {"hidden_size", s.embed_dim},
                      {"num_hidden_layers", s.depth},
                      {"num_attention_heads", s.num_heads},
                      {"hidden_act", enum_name(kActivationNames, s.act_layer)},
                      {"layer_norm_eps", s.norm_eps},
                      {"image_size", s.img_size},
                      {"patch_size", s.patch_size},
                      {"num_channels", s.in_chans},
                      {"dtype", "float32"}};
  if (c.model_type.rfind("dinov2", 0) == 0) {
    j["mlp_ratio"] = hidden / s.embed_dim;
    j["qkv_bias"] = true;
    if (s.reg_tokens > 0) j["num_register_tokens"] = s.reg_tokens;
  } else {
    j["intermediate_size"] = hidden;
  }
  if (c.model_type == "vit" || c.model_type == "deit") {
    j["qkv_bias"] = true;
    j["hidden_dropout_prob"] = 0.0;
    j["attention_probs_dropout_prob"] = 0.0;
  }
  if (c.model_type == "clip_vision_model" && s.num_classes > 0) j["projection_dim"] = s.num_classes;
  if (s.num_classes > 0 && c.model_type != "clip_vision_model") j["id2label"] = labels(vit);
  return j;
}

nlohmann::json template_config(model::VisionTransformer& vit, const std::map<std::string, std::string>& metadata) {
  const ModelShape& s = vit->shape();
  const std::string classes = "modeling_vitslim.VitslimVisionTransformer";
  nlohmann::json c = {{"architectures", {"VitslimVisionTransformer"}},
                      {"model_type", "vitslim_vit"},
                      {"auto_map",
                       {{"AutoConfig", "modeling_vitslim.VitslimConfig"},
                        {"AutoModel", classes},
                        {"AutoModelForImageClassification", classes}}},
                      {"img_size", s.img_size},
                      {"patch_size", s.patch_size},
                      {"in_chans", s.in_chans},
                      {"embed_dim", s.embed_dim},
                      {"depth", s.depth},
                      {"num_heads", s.num_heads},
                      {"mlp_hidden", vit->block(0)->mlp->fc1->weight.size(0)},
                      {"num_classes", s.num_classes},
                      {"class_token", s.class_token},
                      {"reg_tokens", s.reg_tokens},
                      {"distilled", s.distilled},
                      {"no_embed_class", s.no_embed_class},
                      {"global_pool", enum_name(kGlobalPoolNames, s.global_pool)},
                      {"fc_norm", s.fc_norm},
                      {"pre_norm", s.pre_norm},
                      {"qkv_bias", s.qkv_bias},
                      {"qk_norm", s.qk_norm},
                      {"layer_scale", s.layer_scale},
                      {"act_layer", enum_name(kActivationNames, s.act_layer)},
                      {"norm_eps", s.norm_eps},
                      {"removed_layers", vit->removed_blocks()},
                      {"residual_folded", vit->residual_folded()},
                      {"token_merging", nullptr},
                      {"vitslim_version", kVersion},
                      {"dtype", "float32"}};
  if (s.num_classes > 0) c["id2label"] = labels(vit);
  if (const auto& tm = vit->token_merging(); tm.active()) {
    std::vector<int64_t> r(static_cast<size_t>(s.depth), 0);  // one r per block, as the template reads it
    for (size_t b = 0; b < r.size() && b < tm.r.size(); ++b) r[b] = tm.r[b];
    c["token_merging"] = {{"r", r}, {"prop_attn", tm.prop_attn}, {"mlp_blocks", tm.mlp_blocks}};
  }
  for (const auto& [key, value] : metadata) {
    if (key.rfind("vitslim.", 0) == 0) c["vitslim_metadata"][key] = value;  // provenance, preprocessing
  }
  return c;
}

}  // namespace

bool hf_folder_file(const std::string& name) {
  return name == "config.json" || name == "model.safetensors" || name == kTemplateFile;
}

std::string write_hf_folder(model::VisionTransformer& vit, const std::map<std::string, std::string>& metadata,
                            const std::string& dir, OutputSet& outputs) {
  const fs::path folder(dir);
  nlohmann::json config;
  if (const auto stock = stock_class(vit)) {
    model::write_safetensors((folder / "model.safetensors").string(), stock_tensors(vit, *stock), {{"format", "pt"}},
                             &outputs);
    config = stock_config(vit, *stock);
  } else {
    // A vitslim export as it is (timm names, vitslim.* metadata): vitslim reads the folder back.
    model::export_safetensors(vit, (folder / "model.safetensors").string(), metadata, &outputs);
    outputs.write((folder / kTemplateFile).string(), std::string(hf_modeling_template()));
    config = template_config(vit, metadata);
  }
  outputs.write((folder / "config.json").string(), json_text(config) + "\n");
  return config["architectures"][0].get<std::string>();
}

}  // namespace vitslim::deploy
