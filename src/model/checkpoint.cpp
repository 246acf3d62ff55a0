// Implements checkpoint adaptation, strict loading and export (see checkpoint.h).
#include "model/checkpoint.h"

#include <cstdio>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"

namespace vitslim::model {
namespace {

constexpr size_t kMaxListed = 8;  // keys listed per category in a mismatch error
constexpr const char* kSupportedFamilies =
    "vitslim supports timm's VisionTransformer families: DeiT (also distilled), DeiT-III, AugReg ViT, DINOv2 (also "
    "with registers), CLIP image towers, MAE/BEiT-style average pooling; not rotary embeddings, SwiGLU, "
    "relative position biases or attention pooling (EVA, BEiT, SigLIP)";

std::string join_limited(const std::vector<std::string>& names) {
  std::ostringstream out;
  for (size_t i = 0; i < names.size() && i < kMaxListed; ++i) out << (i ? ", " : "") << names[i];
  if (names.size() > kMaxListed) out << ", ... (" << names.size() << " in all)";
  return out.str();
}

// [1, P + g0*g0, C] -> [1, P + g1*g1, C] with the P prefix-token rows kept, bicubic and antialiased
// on the patch grid (timm resample_abs_pos_embed, as its checkpoint filter calls it).
torch::Tensor resample_pos_embed(const torch::Tensor& pos, int64_t prefix, int64_t grid, const std::string& file) {
  const int64_t C = pos.size(2);
  auto old_grid = pos.size(1) >= prefix ? grid_side(pos.size(1) - prefix) : std::nullopt;
  if (!old_grid)
    throw Error(cat("weights ", file, ": pos_embed has ", pos.size(1), " tokens, not ", prefix, " + a square grid"));
  auto head = pos.narrow(1, 0, prefix).to(torch::kFloat);  // [1, P, C]
  auto grid_tokens = pos.narrow(1, prefix, pos.size(1) - prefix).to(torch::kFloat);
  grid_tokens = grid_tokens.reshape({1, *old_grid, *old_grid, C}).permute({0, 3, 1, 2});  // [1, C, g0, g0]
  grid_tokens = torch::nn::functional::interpolate(grid_tokens, torch::nn::functional::InterpolateFuncOptions()
                                                                    .size(std::vector<int64_t>{grid, grid})
                                                                    .mode(torch::kBicubic)
                                                                    .align_corners(false)
                                                                    .antialias(true));
  grid_tokens = grid_tokens.permute({0, 2, 3, 1}).reshape({1, grid * grid, C});  // [1, g1*g1, C]
  return torch::cat({head, grid_tokens}, 1);
}

// Drops `prefix` from every key when all keys carry it.
void strip_common_prefix(StateDict& w, const std::string& prefix) {
  if (w.tensors.empty()) return;
  for (const auto& entry : w.tensors) {
    if (entry.first.rfind(prefix, 0) != 0) return;
  }
  for (auto& entry : w.tensors) entry.first = entry.first.substr(prefix.size());
  log_info(cat("weights ", w.file, ": stripped the '", prefix, "' prefix of every key"));
}

}  // namespace

namespace {

// Attention of removed blocks no longer exists in the model: a full checkpoint's weights for it
// are dropped (this is the merge step of docs/method.md section 4).
void drop_removed_attention(VisionTransformer& model, StateDict& weights) {
  for (int64_t b : model->removed_blocks()) {
    for (const char* part : {"norm1.", "attn.", "ls1."}) {
      const std::string prefix = cat("blocks.", b, ".", part);
      std::vector<std::string> drop;
      for (const auto& [name, t] : weights.tensors) {
        if (name.rfind(prefix, 0) == 0) drop.push_back(name);
      }
      for (const auto& name : drop) weights.erase(name);
    }
  }
}

// pos_embed to the model's grid (another resolution), and the head dropped for re-initialisation
// (then it is no longer among the parameters to fill).
void adapt_weights(const ModelShape& shape, StateDict& weights, const LoadOptions& options,
                   std::set<std::string>& params) {
  const std::string& file = weights.file;
  if (const auto* pos = weights.find("pos_embed");
      pos && pos->dim() == 3 && pos->size(1) != shape.pos_embed_tokens() && pos->size(2) == shape.embed_dim) {
    log_info(
        cat("interpolating pos_embed of ", file, " from ", pos->size(1), " to ", shape.pos_embed_tokens(), " tokens"));
    const int64_t prefix = shape.no_embed_class ? 0 : shape.num_prefix_tokens();
    auto resized = resample_pos_embed(*pos, prefix, shape.grid(), file);
    weights.erase("pos_embed");
    weights.tensors.emplace_back("pos_embed", resized);
  }
  const auto* head = weights.find("head.weight");
  const int64_t file_classes = head && head->dim() == 2 ? head->size(0) : 0;
  if (options.reset_head && shape.num_classes > 0 && file_classes != shape.num_classes) {
    log_info(cat("initialising a new head: ", file, " has ", file_classes ? cat(file_classes, " classes") : "no head",
                 ", the model ", shape.num_classes));
    for (const char* name : {"head.weight", "head.bias", "head_dist.weight", "head_dist.bias"}) {
      weights.erase(name);
      params.erase(name);
    }
  }
}

// Every missing, unexpected and mis-shaped key in one error.
void check_mapping(VisionTransformer& model, const StateDict& weights, const std::set<std::string>& params) {
  std::vector<std::string> missing, unexpected, misshaped;
  for (const auto& [name, t] : weights.tensors) {
    if (!params.count(name)) unexpected.push_back(name);
  }
  auto named = model->named_parameters();
  for (const auto& name : params) {
    const at::Tensor* src = weights.find(name);
    if (!src) {
      missing.push_back(name);
    } else if (src->sizes() != named[name].sizes()) {
      misshaped.push_back(cat(name, " ", src->sizes(), " vs model ", named[name].sizes()));
    } else if (!src->is_floating_point()) {
      misshaped.push_back(cat(name, " has dtype ", src->scalar_type()));
    }
  }
  if (missing.empty() && unexpected.empty() && misshaped.empty()) return;
  std::ostringstream msg;
  msg << "weights " << weights.file << " do not match the model (" << model->shape().describe() << "):";
  if (!missing.empty()) msg << " missing [" << join_limited(missing) << "];";
  if (!unexpected.empty()) msg << " unexpected [" << join_limited(unexpected) << "];";
  if (!misshaped.empty()) msg << " wrong shape [" << join_limited(misshaped) << "];";
  if (!unexpected.empty()) msg << " " << kSupportedFamilies;
  throw Error(msg.str());
}

}  // namespace

void load_weights(VisionTransformer& model, StateDict weights, const LoadOptions& options) {
  std::set<std::string> params;
  for (const auto& p : model->named_parameters()) params.insert(p.key());
  drop_removed_attention(model, weights);
  adapt_weights(model->shape(), weights, options, params);
  check_mapping(model, weights, params);
  torch::NoGradGuard no_grad;
  auto named = model->named_parameters();
  for (const auto& name : params) {
    const at::Tensor* src = weights.find(name);
    if (!torch::isfinite(*src).all().item<bool>()) {
      throw Error(cat("weights ", weights.file, ": ", name, " has NaN or Inf values"));
    }
    named[name].copy_(*src);
  }
}

std::map<std::string, std::string> model_metadata(VisionTransformer& model) {
  std::map<std::string, std::string> meta = {
      {"format", "pt"},
      {kMetaRemovedLayers, join_list(model->removed_blocks())},
      {kMetaNumHeads, std::to_string(model->shape().num_heads)},
      {kMetaImgSize, std::to_string(model->shape().img_size)},
  };
  meta[kMetaGlobalPool] = enum_name(kGlobalPoolNames, model->shape().global_pool);
  meta[kMetaActLayer] = enum_name(kActivationNames, model->shape().act_layer);
  meta[kMetaNormEps] = format_double(model->shape().norm_eps);
  if (model->residual_folded()) meta[kMetaResidualFolded] = "1";
  if (model->token_merging().active()) meta[kMetaTokenMerging] = tome_to_text(model->token_merging());
  if (!model->class_names().empty()) meta[kMetaClassNames] = json_text(nlohmann::json(model->class_names()), -1);
  return meta;
}

ModelFile model_file(VisionTransformer& model, const std::map<std::string, std::string>& extra,
                     const std::map<std::string, at::Tensor>* replace) {
  ModelFile file;
  for (const auto& p : model->named_parameters()) {
    const auto it = replace ? replace->find(p.key()) : std::map<std::string, at::Tensor>::const_iterator{};
    const at::Tensor& t = replace && it != replace->end() ? it->second : p.value();
    file.tensors.emplace_back(p.key(), t.detach().to(torch::kCPU, torch::kFloat));
  }
  file.metadata = model_metadata(model);
  for (const auto& [key, value] : extra) file.metadata[key] = value;
  return file;
}

void write_model_file(const ModelFile& file, const std::string& path, OutputSet* outputs) {
  write_safetensors(path, file.tensors, file.metadata, outputs);
}

void export_safetensors(VisionTransformer& model, const std::string& path,
                        const std::map<std::string, std::string>& extra, OutputSet* outputs) {
  write_model_file(model_file(model, extra), path, outputs);
}

namespace {
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;
void fnv(uint64_t& h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnvPrime;
}
}  // namespace

std::string weights_hash(VisionTransformer& model) {
  uint64_t h = kFnvOffset;
  for (const auto& p : model->named_parameters()) {
    const at::Tensor t = p.value().detach().to(torch::kCPU, torch::kFloat32).contiguous();
    fnv(h, p.key().data(), p.key().size());
    for (int64_t d : t.sizes()) fnv(h, &d, sizeof d);
    fnv(h, t.data_ptr(), static_cast<size_t>(t.numel()) * sizeof(float));
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

namespace {

// Keys of a supported ViT (timm names); anything else is another architecture, refused before any
// of it is read.
void refuse_unknown_keys(const StateDict& w) {
  static const std::regex kKnown(
      R"((cls_token|dist_token|reg_token|pos_embed|patch_embed\.proj\.(weight|bias))"
      R"(|(norm_pre|norm|fc_norm|head|head_dist)\.(weight|bias))"
      R"(|blocks\.\d+\.((norm1|norm2|mlp\.fc1|mlp\.fc2|attn\.qkv|attn\.proj|attn\.q_norm|attn\.k_norm)\.(weight|bias)))"
      R"(|blocks\.\d+\.(ls1|ls2)\.gamma))");
  std::vector<std::string> unknown;
  for (const auto& entry : w.tensors) {
    if (!std::regex_match(entry.first, kKnown)) unknown.push_back(entry.first);
  }
  if (unknown.empty()) return;
  throw Error(cat("weights ", w.file, ": unknown keys [", join_limited(unknown), "]: not a supported ViT variant. ",
                  kSupportedFamilies));
}

// What a weights file's metadata says about the model beyond its tensors.
struct RecordedModel {
  bool folded = false;
  std::vector<int64_t> removed;  // removed layers the metadata names
  std::optional<TokenMerging> merging;
  std::vector<std::string> class_names;  // a transformers id2label
};

// The first check of a weights file: a ViT state dict (patch_embed present, no unknown key).
void check_vit_keys(StateDict& weights) {
  strip_common_prefix(weights, "module.");  // saved from a DistributedDataParallel wrapper
  if (!weights.find("patch_embed.proj.weight")) {
    std::vector<std::string> first;
    for (const auto& entry : weights.tensors) {
      if (first.size() < kMaxListed) first.push_back(entry.first);
    }
    throw Error(cat("weights ", weights.file, ": no 'patch_embed.proj.weight'; not a timm/DeiT ViT state dict? ",
                    "first keys: ", join_limited(first)));
  }
  refuse_unknown_keys(weights);
}

RecordedModel read_recorded_model(const StateDict& weights) {
  RecordedModel m;
  m.removed = removed_layers_from_metadata(weights);
  auto f = weights.metadata.find(kMetaResidualFolded);
  m.folded = f != weights.metadata.end() && f->second == "1";
  if (auto n = weights.metadata.find(kMetaClassNames); n != weights.metadata.end()) {
    const std::string what = cat("weights ", weights.file, ": metadata ", kMetaClassNames);
    const auto j = parse_json_text(n->second, what);
    if (!j.is_array()) throw Error(what + ": not a list of names");
    for (const auto& name : j) {
      if (!name.is_string()) throw Error(what + ": not a list of names");
      m.class_names.push_back(name.get<std::string>());
    }
  }
  auto t = weights.metadata.find(kMetaTokenMerging);
  if (t != weights.metadata.end()) {
    m.merging = tome_from_text(t->second, cat("weights ", weights.file, ": metadata ", kMetaTokenMerging));
  }
  return m;
}

// --remove-layers and the recorded removed layers together, each a block of `shape`.
void check_removed_layers(const ModelRequest& r, const RecordedModel& recorded, const std::string& file,
                          const ModelShape& shape) {
  for (int64_t b : r.removed_layers) {
    if (b < 0 || b >= shape.depth) {
      const bool from_file = std::find(recorded.removed.begin(), recorded.removed.end(), b) != recorded.removed.end();
      throw Error(cat(from_file ? cat("weights ", file, ": metadata ", kMetaRemovedLayers) : "--remove-layers",
                      ": block ", b, " does not exist (depth ", shape.depth, ")"));
    }
  }
}

VisionTransformer build(const ModelRequest& request, uint64_t seed, std::optional<StateDict> weights) {
  const std::string file = weights ? weights->file : std::string();
  std::optional<ShapeFromWeights> from_weights;
  ModelRequest r = request;
  RecordedModel recorded;
  if (weights) {
    check_vit_keys(*weights);
    from_weights = shape_from_weights(*weights);
    recorded = read_recorded_model(*weights);
    std::set<int64_t> all(r.removed_layers.begin(), r.removed_layers.end());
    all.insert(recorded.removed.begin(), recorded.removed.end());
    if (recorded.folded && all.size() != recorded.removed.size()) {
      throw Error(cat("weights ", file, ": the residual factors are folded into the weights; ",
                      "--remove-layers cannot remove more attention layers from this model"));
    }
    r.removed_layers.assign(all.begin(), all.end());
  }
  ModelShape shape = resolve_shape(r, from_weights);
  check_removed_layers(r, recorded, file, shape);
  torch::manual_seed(seed);
  VisionTransformer model(shape, r.drop_path);
  for (int64_t b : r.removed_layers) model->set_mode(b, AttentionMode::Removed);
  model->set_residual_folded(recorded.folded);
  if (static_cast<int64_t>(recorded.class_names.size()) == shape.num_classes)
    model->set_class_names(std::move(recorded.class_names));
  if (weights) {
    LoadOptions options;
    options.reset_head = r.reset_head;
    load_weights(model, std::move(*weights), options);  // *weights is moved from now: name it by `file`
  }
  if (r.tome.given() || !recorded.merging) {
    model->set_token_merging(resolve_tome(r.tome, shape.depth));
  } else {
    try {
      model->set_token_merging(*recorded.merging);
    } catch (const Error& e) {
      throw Error(cat("weights ", file, ": metadata ", kMetaTokenMerging, ": ", e.what()));
    }
  }
  return model;
}

}  // namespace

VisionTransformer build_model(const ModelRequest& request, uint64_t seed) {
  if (request.weights.empty()) return build(request, seed, std::nullopt);
  return build(request, seed, read_weights(request.weights));
}

VisionTransformer build_model(const ModelRequest& request, uint64_t seed, StateDict weights) {
  return build(request, seed, std::move(weights));
}

}  // namespace vitslim::model
