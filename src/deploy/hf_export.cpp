// Implements the transformers folder export (see hf_export.h): the choice of class, the stock
// classes' key names (the inverse of model/hf_checkpoint.cpp's table for ViT and DeiT), and
// config.json for the stock classes and for the template.
#include "deploy/hf_export.h"

#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_text.h"
#include "core/version.h"
#include "model/checkpoint.h"

namespace vitslim::deploy {
namespace fs = std::filesystem;
namespace {

constexpr const char* kTemplateFile = "modeling_vitslim.py";

using Tensors = std::vector<std::pair<std::string, at::Tensor>>;

// An unpruned model that transformers' ViT (or DeiT with teacher) classes compute exactly.
bool stock_vit(model::VisionTransformer& vit) {
  const ModelShape& s = vit->shape();
  const bool deit = s.distilled && s.num_classes > 0;
  return s.class_token && (!s.distilled || deit) && s.reg_tokens == 0 && !s.no_embed_class &&
         s.global_pool == GlobalPool::Token && !s.fc_norm && !s.pre_norm && s.qkv_bias && !s.qk_norm &&
         !s.layer_scale && s.act_layer == Activation::Gelu && vit->removed_blocks().empty() &&
         !vit->residual_folded() && !vit->token_merging().active();
}

nlohmann::json labels(model::VisionTransformer& vit) {
  nlohmann::json id2label = nlohmann::json::object();
  const auto& names = vit->class_names();
  for (int64_t k = 0; k < vit->shape().num_classes; ++k)
    id2label[std::to_string(k)] = names.empty() ? cat("LABEL_", k) : names[static_cast<size_t>(k)];
  return id2label;
}

// The inverse of the import's key table for ViT/DeiT: q, k and v split from timm's qkv.
Tensors stock_tensors(model::VisionTransformer& vit, const std::string& prefix) {
  static const std::map<std::string, std::string> kBlock = {{"norm1", "layernorm_before"},
                                                            {"norm2", "layernorm_after"},
                                                            {"attn.proj", "attention.output.dense"},
                                                            {"mlp.fc1", "intermediate.dense"},
                                                            {"mlp.fc2", "output.dense"}};
  const bool deit = vit->shape().distilled;
  const std::map<std::string, std::string> kStem = {
      {"cls_token", prefix + "embeddings.cls_token"},
      {"dist_token", prefix + "embeddings.distillation_token"},
      {"pos_embed", prefix + "embeddings.position_embeddings"},
      {"patch_embed.proj.weight", prefix + "embeddings.patch_embeddings.projection.weight"},
      {"patch_embed.proj.bias", prefix + "embeddings.patch_embeddings.projection.bias"},
      {"norm.weight", prefix + "layernorm.weight"},
      {"norm.bias", prefix + "layernorm.bias"},
      {"head.weight", deit ? "cls_classifier.weight" : "classifier.weight"},
      {"head.bias", deit ? "cls_classifier.bias" : "classifier.bias"},
      {"head_dist.weight", "distillation_classifier.weight"},
      {"head_dist.bias", "distillation_classifier.bias"}};
  Tensors out;
  for (const auto& p : vit->named_parameters()) {
    const std::string& name = p.key();
    const at::Tensor t = p.value().detach().to(torch::kFloat);
    if (auto it = kStem.find(name); it != kStem.end()) {
      out.emplace_back(it->second, t);
      continue;
    }
    const auto dot = name.find('.', 7);  // "blocks.N.rest"
    const std::string block = prefix + "encoder.layer." + name.substr(7, dot - 7) + ".", rest = name.substr(dot + 1);
    const auto leaf_at = rest.rfind('.');
    const std::string module = rest.substr(0, leaf_at), leaf = rest.substr(leaf_at + 1);
    if (module == "attn.qkv") {
      const auto parts = t.chunk(3, 0);
      const char* names[] = {"query", "key", "value"};
      for (int i = 0; i < 3; ++i) out.emplace_back(block + "attention.attention." + names[i] + "." + leaf, parts[i]);
    } else if (auto it = kBlock.find(module); it != kBlock.end()) {
      out.emplace_back(block + it->second + "." + leaf, t);
    } else {
      throw Error(cat("export --format hf: parameter ", name, " has no transformers name"));
    }
  }
  return out;
}

nlohmann::json stock_config(model::VisionTransformer& vit) {
  const ModelShape& s = vit->shape();
  const bool deit = s.distilled;
  const char* architecture = deit                ? "DeiTForImageClassificationWithTeacher"
                             : s.num_classes > 0 ? "ViTForImageClassification"
                                                 : "ViTModel";
  nlohmann::json c = {{"architectures", {architecture}},
                      {"model_type", deit ? "deit" : "vit"},
                      {"hidden_size", s.embed_dim},
                      {"num_hidden_layers", s.depth},
                      {"num_attention_heads", s.num_heads},
                      {"intermediate_size", vit->block(0)->mlp->fc1->weight.size(0)},
                      {"hidden_act", "gelu"},
                      {"layer_norm_eps", s.norm_eps},
                      {"image_size", s.img_size},
                      {"patch_size", s.patch_size},
                      {"num_channels", s.in_chans},
                      {"qkv_bias", true},
                      {"hidden_dropout_prob", 0.0},
                      {"attention_probs_dropout_prob", 0.0},
                      {"dtype", "float32"}};
  if (s.num_classes > 0) c["id2label"] = labels(vit);
  return c;
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
                      {"vitslim_version", kVersion},
                      {"dtype", "float32"}};
  if (s.num_classes > 0) c["id2label"] = labels(vit);
  for (const auto& [key, value] : metadata) {
    if (key.rfind("vitslim.", 0) == 0) c["vitslim_metadata"][key] = value;  // provenance, preprocessing
  }
  return c;
}

}  // namespace

std::string write_hf_folder(model::VisionTransformer& vit, const std::map<std::string, std::string>& metadata,
                            const std::string& dir, OutputSet& outputs) {
  if (vit->token_merging().active()) {
    throw Error(
        "export --format hf: token merging is not in the transformers template; export without it (--tome-r 0) or "
        "as ONNX");
  }
  const fs::path folder(dir);
  nlohmann::json config;
  if (stock_vit(vit)) {
    const ModelShape& s = vit->shape();
    const std::string prefix = s.num_classes == 0 ? "" : s.distilled ? "deit." : "vit.";
    model::write_safetensors((folder / "model.safetensors").string(), stock_tensors(vit, prefix), {{"format", "pt"}},
                             &outputs);
    config = stock_config(vit);
  } else {
    Tensors tensors;
    for (const auto& p : vit->named_parameters()) tensors.emplace_back(p.key(), p.value().detach().to(torch::kFloat));
    model::write_safetensors((folder / "model.safetensors").string(), tensors, {{"format", "pt"}}, &outputs);
    outputs.write((folder / kTemplateFile).string(), std::string(hf_modeling_template()));
    config = template_config(vit, metadata);
  }
  outputs.write((folder / "config.json").string(), json_text(config) + "\n");
  return config["architectures"][0].get<std::string>();
}

}  // namespace vitslim::deploy
