// Implements reading transformers checkpoints (see hf_checkpoint.h): the weight files of the folder
// (one file, or the shards its index names), config.json with the defaults of its model_type (a
// saved config leaves out what equals its class's default), the key map, and the checks that
// config.json and the tensors describe one model.
#include "model/weights/hf_checkpoint.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>

#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/options.h"
#include "core/text_file.h"
#include "model/weights/hf_config.h"
#include "model/weights/weights.h"

namespace vitslim::model {
namespace fs = std::filesystem;
namespace {

constexpr const char* kConfigFile = "config.json";
const std::vector<std::string> kSingleFiles = {"model.safetensors", "pytorch_model.bin"};
const std::vector<std::string> kIndexFiles = {"model.safetensors.index.json", "pytorch_model.bin.index.json"};

// The weight files of a transformers folder, in transformers' order: safetensors (one file or a
// sharded index) before pytorch_model.bin (hub folders often hold both, the same weights); one file
// and an index of the same format is ambiguous. The shards must all exist and hold what the index says.
StateDict read_folder_tensors(const fs::path& dir) {
  std::optional<fs::path> chosen;
  for (size_t format = 0; format < kSingleFiles.size() && !chosen; ++format) {
    const fs::path single = dir / kSingleFiles[format], index = dir / kIndexFiles[format];
    const bool has_single = fs::exists(single), has_index = fs::exists(index);
    if (has_single && has_index) {
      throw Error(cat("weights ", dir.string(), ": two weight files (", single.filename().string(), " and ",
                      index.filename().string(), "); keep one"));
    }
    if (has_single || has_index) chosen = has_single ? single : index;
  }
  if (!chosen) {
    throw Error(cat("weights ", dir.string(), ": no model.safetensors, pytorch_model.bin or sharded *.index.json ",
                    "beside its config.json"));
  }
  const fs::path file = *chosen;
  if (file.extension() != ".json") return read_weight_file(file.string());
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_text_file(file.string(), "weights"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("weights ", file.string(), ": not valid JSON (", e.what(), ")"));
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw Error(cat("weights ", file.string(), ": no weight_map"));
  std::map<std::string, std::set<std::string>> shards;  // shard file -> the keys the index puts there
  for (const auto& [key, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) throw Error(cat("weights ", file.string(), ": weight_map['", key, "'] is not a file name"));
    const std::string name = shard.get<std::string>();
    if (name.empty() || fs::path(name).has_parent_path() || name == "." || name == "..")
      throw Error(cat("weights ", file.string(), ": weight_map names '", name, "', not a file of this folder"));
    shards[name].insert(key);
  }
  StateDict all;
  all.file = dir.string();
  for (const auto& [name, keys] : shards) {
    const fs::path shard = dir / name;
    if (!fs::exists(shard)) throw Error(cat("weights ", file.string(), ": names shard ", name, ", which is missing"));
    StateDict part = read_weight_file(shard.string());
    std::set<std::string> held;
    for (auto& [key, t] : part.tensors) {
      if (!keys.count(key))
        throw Error(cat("weights ", shard.string(), ": holds '", key, "', which ", file.filename().string(),
                        " puts in another shard or leaves out"));
      held.insert(key);
      all.tensors.emplace_back(key, t);
    }
    for (const auto& key : keys) {
      if (!held.count(key))
        throw Error(cat("weights ", file.string(), ": says shard ", name, " holds '", key, "'; it does not"));
    }
  }
  return all;
}

// The timm name of each per-block transformers name (after "encoder.layer.N." / "encoder.layers.N.").
// q/k/v are gathered and concatenated into attn.qkv.
const std::map<std::string, std::string>& block_map() {
  static const std::map<std::string, std::string> kMap = {
      // ViT, DeiT
      {"layernorm_before", "norm1"},
      {"layernorm_after", "norm2"},
      {"attention.output.dense", "attn.proj"},
      {"intermediate.dense", "mlp.fc1"},
      {"output.dense", "mlp.fc2"},
      // DINOv2
      {"norm1", "norm1"},
      {"norm2", "norm2"},
      {"mlp.fc1", "mlp.fc1"},
      {"mlp.fc2", "mlp.fc2"},
      {"layer_scale1", "ls1"},
      {"layer_scale2", "ls2"},
      // CLIP
      {"layer_norm1", "norm1"},
      {"layer_norm2", "norm2"},
      {"self_attn.out_proj", "attn.proj"},
  };
  return kMap;
}

// q, k or v of a block ("attention.attention.query", "self_attn.q_proj"), else -1.
int qkv_part(const std::string& module) {
  if (module == "attention.attention.query" || module == "self_attn.q_proj") return 0;
  if (module == "attention.attention.key" || module == "self_attn.k_proj") return 1;
  if (module == "attention.attention.value" || module == "self_attn.v_proj") return 2;
  return -1;
}

// The timm name of each name outside the blocks (after the model prefix); "" drops it.
std::optional<std::string> stem_name(const std::string& key) {
  static const std::map<std::string, std::string> kMap = {
      {"embeddings.cls_token", "cls_token"},
      {"embeddings.class_embedding", "cls_token"},  // CLIP: [C]
      {"embeddings.position_embeddings", "pos_embed"},
      {"embeddings.position_embedding.weight", "pos_embed"},  // CLIP: [N, C]
      {"embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight"},
      {"embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias"},
      {"embeddings.patch_embedding.weight", "patch_embed.proj.weight"},  // CLIP: no bias
      {"embeddings.register_tokens", "reg_token"},
      {"pre_layrnorm.weight", "norm_pre.weight"},  // CLIP's own spelling
      {"pre_layrnorm.bias", "norm_pre.bias"},
      {"layernorm.weight", "norm.weight"},
      {"layernorm.bias", "norm.bias"},
      {"post_layernorm.weight", "norm.weight"},  // CLIP: on the pooled token only; the same for it
      {"post_layernorm.bias", "norm.bias"},
      {"classifier.weight", "head.weight"},
      {"classifier.bias", "head.bias"},
      {"cls_classifier.weight", "head.weight"},
      {"cls_classifier.bias", "head.bias"},
      {"distillation_classifier.weight", "head_dist.weight"},
      {"distillation_classifier.bias", "head_dist.bias"},
      {"visual_projection.weight", "head.weight"},  // CLIP: no bias (a zero one is added)
      // Not part of the ViT: masked-image-modelling token, position ids, ViTModel's tanh pooler.
      {"embeddings.mask_token", ""},
      {"embeddings.position_ids", ""},
      {"pooler.dense.weight", ""},
      {"pooler.dense.bias", ""},
  };
  auto it = kMap.find(key);
  if (it == kMap.end()) return std::nullopt;
  return it->second;
}

// The model prefix of the keys ("vit.", "deit.", "dinov2.", "dinov2_with_registers.", "vision_model.",
// or none), and the
// keys of other towers a CLIPModel also holds.
std::string strip_model_prefix(const std::string& key) {
  for (const char* prefix : {"vit.", "deit.", "dinov2_with_registers.", "dinov2.", "vision_model."}) {
    if (key.rfind(prefix, 0) == 0) return key.substr(std::string(prefix).size());
  }
  return key;
}
bool other_tower(const std::string& key) {
  return key.rfind("text_model.", 0) == 0 || key == "text_projection.weight" || key == "logit_scale";
}

struct Mapped {
  StateDict timm;
  std::map<int64_t, std::array<torch::Tensor, 3>> qkv_weight, qkv_bias;
  bool dist_head = false;
  torch::Tensor dist_token;
};

void check_dtype(const std::string& file, const std::string& key, const torch::Tensor& t) {
  const auto type = t.scalar_type();
  if (type != torch::kFloat && type != torch::kBFloat16 && type != torch::kHalf)
    throw Error(
        cat("weights ", file, ": '", key, "' is ", c10::toString(type), "; float32, bfloat16 or float16 expected"));
}

// Renames each tensor; what no rule names is an error listing the keys.
Mapped map_keys(StateDict hf) {
  static const std::regex kBlock(R"(encoder\.layers?\.(\d+)\.(.+)\.(weight|bias|lambda1))");
  Mapped m;
  m.timm.file = hf.file;
  std::vector<std::string> unknown;
  for (auto& [full, t] : hf.tensors) {
    if (other_tower(full)) continue;
    const std::string key = strip_model_prefix(full);
    if (key == "embeddings.position_ids") continue;  // an int64 buffer of older checkpoints
    check_dtype(hf.file, full, t);
    std::smatch match;
    if (std::regex_match(key, match, kBlock)) {
      const int64_t b = std::stoll(match[1]);
      const std::string module = match[2], what = match[3];
      if (const int part = qkv_part(module); part >= 0) {
        (what == "bias" ? m.qkv_bias : m.qkv_weight)[b][static_cast<size_t>(part)] = t;
        continue;
      }
      auto it = block_map().find(module);
      if (it != block_map().end()) {
        const std::string leaf = what == "lambda1" ? "gamma" : what;
        m.timm.tensors.emplace_back(cat("blocks.", b, ".", it->second, ".", leaf), t);
        continue;
      }
    } else if (key == "embeddings.distillation_token") {
      m.dist_token = t;
      continue;
    } else if (const auto name = stem_name(key)) {
      if (name->rfind("head_dist", 0) == 0) m.dist_head = true;
      if (!name->empty()) m.timm.tensors.emplace_back(*name, t);
      continue;
    }
    unknown.push_back(full);
  }
  if (!unknown.empty()) {
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", " : "") + unknown[i];
    throw Error(cat("weights ", hf.file, ": keys no ViT, DeiT, DINOv2 or CLIP vision model has: ", list,
                    unknown.size() > 5 ? cat(" and ", unknown.size() - 5, " more") : ""));
  }
  return m;
}

// q, k and v of each block as timm's one qkv projection.
void join_qkv(Mapped& m) {
  for (auto* parts : {&m.qkv_weight, &m.qkv_bias}) {
    const bool bias = parts == &m.qkv_bias;
    for (auto& [b, qkv] : *parts) {
      for (const auto& t : qkv) {
        if (!t.defined())
          throw Error(
              cat("weights ", m.timm.file, ": block ", b, " lacks one of query/key/value ", bias ? "bias" : "weight"));
      }
      m.timm.tensors.emplace_back(cat("blocks.", b, ".attn.qkv.", bias ? "bias" : "weight"),
                                  torch::cat({qkv[0], qkv[1], qkv[2]}, 0));
    }
  }
}

torch::Tensor* find_mutable(StateDict& w, const std::string& name) {
  for (auto& [key, t] : w.tensors) {
    if (key == name) return &t;
  }
  return nullptr;
}

// Layout differences: CLIP's flat class embedding and position table and its bias-free projection;
// DeiT's distillation token (a timm dist_token with a second head, else a prefix token like a
// register); DINOv2 registers, which have no position embedding in transformers (the class token's
// folds into it, as timm's converted checkpoints have it).
void adapt_layout(Mapped& m, const HfConfig& c) {
  StateDict& w = m.timm;
  if (auto* cls = find_mutable(w, "cls_token"); cls && cls->dim() == 1) *cls = cls->reshape({1, 1, -1});
  if (auto* pos = find_mutable(w, "pos_embed"); pos && pos->dim() == 2) *pos = pos->unsqueeze(0);
  if (c.model_type == "clip_vision_model" && w.find("head.weight") && !w.find("head.bias")) {
    w.tensors.emplace_back("head.bias",
                           torch::zeros({w.find("head.weight")->size(0)}, w.find("head.weight")->options()));
  }
  if (m.dist_token.defined()) w.tensors.emplace_back(m.dist_head ? "dist_token" : "reg_token", m.dist_token);
  if (const auto* reg = w.find("reg_token"); reg && reg->dim() == 3 && reg->size(1) == 0) w.erase("reg_token");
  if (c.model_type == "dinov2_with_registers" && w.find("reg_token")) {
    auto* cls = find_mutable(w, "cls_token");
    auto* pos = find_mutable(w, "pos_embed");
    if (!cls || !pos || pos->size(1) < 2)
      throw Error(cat("weights ", w.file, ": registers without class token and positions"));
    *cls = *cls + pos->slice(1, 0, 1);
    *pos = pos->slice(1, 1).contiguous();
  }
}

// config.json and the tensors must describe one model; the metadata carries what only config.json says.
void check_and_describe(StateDict& w, const HfConfig& c, const std::string& config_file) {
  const auto* patch = w.find("patch_embed.proj.weight");
  if (!patch || patch->dim() != 4) throw Error(cat("weights ", w.file, ": no patch embedding"));
  auto disagree = [&](const char* field, int64_t said, int64_t tensors, const std::string& which) {
    return Error(
        cat("weights ", config_file, ": ", field, " ", said, " but ", w.file, " has ", tensors, " (", which, ")"));
  };
  if (c.hidden && *c.hidden != patch->size(0))
    throw disagree("hidden_size", *c.hidden, patch->size(0), "patch embedding");
  if (c.channels != patch->size(1)) throw disagree("num_channels", c.channels, patch->size(1), "patch embedding");
  if (c.patch_size != patch->size(3)) throw disagree("patch_size", c.patch_size, patch->size(3), "patch embedding");
  int64_t depth = 0;
  while (w.find(cat("blocks.", depth, ".mlp.fc1.weight"))) ++depth;
  if (c.layers && *c.layers != depth) throw disagree("num_hidden_layers", *c.layers, depth, "blocks");
  if (const auto* fc1 = w.find("blocks.0.mlp.fc1.weight"); c.intermediate && fc1 && *c.intermediate != fc1->size(0))
    throw disagree("intermediate_size", *c.intermediate, fc1->size(0), "blocks.0 MLP");
  const auto* reg = w.find("reg_token");
  if (c.model_type == "dinov2_with_registers" && (!reg || reg->size(1) != c.registers))
    throw disagree("num_register_tokens", c.registers, reg ? reg->size(1) : 0, "register tokens");
  if (patch->size(0) % c.heads != 0)
    throw disagree("num_attention_heads", c.heads, patch->size(0), "a width they must divide");
  // Dinov2ForImageClassification's head reads [class token, mean of the patch tokens]: 2C features.
  const auto* head = w.find("head.weight");
  const bool token_avg = head && head->dim() == 2 && head->size(1) == 2 * patch->size(0);
  if (head && head->size(1) != patch->size(0) && !token_avg) {
    throw Error(cat("weights ", w.file, ": the classifier reads ", head->size(1), " features, neither the ",
                    patch->size(0), " of the class token nor twice that"));
  }
  if (c.act != "gelu" && c.act != "quick_gelu")
    throw Error(cat("weights ", config_file, ": hidden_act '", c.act, "' is not one vitslim has (gelu, quick_gelu)"));
  w.metadata[kMetaNumHeads] = std::to_string(c.heads);
  w.metadata[kMetaNormEps] = format_double(c.eps);
  w.metadata[kMetaActLayer] = c.act;
  w.metadata[kMetaImgSize] = std::to_string(c.image_size);
  w.metadata[kMetaGlobalPool] = token_avg ? "token_avg" : "token";
  if (head && !c.id2label.empty()) {
    nlohmann::json names = nlohmann::json::array();
    for (int64_t k = 0; k < head->size(0); ++k) {
      auto it = c.id2label.find(k);
      if (it == c.id2label.end()) {
        names.clear();
        break;  // not a full table (a default LABEL_0.. of a backbone): no names
      }
      names.push_back(it->second);
    }
    if (!names.empty()) w.metadata[kMetaClassNames] = json_text(names, -1);
  }
}

StateDict convert(StateDict hf, const std::string& config_file) {
  const HfConfig c = read_hf_config(config_file);
  Mapped m = map_keys(std::move(hf));
  join_qkv(m);
  adapt_layout(m, c);
  check_and_describe(m.timm, c, config_file);
  log_info(cat("weights ", m.timm.file, ": transformers ", c.architecture.empty() ? c.model_type : c.architecture,
               " read as a timm ViT (", config_file, ")"));
  return std::move(m.timm);
}

fs::path config_beside(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) ? fs::path(path) / kConfigFile : fs::path(path).parent_path() / kConfigFile;
}

}  // namespace

bool is_hf_folder(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::is_regular_file(config_beside(path), ec);
}

StateDict read_hf_folder(const std::string& dir) {
  StateDict tensors = read_folder_tensors(dir);
  // timm's own hub folders hold config.json beside timm-named weights: those need no conversion.
  if (tensors.find("patch_embed.proj.weight")) return tensors;
  return convert(std::move(tensors), config_beside(dir).string());
}

std::optional<StateDict> hf_file_to_timm(StateDict& file) {
  std::error_code ec;
  const fs::path config = config_beside(file.file);
  if (file.find("patch_embed.proj.weight") || !fs::is_regular_file(config, ec)) return std::nullopt;
  const bool hf_keys = std::any_of(file.tensors.begin(), file.tensors.end(), [](const auto& entry) {
    const std::string key = strip_model_prefix(entry.first);
    return key.rfind("embeddings.", 0) == 0 || key.rfind("encoder.", 0) == 0;
  });
  if (!hf_keys) return std::nullopt;
  return convert(std::move(file), config.string());
}

}  // namespace vitslim::model
