// Implements presets and shape resolution (see presets.h).
#include "model/presets.h"

#include <map>
#include <set>

#include "core/error.h"
#include "core/log.h"

namespace vitslim::model {
namespace {

ModelShape make(int64_t img, int64_t patch, int64_t chans, int64_t dim, int64_t depth, int64_t heads, int64_t classes) {
  ModelShape s;
  s.img_size = img;
  s.patch_size = patch;
  s.in_chans = chans;
  s.embed_dim = dim;
  s.depth = depth;
  s.num_heads = heads;
  s.num_classes = classes;
  return s;
}

const std::map<std::string, ModelShape>& presets() {
  static const std::map<std::string, ModelShape> kPresets = {
      {"deit_tiny_patch16_224", make(224, 16, 3, 192, 12, 3, 1000)},
      {"deit_small_patch16_224", make(224, 16, 3, 384, 12, 6, 1000)},
      {"deit_base_patch16_224", make(224, 16, 3, 768, 12, 12, 1000)},
      // Fashion-MNIST: 28 px grey images, 7x7 patches of 4 px (the e2e anchor of issue 8).
      {"vit_fmnist", make(28, 4, 1, 64, 6, 4, 10)},
      // Tiny shape for unit tests and the golden fixture.
      {"vit_test", make(32, 8, 3, 24, 4, 2, 10)},
  };
  return kPresets;
}

std::string canonical(const std::string& name) {
  if (presets().count(name)) return name;
  if (presets().count(name + "_patch16_224")) return name + "_patch16_224";
  return "";
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, _] : presets()) names.push_back(name);
  return names;
}

ModelShape preset(const std::string& name) {
  std::string key = canonical(name);
  if (key.empty()) {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error(cat("--model: unknown preset '", name, "' (known: ", known, ")"));
  }
  return presets().at(key);
}

bool use_default_preset(ModelRequest& r, const std::string& name, bool announce) {
  if (!r.preset.empty() || !r.weights.empty() || r.img_size || r.patch_size || r.in_chans || r.embed_dim || r.depth ||
      r.num_heads || r.num_classes) {
    return false;
  }
  r.preset = name;
  if (announce) log_info(cat("no model given: preset ", name, " with seeded random weights (--seed)"));
  return true;
}

void fill_from_preset(ModelRequest& r) {
  if (r.preset.empty()) return;
  const ModelShape s = preset(r.preset);
  if (!r.img_size) r.img_size = s.img_size;
  if (!r.patch_size) r.patch_size = s.patch_size;
  if (!r.in_chans) r.in_chans = s.in_chans;
  if (!r.embed_dim) r.embed_dim = s.embed_dim;
  if (!r.depth) r.depth = s.depth;
  if (!r.num_heads) r.num_heads = s.num_heads;
  if (!r.mlp_ratio) r.mlp_ratio = s.mlp_ratio;
  if (!r.num_classes) r.num_classes = s.num_classes;
}

namespace {
void check_resolved(const ModelShape& s, const std::optional<ShapeFromWeights>& w);
}  // namespace

ModelShape resolve_shape(const ModelRequest& r, const std::optional<ShapeFromWeights>& w) {
  std::optional<ModelShape> base;
  if (!r.preset.empty()) base = preset(r.preset);

  auto pick = [&](const char* flag, std::optional<int64_t> given, std::optional<int64_t> from_preset,
                  std::optional<int64_t> from_weights, bool weights_may_differ) -> int64_t {
    std::optional<int64_t> v = given ? given : from_preset;
    if (v && from_weights && *v != *from_weights && !weights_may_differ) {
      throw Error(cat("--", flag, " is ", *v, (given ? "" : cat(" (preset ", r.preset, ")")), " but weights ", w->file,
                      " have ", *from_weights));
    }
    if (!v) v = from_weights;
    if (!v) {
      throw Error(cat("--", flag, " is needed: no preset gives it",
                      w ? cat(" and weights ", w->file, " do not determine it") : std::string()));
    }
    return *v;
  };
  auto field = [&](auto member) -> std::optional<int64_t> {
    if (!base) return std::nullopt;
    return (*base).*member;
  };
  auto from_w = [&](std::optional<int64_t> ShapeFromWeights::*member) -> std::optional<int64_t> {
    if (!w) return std::nullopt;
    return (*w).*member;
  };

  ModelShape s;
  s.patch_size =
      pick("patch-size", r.patch_size, field(&ModelShape::patch_size), from_w(&ShapeFromWeights::patch_size), false);
  s.in_chans = pick("in-chans", r.in_chans, field(&ModelShape::in_chans), from_w(&ShapeFromWeights::in_chans), false);
  s.embed_dim =
      pick("embed-dim", r.embed_dim, field(&ModelShape::embed_dim), from_w(&ShapeFromWeights::embed_dim), false);
  s.depth = pick("depth", r.depth, field(&ModelShape::depth), from_w(&ShapeFromWeights::depth), false);
  s.num_heads =
      pick("num-heads", r.num_heads, field(&ModelShape::num_heads), from_w(&ShapeFromWeights::num_heads), false);
  // pos_embed is interpolated to another resolution and the head can be re-initialised.
  s.img_size = pick("img-size", r.img_size, field(&ModelShape::img_size), from_w(&ShapeFromWeights::img_size), true);
  s.num_classes = pick("num-classes", r.num_classes, field(&ModelShape::num_classes),
                       from_w(&ShapeFromWeights::num_classes), r.reset_head);
  std::optional<double> ratio = r.mlp_ratio ? r.mlp_ratio
                                : base      ? std::optional<double>(base->mlp_ratio)
                                            : std::nullopt;
  if (ratio && w && w->mlp_ratio && *ratio != *w->mlp_ratio) {
    throw Error(cat("--mlp-ratio is ", *ratio, " but weights ", w->file, " have ", *w->mlp_ratio));
  }
  s.mlp_ratio = ratio ? *ratio : (w && w->mlp_ratio ? *w->mlp_ratio : 4.0);
  check_resolved(s, w);
  return s;
}

namespace {

// The resolved shape must describe a model that can exist.
void check_resolved(const ModelShape& s, const std::optional<ShapeFromWeights>& w) {
  constexpr int64_t kMaxDepth = 1024;
  for (auto [name, v] : {std::pair<const char*, int64_t>{"img-size", s.img_size},
                         {"patch-size", s.patch_size},
                         {"in-chans", s.in_chans},
                         {"embed-dim", s.embed_dim},
                         {"depth", s.depth},
                         {"num-heads", s.num_heads},
                         {"num-classes", s.num_classes}}) {
    if (v <= 0)
      throw Error(cat("--", name, " resolved to ", v, w ? cat(" from weights ", w->file) : "", "; must be positive"));
  }
  if (s.depth > kMaxDepth)
    throw Error(cat("depth ", s.depth, w ? cat(" (weights ", w->file, ")") : "", " exceeds ", kMaxDepth));
  if (!(s.mlp_ratio > 0)) throw Error(cat("mlp ratio ", s.mlp_ratio, " must be positive"));
  if (static_cast<int64_t>(static_cast<double>(s.embed_dim) * s.mlp_ratio) < 1) {
    throw Error(cat("--mlp-ratio ", s.mlp_ratio, " gives an MLP of no hidden unit at embed dim ", s.embed_dim));
  }
  if (s.img_size % s.patch_size != 0) {
    throw Error(cat("image size ", s.img_size, " is not a multiple of patch size ", s.patch_size));
  }
  if (s.embed_dim % s.num_heads != 0) {
    throw Error(cat("embed dim ", s.embed_dim, " is not divisible by ", s.num_heads, " heads"));
  }
  // The removed blocks are checked against this depth by build_model, which knows whether each
  // came from --remove-layers or from the weights' metadata.
}

}  // namespace

}  // namespace vitslim::model

namespace vitslim {

void ModelRequest::validate(const std::vector<int64_t>& layers) const {
  if (img_size && patch_size && *img_size % *patch_size != 0) {
    throw Error(cat("--img-size ", *img_size, " is not a multiple of --patch-size ", *patch_size));
  }
  if (embed_dim && num_heads && *embed_dim % *num_heads != 0) {
    throw Error(cat("--embed-dim ", *embed_dim, " is not divisible by --num-heads ", *num_heads));
  }
  std::set<int64_t> seen;
  for (int64_t l : layers) {
    if (l < 0) throw Error(cat("--remove-layers: negative block index ", l));
    if (depth && l >= *depth) throw Error(cat("--remove-layers: block ", l, " does not exist (depth ", *depth, ")"));
    if (!seen.insert(l).second) throw Error(cat("--remove-layers: block ", l, " given twice"));
  }
  if (!tome.given() && tome.start != 0) throw Error("--tome-start needs --tome-r");
  if (depth && tome.given() && tome.start >= *depth) {
    throw Error(cat("--tome-start ", tome.start, " is out of range (depth ", *depth, ")"));
  }
}

}  // namespace vitslim
