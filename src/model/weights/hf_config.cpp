// Implements reading a transformers config.json (see hf_config.h).
#include "model/weights/hf_config.h"

#include <nlohmann/json.hpp>
#include <typeinfo>
#include <utility>

#include "core/error.h"
#include "core/text_file.h"

namespace vitslim::model {
namespace {

// The defaults of each config class (transformers' ViTConfig, DeiTConfig, Dinov2Config,
// Dinov2WithRegistersConfig, CLIPVisionConfig).
HfConfig defaults_of(const std::string& type, const std::string& file) {
  HfConfig c;
  c.file = file;
  c.model_type = type;
  if (type == "vit" || type == "deit") return c;
  if (type == "dinov2" || type == "dinov2_with_registers") {
    c.eps = 1e-6;
    c.patch_size = 14;
    c.registers = type == "dinov2_with_registers" ? 4 : 0;
    return c;
  }
  if (type == "clip_vision_model") {
    c.eps = 1e-5;
    c.patch_size = 32;
    c.act = "quick_gelu";
    return c;
  }
  throw Error(cat("weights ", file, ": model_type '", type,
                  "' is not a ViT vitslim reads (vit, deit, dinov2, dinov2_with_registers, clip, clip_vision_model)"));
}

template <typename T>
void read_field(const nlohmann::json& j, const char* key, T& field, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return;
  try {
    field = j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(cat("weights ", file, ": ", key, " is ", j[key].dump(), ", not a ",
                    typeid(T) == typeid(std::string) ? "string" : "number"));
  }
}

}  // namespace

HfConfig read_hf_config(const std::string& file) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(file, "weights"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("weights ", file, ": not valid JSON (", e.what(), ")"));
  }
  if (!j.is_object()) throw Error(cat("weights ", file, ": not a JSON object"));
  std::string type = j.value("model_type", std::string());
  std::string architecture;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    architecture = j["architectures"][0].get<std::string>();
  if (type == "clip") {  // a whole CLIPModel: its vision tower
    if (!j.contains("vision_config") || !j["vision_config"].is_object())
      throw Error(cat("weights ", file, ": a CLIP config without vision_config"));
    j = j["vision_config"];
    type = "clip_vision_model";
  }
  HfConfig c = defaults_of(type, file);
  c.architecture = architecture;
  read_field(j, "num_attention_heads", c.heads, file);
  read_field(j, "layer_norm_eps", c.eps, file);
  read_field(j, "hidden_act", c.act, file);
  read_field(j, "image_size", c.image_size, file);
  read_field(j, "patch_size", c.patch_size, file);
  read_field(j, "num_channels", c.channels, file);
  read_field(j, "num_register_tokens", c.registers, file);
  read_field(j, "use_swiglu_ffn", c.swiglu, file);
  for (auto [key, field] : {std::pair<const char*, std::optional<int64_t>*>{"hidden_size", &c.hidden},
                            {"num_hidden_layers", &c.layers},
                            {"intermediate_size", &c.intermediate}}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    int64_t v = 0;
    read_field(j, key, v, file);
    *field = v;
  }
  if (j.contains("id2label") && j["id2label"].is_object()) {
    for (const auto& [key, name] : j["id2label"].items()) {
      try {
        c.id2label[std::stoll(key)] = name.get<std::string>();
      } catch (const std::exception&) {
        throw Error(cat("weights ", file, ": id2label entry '", key, "' is not an integer with a name"));
      }
    }
  }
  if (c.heads <= 0) throw Error(cat("weights ", file, ": num_attention_heads ", c.heads, " must be positive"));
  if (c.swiglu)
    throw Error(cat("weights ", file, ": use_swiglu_ffn (DINOv2 giant's SwiGLU MLP) is not a ViT vitslim has"));
  return c;
}

}  // namespace vitslim::model
