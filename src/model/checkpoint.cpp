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

std::optional<int64_t> integer_sqrt(int64_t n) {
  auto r = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  if (r * r == n) return r;
  return std::nullopt;
}

// [1, P + g0*g0, C] -> [1, P + g1*g1, C] with the P prefix-token rows kept, bicubic and antialiased
// on the patch grid (timm resample_abs_pos_embed, as its checkpoint filter calls it).
torch::Tensor resample_pos_embed(const torch::Tensor& pos, int64_t prefix, int64_t grid, const std::string& file) {
  const int64_t C = pos.size(2);
  auto old_grid = pos.size(1) >= prefix ? integer_sqrt(pos.size(1) - prefix) : std::nullopt;
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

bool has_key_ending(const StateDict& w, const std::string& suffix) {
  for (const auto& entry : w.tensors) {
    const std::string& name = entry.first;
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  }
  return false;
}

// Image size and whether pos_embed covers the prefix tokens, from its token count: the grid is
// square, and (for a model with prefix tokens) exactly one of `tokens` and `tokens - prefix` is.
void infer_grid(const at::Tensor& pos, int64_t prefix, ShapeFromWeights& s) {
  const int64_t tokens = pos.size(1);
  s.pos_embed_tokens = tokens;
  const auto with_prefix = tokens > prefix ? integer_sqrt(tokens - prefix) : std::nullopt;
  const auto patches_only = integer_sqrt(tokens);
  if (prefix == 0 && patches_only) {
    s.img_size = *patches_only * *s.patch_size;
  } else if (with_prefix && !patches_only) {
    s.no_embed_class = false;
    s.img_size = *with_prefix * *s.patch_size;
  } else if (patches_only && !with_prefix) {
    s.no_embed_class = true;
    s.img_size = *patches_only * *s.patch_size;
  }
}

// The vitslim.* metadata of features the tensors cannot show; a bad value is an error naming it.
void read_variant_metadata(const StateDict& w, ShapeFromWeights& s) {
  auto meta = [&](const char* key) -> const std::string* {
    auto it = w.metadata.find(key);
    return it == w.metadata.end() ? nullptr : &it->second;
  };
  const std::string where = cat("weights ", w.file, ": metadata ");
  if (const auto* v = meta(kMetaGlobalPool)) s.global_pool = parse_enum(kGlobalPoolNames, *v, where + kMetaGlobalPool);
  if (const auto* v = meta(kMetaActLayer)) s.act_layer = parse_enum(kActivationNames, *v, where + kMetaActLayer);
  if (const auto* v = meta(kMetaNormEps)) s.norm_eps = parse_double(*v, where + kMetaNormEps);
}

}  // namespace

ShapeFromWeights shape_from_weights(const StateDict& w) {
  ShapeFromWeights s;
  s.file = w.file;
  if (const auto* t = w.find("patch_embed.proj.weight"); t && t->dim() == 4) {
    s.embed_dim = t->size(0);
    s.in_chans = t->size(1);
    s.patch_size = t->size(3);
    s.pre_norm = w.find("norm_pre.weight") != nullptr;
    s.class_token = w.find("cls_token") != nullptr;
    s.distilled = w.find("dist_token") != nullptr;
    const auto* reg = w.find("reg_token");
    s.reg_tokens = reg && reg->dim() == 3 ? reg->size(1) : 0;
    s.fc_norm = w.find("fc_norm.weight") != nullptr;
    s.layer_scale = has_key_ending(w, ".ls2.gamma");
    s.num_classes = 0;  // no head.weight: a backbone
  }
  if (const auto* t = w.find("head.weight"); t && t->dim() == 2) s.num_classes = t->size(0);
  if (const auto* t = w.find("pos_embed"); t && t->dim() == 3 && s.patch_size) {
    infer_grid(*t, (*s.class_token ? 1 : 0) + (*s.distilled ? 1 : 0) + *s.reg_tokens, s);
  }
  if (has_key_ending(w, ".attn.qkv.weight")) {  // blocks with attention show its biases and norms
    s.qkv_bias = has_key_ending(w, ".attn.qkv.bias");
    s.qk_norm = has_key_ending(w, ".attn.q_norm.weight");
  }
  std::regex block_key(R"(blocks\.(\d+)\..*)");
  int64_t depth = -1;
  for (const auto& [name, t] : w.tensors) {
    std::smatch m;
    if (std::regex_match(name, m, block_key)) {
      constexpr std::ptrdiff_t kMaxDigits = 6;  // block indices beyond 999999 are not a ViT
      if (m[1].length() > kMaxDigits)
        throw Error(cat("weights ", w.file, ": key '", name, "' has an absurd block index"));
      depth = std::max<int64_t>(depth, std::stoll(m[1]) + 1);
    }
  }
  if (depth > 0) s.depth = depth;
  if (const auto* t = w.find("blocks.0.mlp.fc1.weight"); t && t->dim() == 2 && s.embed_dim) {
    s.mlp_ratio = static_cast<double>(t->size(0)) / static_cast<double>(*s.embed_dim);
  }
  read_variant_metadata(w, s);
  auto meta_int = [&](const char* key) -> std::optional<int64_t> {
    auto it = w.metadata.find(key);
    if (it == w.metadata.end()) return std::nullopt;
    try {
      size_t used = 0;
      const int64_t value = std::stoll(it->second, &used);
      if (used == it->second.size()) return value;
    } catch (const std::exception&) {
    }
    throw Error(cat("weights ", w.file, ": metadata ", key, " = '", it->second, "' is not an integer"));
  };
  // Metadata only says what the tensors cannot (the heads, an image size that is not a multiple of
  // the patch); where they disagree the file is refused, naming the key.
  auto disagree = [&](const char* key, int64_t value, const std::string& why) {
    return Error(cat("weights ", w.file, ": metadata ", key, " = ", value, " disagrees with the tensors (", why, ")"));
  };
  if (auto heads = meta_int(kMetaNumHeads)) {
    if (*heads <= 0 || (s.embed_dim && *s.embed_dim % *heads != 0))
      throw disagree(kMetaNumHeads, *heads, cat("embed dim ", s.embed_dim.value_or(0), " is not a multiple"));
    s.num_heads = heads;
  }
  if (auto img = meta_int(kMetaImgSize)) {
    if (!s.patch_size || !s.pos_embed_tokens)
      throw disagree(kMetaImgSize, *img, "no patch_embed.proj.weight and pos_embed to compare with");
    if (!s.img_size && *img > 0) {  // pos_embed's count fits a grid with and without the prefix tokens
      const int64_t grid = *img / *s.patch_size, prefix = *s.pos_embed_tokens - grid * grid;
      if (prefix == 0 || prefix == (*s.class_token ? 1 : 0) + (*s.distilled ? 1 : 0) + *s.reg_tokens) {
        s.no_embed_class = prefix == 0;
        s.img_size = grid * *s.patch_size;
      }
    }
    if (!s.img_size) throw disagree(kMetaImgSize, *img, "pos_embed's token count fits no grid of this size");
    if (*img <= 0 || *img / *s.patch_size != *s.img_size / *s.patch_size)
      throw disagree(kMetaImgSize, *img,
                     cat("pos_embed holds a ", *s.img_size / *s.patch_size, "x", *s.img_size / *s.patch_size,
                         " grid of ", *s.patch_size, "-pixel patches"));
    s.img_size = img;
  }
  return s;
}

std::vector<int64_t> removed_layers_from_metadata(const StateDict& w) {
  auto it = w.metadata.find(kMetaRemovedLayers);
  if (it == w.metadata.end()) return {};
  return parse_int_list(it->second, cat("weights ", w.file, ": metadata ", kMetaRemovedLayers));
}

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

void export_safetensors(VisionTransformer& model, const std::string& path,
                        const std::map<std::string, std::string>& extra, OutputSet* outputs) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : model->named_parameters()) tensors.emplace_back(p.key(), p.value().to(torch::kFloat));
  auto metadata = model_metadata(model);
  for (const auto& [key, value] : extra) metadata[key] = value;
  write_safetensors(path, tensors, metadata, outputs);
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

VisionTransformer build(const ModelRequest& request, uint64_t seed, std::optional<StateDict> weights) {
  const std::string file = weights ? weights->file : std::string();
  std::optional<ShapeFromWeights> from_weights;
  ModelRequest r = request;
  bool folded = false;
  std::vector<int64_t> recorded;  // removed layers the weights' metadata names
  std::optional<TokenMerging> recorded_merging;
  std::vector<std::string> class_names;  // a transformers id2label
  if (weights) {
    strip_common_prefix(*weights, "module.");  // saved from a DistributedDataParallel wrapper
    if (!weights->find("patch_embed.proj.weight")) {
      std::vector<std::string> first;
      for (const auto& entry : weights->tensors) {
        if (first.size() < kMaxListed) first.push_back(entry.first);
      }
      throw Error(cat("weights ", weights->file, ": no 'patch_embed.proj.weight'; not a timm/DeiT ViT state dict? ",
                      "first keys: ", join_limited(first)));
    }
    refuse_unknown_keys(*weights);
    from_weights = shape_from_weights(*weights);
    recorded = removed_layers_from_metadata(*weights);
    auto f = weights->metadata.find(kMetaResidualFolded);
    folded = f != weights->metadata.end() && f->second == "1";
    if (auto n = weights->metadata.find(kMetaClassNames); n != weights->metadata.end()) {
      const std::string what = cat("weights ", file, ": metadata ", kMetaClassNames);
      const auto j = parse_json_text(n->second, what);
      if (!j.is_array()) throw Error(what + ": not a list of names");
      for (const auto& name : j) {
        if (!name.is_string()) throw Error(what + ": not a list of names");
        class_names.push_back(name.get<std::string>());
      }
    }
    auto t = weights->metadata.find(kMetaTokenMerging);
    if (t != weights->metadata.end()) {
      recorded_merging = tome_from_text(t->second, cat("weights ", weights->file, ": metadata ", kMetaTokenMerging));
    }
    std::set<int64_t> all(r.removed_layers.begin(), r.removed_layers.end());
    all.insert(recorded.begin(), recorded.end());
    if (folded && all.size() != recorded.size()) {
      throw Error(cat("weights ", weights->file, ": the residual factors are folded into the weights; ",
                      "--remove-layers cannot remove more attention layers from this model"));
    }
    r.removed_layers.assign(all.begin(), all.end());
  }
  ModelShape shape = resolve_shape(r, from_weights);
  for (int64_t b : r.removed_layers) {
    if (b < 0 || b >= shape.depth) {
      const bool from_file = std::find(recorded.begin(), recorded.end(), b) != recorded.end();
      throw Error(cat(from_file ? cat("weights ", weights->file, ": metadata ", kMetaRemovedLayers) : "--remove-layers",
                      ": block ", b, " does not exist (depth ", shape.depth, ")"));
    }
  }
  torch::manual_seed(seed);
  VisionTransformer model(shape, r.drop_path);
  for (int64_t b : r.removed_layers) model->set_mode(b, AttentionMode::Removed);
  model->set_residual_folded(folded);
  if (static_cast<int64_t>(class_names.size()) == shape.num_classes) model->set_class_names(std::move(class_names));
  if (weights) {
    LoadOptions options;
    options.reset_head = r.reset_head;
    load_weights(model, std::move(*weights), options);  // *weights is moved from now: name it by `file`
  }
  if (r.tome.given() || !recorded_merging) {
    model->set_token_merging(resolve_tome(r.tome, shape.depth));
  } else {
    try {
      model->set_token_merging(*recorded_merging);
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
