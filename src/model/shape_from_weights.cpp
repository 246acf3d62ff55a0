// Implements what a state dict says about the model's shape (see checkpoint.h): the sizes from
// the tensors, the variant features from the keys, and what only the metadata can say (heads, an
// image size the patches do not divide, pooling, activation, norm epsilon).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <regex>

#include "core/error.h"
#include "model/checkpoint.h"

namespace vitslim::model {

std::optional<int64_t> grid_side(int64_t tokens) {
  auto r = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(tokens))));
  if (r * r == tokens) return r;
  return std::nullopt;
}

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
  const auto with_prefix = tokens > prefix ? grid_side(tokens - prefix) : std::nullopt;
  const auto patches_only = grid_side(tokens);
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

namespace {

// 1 + the largest N of the blocks.N.* keys (-1: none).
int64_t depth_from_keys(const StateDict& w) {
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
  return depth;
}

// The heads and the image size from the metadata, where the tensors cannot say them.
void read_shape_metadata(const StateDict& w, ShapeFromWeights& s) {
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
  if (const int64_t depth = depth_from_keys(w); depth > 0) s.depth = depth;
  if (const auto* t = w.find("blocks.0.mlp.fc1.weight"); t && t->dim() == 2 && s.embed_dim) {
    s.mlp_ratio = static_cast<double>(t->size(0)) / static_cast<double>(*s.embed_dim);
  }
  read_variant_metadata(w, s);
  read_shape_metadata(w, s);
  return s;
}

std::vector<int64_t> removed_layers_from_metadata(const StateDict& w) {
  auto it = w.metadata.find(kMetaRemovedLayers);
  if (it == w.metadata.end()) return {};
  return parse_int_list(it->second, cat("weights ", w.file, ": metadata ", kMetaRemovedLayers));
}

}  // namespace vitslim::model
