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
#include "core/log.h"

namespace vitslim::model {
namespace {

constexpr size_t kMaxListed = 8;  // keys listed per category in a mismatch error

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

// [1, 1 + g0*g0, C] -> [1, 1 + g1*g1, C], bicubic on the patch grid (timm resample_abs_pos_embed).
torch::Tensor resample_pos_embed(const torch::Tensor& pos, int64_t grid, const std::string& file) {
  const int64_t C = pos.size(2);
  auto old_grid = integer_sqrt(pos.size(1) - 1);
  if (!old_grid) throw Error(cat("weights ", file, ": pos_embed has ", pos.size(1), " tokens, not 1 + a square grid"));
  auto cls = pos.narrow(1, 0, 1);  // [1, 1, C]
  auto grid_tokens = pos.narrow(1, 1, pos.size(1) - 1).to(torch::kFloat);
  grid_tokens = grid_tokens.reshape({1, *old_grid, *old_grid, C}).permute({0, 3, 1, 2});  // [1, C, g0, g0]
  grid_tokens = torch::nn::functional::interpolate(grid_tokens, torch::nn::functional::InterpolateFuncOptions()
                                                                    .size(std::vector<int64_t>{grid, grid})
                                                                    .mode(torch::kBicubic)
                                                                    .align_corners(false));
  grid_tokens = grid_tokens.permute({0, 2, 3, 1}).reshape({1, grid * grid, C});  // [1, g1*g1, C]
  return torch::cat({cls.to(torch::kFloat), grid_tokens}, 1);
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

ShapeFromWeights shape_from_weights(const StateDict& w) {
  ShapeFromWeights s;
  s.file = w.file;
  if (const auto* t = w.find("patch_embed.proj.weight"); t && t->dim() == 4) {
    s.embed_dim = t->size(0);
    s.in_chans = t->size(1);
    s.patch_size = t->size(3);
  }
  if (const auto* t = w.find("head.weight"); t && t->dim() == 2) s.num_classes = t->size(0);
  if (const auto* t = w.find("pos_embed"); t && t->dim() == 3 && s.patch_size) {
    if (auto g = integer_sqrt(t->size(1) - 1)) s.img_size = *g * *s.patch_size;
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
    if (!s.patch_size || !s.img_size)
      throw disagree(kMetaImgSize, *img, "no patch_embed.proj.weight and pos_embed to compare with");
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
    for (const char* part : {"norm1.", "attn."}) {
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
      pos && pos->dim() == 3 && pos->size(1) != shape.num_tokens() && pos->size(2) == shape.embed_dim) {
    log_info(cat("interpolating pos_embed of ", file, " from ", pos->size(1), " to ", shape.num_tokens(), " tokens"));
    auto resized = resample_pos_embed(*pos, shape.grid(), file);
    weights.erase("pos_embed");
    weights.tensors.emplace_back("pos_embed", resized);
  }
  if (const auto* head = weights.find("head.weight");
      options.reset_head && head && head->dim() == 2 && head->size(0) != shape.num_classes) {
    log_info(
        cat("re-initialising the head: ", file, " has ", head->size(0), " classes, the model ", shape.num_classes));
    for (const char* name : {"head.weight", "head.bias"}) {
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
  if (model->residual_folded()) meta[kMetaResidualFolded] = "1";
  if (model->token_merging().active()) meta[kMetaTokenMerging] = tome_to_text(model->token_merging());
  return meta;
}

void export_safetensors(VisionTransformer& model, const std::string& path,
                        const std::map<std::string, std::string>& extra) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : model->named_parameters()) tensors.emplace_back(p.key(), p.value().to(torch::kFloat));
  auto metadata = model_metadata(model);
  for (const auto& [key, value] : extra) metadata[key] = value;
  write_safetensors(path, tensors, metadata);
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

VisionTransformer build(const ModelRequest& request, uint64_t seed, std::optional<StateDict> weights) {
  std::optional<ShapeFromWeights> from_weights;
  ModelRequest r = request;
  bool folded = false;
  std::vector<int64_t> recorded;  // removed layers the weights' metadata names
  std::optional<TokenMerging> recorded_merging;
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
    from_weights = shape_from_weights(*weights);
    recorded = removed_layers_from_metadata(*weights);
    auto f = weights->metadata.find(kMetaResidualFolded);
    folded = f != weights->metadata.end() && f->second == "1";
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
  if (weights) {
    LoadOptions options;
    options.reset_head = r.reset_head;
    load_weights(model, std::move(*weights), options);
  }
  if (r.tome.given() || !recorded_merging) {
    model->set_token_merging(resolve_tome(r.tome, shape.depth));
  } else {
    try {
      model->set_token_merging(*recorded_merging);
    } catch (const Error& e) {
      throw Error(cat("weights ", weights->file, ": metadata ", kMetaTokenMerging, ": ", e.what()));
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
