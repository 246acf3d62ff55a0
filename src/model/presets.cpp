// Implements presets and shape resolution (see presets.h).
#include "model/presets.h"

#include <map>
#include <set>

#include "core/cpu_memory.h"
#include "core/error.h"
#include "core/log.h"

namespace vitslim::model {
namespace {

struct Preset {
  std::string timm;  // the timm model (and pretrained tag) it matches; "" for vitslim's own
  ModelShape shape;
  std::optional<Normalisation> norm = std::nullopt;  // its pretrained cfg's mean/std
};

const Normalisation& kImagenetNorm = kImagenetNormalisation;           // timm IMAGENET_DEFAULT
const Normalisation kInceptionNorm{{0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}};  // AugReg (JAX)
const Normalisation kOpenAiClipNorm{{0.48145466, 0.4578275, 0.40821073}, {0.26862954, 0.26130258, 0.27577711}};

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

constexpr double kDeit3InitValues = 1e-6;
constexpr double kDinov2InitValues = 1e-5;
constexpr double kClipNormEps = 1e-5;
constexpr int64_t kDinov2Registers = 4;
constexpr int64_t kDinov2ImgSize = 518;  // 37 x 37 patches of 14 px
constexpr int64_t kClipEmbedDim = 512;   // OpenAI ViT-B/16's image projection, timm's head

ModelShape deit3(int64_t dim, int64_t heads) {
  ModelShape s = make(224, 16, 3, dim, 12, heads, 1000);
  s.no_embed_class = true;
  s.layer_scale = true;
  s.init_values = kDeit3InitValues;
  return s;
}

ModelShape dinov2(bool registers) {
  ModelShape s = make(kDinov2ImgSize, 14, 3, 384, 12, 6, 0);
  s.layer_scale = true;
  s.init_values = kDinov2InitValues;
  if (registers) {
    s.reg_tokens = kDinov2Registers;
    s.no_embed_class = true;
  }
  return s;
}

ModelShape distilled(ModelShape s) {
  s.distilled = true;
  return s;
}

ModelShape clip() {
  ModelShape s = make(224, 16, 3, 768, 12, 12, kClipEmbedDim);
  s.pre_norm = true;
  s.norm_eps = kClipNormEps;
  s.act_layer = Activation::QuickGelu;
  return s;
}

const std::map<std::string, Preset>& presets() {
  static const std::map<std::string, Preset> kPresets = {
      {"deit_tiny_patch16_224", {"deit_tiny_patch16_224.fb_in1k", make(224, 16, 3, 192, 12, 3, 1000), kImagenetNorm}},
      {"deit_small_patch16_224", {"deit_small_patch16_224.fb_in1k", make(224, 16, 3, 384, 12, 6, 1000), kImagenetNorm}},
      {"deit_base_patch16_224", {"deit_base_patch16_224.fb_in1k", make(224, 16, 3, 768, 12, 12, 1000), kImagenetNorm}},
      {"deit_base_distilled_patch16_224",
       {"deit_base_distilled_patch16_224.fb_in1k", distilled(make(224, 16, 3, 768, 12, 12, 1000)), kImagenetNorm}},
      {"deit3_small_patch16_224", {"deit3_small_patch16_224.fb_in1k", deit3(384, 6), kImagenetNorm}},
      {"deit3_base_patch16_224", {"deit3_base_patch16_224.fb_in1k", deit3(768, 12), kImagenetNorm}},
      {"vit_base_augreg",
       {"vit_base_patch16_224.augreg2_in21k_ft_in1k", make(224, 16, 3, 768, 12, 12, 1000), kInceptionNorm}},
      {"vit_small_dinov2", {"vit_small_patch14_dinov2.lvd142m", dinov2(false), kImagenetNorm}},
      {"vit_small_dinov2_reg", {"vit_small_patch14_reg4_dinov2.lvd142m", dinov2(true), kImagenetNorm}},
      {"vit_base_clip", {"vit_base_patch16_clip_quickgelu_224.openai", clip(), kOpenAiClipNorm}},
      // Fashion-MNIST: 28 px grey images, 7x7 patches of 4 px (the e2e anchor of issue 8).
      {"vit_fmnist", {"", make(28, 4, 1, 64, 6, 4, 10)}},
      // The same width at the paper's depth (12 blocks, as DeiT): does depth change what can go?
      {"vit_fmnist12", {"", make(28, 4, 1, 64, 12, 4, 10)}},
      // Tiny shape for unit tests and the golden fixture.
      {"vit_test", {"", make(32, 8, 3, 24, 4, 2, 10)}},
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

std::string preset_timm_name(const std::string& name) {
  const std::string key = canonical(name);
  return key.empty() ? "" : presets().at(key).timm;
}

std::optional<Normalisation> preset_normalisation(const std::string& name) {
  const std::string key = canonical(name);
  return key.empty() ? std::nullopt : presets().at(key).norm;
}

std::string preset_help() {
  std::string text = "preset (DeiT also without _patch16_224):";
  for (const auto& [name, p] : presets())
    text += cat(" ", name, p.timm.empty() ? "" : cat(" (timm ", p.timm, ")"), ";");
  text.back() = '.';
  return text;
}

ModelShape preset(const std::string& name) {
  std::string key = canonical(name);
  if (key.empty()) {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error(cat("--model: unknown preset '", name, "' (known: ", known, ")"));
  }
  return presets().at(key).shape;
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
  if (!r.class_token) r.class_token = s.class_token;
  if (!r.reg_tokens) r.reg_tokens = s.reg_tokens;
  if (!r.distilled) r.distilled = s.distilled;
  if (!r.no_embed_class) r.no_embed_class = s.no_embed_class;
  if (!r.global_pool) r.global_pool = s.global_pool;
  if (!r.fc_norm) r.fc_norm = s.fc_norm;
  if (!r.pre_norm) r.pre_norm = s.pre_norm;
  if (!r.qkv_bias) r.qkv_bias = s.qkv_bias;
  if (!r.qk_norm) r.qk_norm = s.qk_norm;
  if (!r.layer_scale) r.layer_scale = s.layer_scale;
  if (!r.init_values && s.layer_scale) r.init_values = s.init_values;
  if (!r.act_layer) r.act_layer = s.act_layer;
  if (!r.norm_eps) r.norm_eps = s.norm_eps;
}

namespace {

std::string text_of(int64_t v) { return std::to_string(v); }
std::string text_of(double v) { return format_double(v); }
std::string text_of(bool v) { return v ? "true" : "false"; }
std::string text_of(GlobalPool v) { return enum_name(kGlobalPoolNames, v); }
std::string text_of(Activation v) { return enum_name(kActivationNames, v); }

// One shape field: the flag, else the preset, else the weights, else `fallback` (none: an error).
// A flag or preset the weights contradict is an error naming both, unless weights_may_differ.
class Resolver {
 public:
  Resolver(const ModelRequest& r, const std::optional<ShapeFromWeights>& w) : r_(r), w_(w) {
    if (!r.preset.empty()) base_ = preset(r.preset);
  }

  template <typename T>
  T pick(const char* flag, const std::optional<T>& given, T ModelShape::*member,
         std::optional<T> ShapeFromWeights::*from_weights, bool weights_may_differ = false,
         std::optional<T> fallback = std::nullopt, bool use_preset = true) const {
    std::optional<T> v = given ? given : (base_ && use_preset) ? std::optional<T>((*base_).*member) : std::nullopt;
    const std::optional<T> found = w_ ? (*w_).*from_weights : std::nullopt;
    if (v && found && *v != *found && !weights_may_differ) {
      throw Error(cat("--", flag, " is ", text_of(*v), (given ? "" : cat(" (preset ", r_.preset, ")")), " but weights ",
                      w_->file, " have ", text_of(*found)));
    }
    if (!v) v = found;
    if (!v) v = fallback;
    if (!v) {
      throw Error(cat("--", flag, " is needed: no preset gives it",
                      w_ ? cat(" and weights ", w_->file, " do not determine it") : std::string()));
    }
    return *v;
  }

  // Where the weights' pos_embed fits the patch grid with and without the prefix tokens, the
  // resolved grid decides whether it covers them.
  void settle_no_embed_class(int64_t patches, int64_t prefix) {
    if (!w_ || w_->no_embed_class || !w_->pos_embed_tokens) return;
    if (*w_->pos_embed_tokens == patches) w_->no_embed_class = true;
    if (*w_->pos_embed_tokens == patches + prefix && prefix > 0) w_->no_embed_class = false;
  }
  bool has_preset() const { return base_.has_value(); }
  bool preset_has_layer_scale() const { return base_ && base_->layer_scale; }
  const ModelShape& base() const { return *base_; }

 private:
  const ModelRequest& r_;
  std::optional<ShapeFromWeights> w_;
  std::optional<ModelShape> base_;
};

void check_resolved(const ModelShape& s, const std::optional<ShapeFromWeights>& w);

}  // namespace

ModelShape resolve_shape(const ModelRequest& r, const std::optional<ShapeFromWeights>& w) {
  Resolver p(r, w);
  using S = ModelShape;
  using W = ShapeFromWeights;
  const ModelShape deit;
  ModelShape s;
  s.patch_size = p.pick("patch-size", r.patch_size, &S::patch_size, &W::patch_size);
  s.in_chans = p.pick("in-chans", r.in_chans, &S::in_chans, &W::in_chans);
  s.embed_dim = p.pick("embed-dim", r.embed_dim, &S::embed_dim, &W::embed_dim);
  s.depth = p.pick("depth", r.depth, &S::depth, &W::depth);
  s.num_heads = p.pick("num-heads", r.num_heads, &S::num_heads, &W::num_heads);
  // pos_embed is interpolated to another resolution and the head can be re-initialised.
  s.img_size = p.pick("img-size", r.img_size, &S::img_size, &W::img_size, true);
  s.num_classes = p.pick("num-classes", r.num_classes, &S::num_classes, &W::num_classes, r.reset_head);
  s.mlp_ratio = p.pick("mlp-ratio", r.mlp_ratio, &S::mlp_ratio, &W::mlp_ratio, false, std::optional(deit.mlp_ratio));

  s.class_token = p.pick("class-token", r.class_token, &S::class_token, &W::class_token, false, {deit.class_token});
  s.distilled = p.pick("distilled", r.distilled, &S::distilled, &W::distilled, false, {deit.distilled});
  s.reg_tokens = p.pick("reg-tokens", r.reg_tokens, &S::reg_tokens, &W::reg_tokens, false, {deit.reg_tokens});
  // Only where neither a flag nor a preset says: a grid can fit both readings by chance.
  if (s.patch_size > 0 && !r.no_embed_class && !p.has_preset()) {
    p.settle_no_embed_class(s.grid() * s.grid(), s.num_prefix_tokens());
  }
  s.no_embed_class =
      p.pick("no-embed-class", r.no_embed_class, &S::no_embed_class, &W::no_embed_class, false, {deit.no_embed_class});
  s.pre_norm = p.pick("pre-norm", r.pre_norm, &S::pre_norm, &W::pre_norm, false, {deit.pre_norm});
  s.qkv_bias = p.pick("qkv-bias", r.qkv_bias, &S::qkv_bias, &W::qkv_bias, false, {deit.qkv_bias});
  s.qk_norm = p.pick("qk-norm", r.qk_norm, &S::qk_norm, &W::qk_norm, false, {deit.qk_norm});
  const std::optional<bool> layer_scale = r.layer_scale   ? r.layer_scale
                                          : r.init_values ? std::optional(true)
                                                          : std::nullopt;
  s.layer_scale = p.pick("layer-scale", layer_scale, &S::layer_scale, &W::layer_scale, false, {deit.layer_scale});
  // LayerScale's initial gamma matters for random initialisation only; weights never say it.
  s.init_values = r.init_values                ? *r.init_values
                  : p.preset_has_layer_scale() ? p.base().init_values
                                               : kDefaultInitValues;
  // Pooling and fc_norm as timm defaults them: avg where there is no class token or the weights
  // have an fc_norm; fc_norm with avg pooling. Presets pool the class token.
  const bool fc_norm_seen = w && w->fc_norm.value_or(false);
  const GlobalPool pool_default = (!s.class_token || fc_norm_seen) ? GlobalPool::Avg : GlobalPool::Token;
  s.global_pool = p.pick("global-pool", r.global_pool, &S::global_pool, &W::global_pool, false, {pool_default},
                         /*use_preset=*/false);
  s.fc_norm = p.pick("fc-norm", r.fc_norm, &S::fc_norm, &W::fc_norm, false, {s.global_pool == GlobalPool::Avg},
                     /*use_preset=*/false);
  s.act_layer = p.pick("act-layer", r.act_layer, &S::act_layer, &W::act_layer, false, {deit.act_layer});
  s.norm_eps = p.pick("norm-eps", r.norm_eps, &S::norm_eps, &W::norm_eps, false, {deit.norm_eps});
  check_resolved(s, w);
  return s;
}

namespace {

// The variant features must form a model timm has.
void check_variant(const ModelShape& s, const std::optional<ShapeFromWeights>& w) {
  const std::string from = w ? cat(" (weights ", w->file, ")") : "";
  if (s.global_pool != GlobalPool::Avg && !s.class_token)
    throw Error(cat("--global-pool ", enum_name(kGlobalPoolNames, s.global_pool), " needs a class token", from,
                    "; use --global-pool avg"));
  if (s.global_pool == GlobalPool::TokenAvg && s.fc_norm)
    throw Error(cat("--global-pool token_avg with --fc-norm is no model vitslim reads", from));
  if (s.distilled && (!s.class_token || s.global_pool != GlobalPool::Token))
    throw Error(cat("--distilled needs a class token and --global-pool token", from));
  if (s.distilled && s.reg_tokens > 0) throw Error(cat("--distilled with --reg-tokens is no timm model", from));
  constexpr int64_t kMaxRegisters = 64;
  if (s.reg_tokens < 0 || s.reg_tokens > kMaxRegisters)
    throw Error(cat("--reg-tokens ", s.reg_tokens, from, " must be in [0, ", kMaxRegisters, "]"));
  if (!(s.norm_eps > 0 && s.norm_eps < 1)) throw Error(cat("--norm-eps ", s.norm_eps, from, " must be in (0, 1)"));
  if (s.layer_scale && !(s.init_values > 0)) throw Error(cat("--init-values ", s.init_values, " must be positive"));
}

// Refuses a shape whose float32 parameters alone exceed this machine's memory (a typo in --embed-dim,
// --num-classes or --img-size), naming the flags, instead of an allocator failure that blames the
// batch size. Counted in double: such shapes overflow 64-bit integer counts.
void check_fits_memory(const ModelShape& s, const std::optional<ShapeFromWeights>& w) {
  const double C = static_cast<double>(s.embed_dim), hidden = C * s.mlp_ratio, grid = s.img_size / s.patch_size;
  const double params = static_cast<double>(s.depth) * (4 * C * C + 2 * C * hidden) +
                        static_cast<double>(s.in_chans * s.patch_size) * static_cast<double>(s.patch_size) * C +
                        (grid * grid + static_cast<double>(s.num_prefix_tokens())) * C +
                        (s.distilled ? 2 : 1) * C * static_cast<double>(s.num_classes);
  const double bytes = 4 * params, memory = physical_memory_bytes();
  if (memory <= 0 || bytes <= memory) return;
  throw Error(cat("the model (--embed-dim ", s.embed_dim, ", --depth ", s.depth, ", --num-classes ", s.num_classes,
                  ", --img-size ", s.img_size, ", --patch-size ", s.patch_size,
                  w ? cat("; shape from weights ", w->file) : "", ") has ", fmt(params / 1e9, 6), "G parameters, ",
                  fmt(bytes / 1e9, 6), " GB in float32: more than this machine's ", fmt(memory / 1e9, 3),
                  " GB of memory"));
}

// The resolved shape must describe a model that can exist.
void check_resolved(const ModelShape& s, const std::optional<ShapeFromWeights>& w) {
  constexpr int64_t kMaxDepth = 1024;
  for (auto [name, v] : {std::pair<const char*, int64_t>{"img-size", s.img_size},
                         {"patch-size", s.patch_size},
                         {"in-chans", s.in_chans},
                         {"embed-dim", s.embed_dim},
                         {"depth", s.depth},
                         {"num-heads", s.num_heads}}) {
    if (v <= 0)
      throw Error(cat("--", name, " resolved to ", v, w ? cat(" from weights ", w->file) : "", "; must be positive"));
  }
  if (s.num_classes < 0)
    throw Error(cat("--num-classes resolved to ", s.num_classes, w ? cat(" from weights ", w->file) : "",
                    "; must be 0 (no head) or more"));
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
  check_variant(s, w);
  check_fits_memory(s, w);
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
