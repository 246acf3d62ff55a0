// Implements ModelShape's comparison and description (see shape.h).
#include "core/shape.h"

#include "core/error.h"

namespace vitslim {

bool ModelShape::operator==(const ModelShape& o) const {
  return img_size == o.img_size && patch_size == o.patch_size && in_chans == o.in_chans && embed_dim == o.embed_dim &&
         depth == o.depth && num_heads == o.num_heads && mlp_ratio == o.mlp_ratio && num_classes == o.num_classes &&
         class_token == o.class_token && reg_tokens == o.reg_tokens && distilled == o.distilled &&
         no_embed_class == o.no_embed_class && global_pool == o.global_pool && fc_norm == o.fc_norm &&
         pre_norm == o.pre_norm && qkv_bias == o.qkv_bias && qk_norm == o.qk_norm && layer_scale == o.layer_scale &&
         init_values == o.init_values && act_layer == o.act_layer && norm_eps == o.norm_eps;
}

std::string ModelShape::describe() const {
  const std::string variant = describe_variant();
  return cat("img ", img_size, ", patch ", patch_size, ", in_chans ", in_chans, ", dim ", embed_dim, ", depth ", depth,
             ", heads ", num_heads, ", mlp_ratio ", mlp_ratio, ", classes ", num_classes,
             variant.empty() ? "" : ", " + variant);
}

std::string ModelShape::describe_variant() const {
  std::string out;
  auto add = [&out](const std::string& part) { out += (out.empty() ? "" : ", ") + part; };
  if (!class_token) add("no class_token");
  if (reg_tokens) add(cat("reg_tokens=", reg_tokens));
  if (distilled) add("distilled");
  if (no_embed_class) add("no_embed_class");
  if (global_pool != GlobalPool::Token) add(cat("global_pool=", enum_name(kGlobalPoolNames, global_pool)));
  if (fc_norm) add("fc_norm");
  if (pre_norm) add("pre_norm");
  if (!qkv_bias) add("no qkv_bias");
  if (qk_norm) add("qk_norm");
  if (layer_scale) add("layer_scale");
  if (act_layer != Activation::Gelu) add(cat("act_layer=", enum_name(kActivationNames, act_layer)));
  if (norm_eps != kDefaultNormEps) add(cat("norm_eps=", norm_eps));
  return out;
}

}  // namespace vitslim
