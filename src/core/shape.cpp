// Implements ModelShape's comparison and description (see shape.h).
#include "core/shape.h"

#include "core/error.h"

namespace vitslim {

bool ModelShape::operator==(const ModelShape& o) const {
  return img_size == o.img_size && patch_size == o.patch_size && in_chans == o.in_chans && embed_dim == o.embed_dim &&
         depth == o.depth && num_heads == o.num_heads && mlp_ratio == o.mlp_ratio && num_classes == o.num_classes;
}

std::string ModelShape::describe() const {
  return cat("img ", img_size, ", patch ", patch_size, ", in_chans ", in_chans, ", dim ", embed_dim, ", depth ", depth,
             ", heads ", num_heads, ", mlp_ratio ", mlp_ratio, ", classes ", num_classes);
}

}  // namespace vitslim
