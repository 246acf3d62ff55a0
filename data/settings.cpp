// Implements the cross-field checks of the data settings (see settings.h).
#include "data/settings.h"

#include "core/threads.h"
#include "data/image/augment.h"

namespace vitslim {

int64_t DataConfig::loader_threads(bool cuda) const {
  return workers ? *workers : default_loader_threads(available_cores(), compute_threads(), cuda);
}

bool DataConfig::index_inside_data() const { return path_inside(canonical_path(index), canonical_path(path)); }

void DataConfig::validate() const {
  if (!class_index.empty() && !image_folder()) throw Error("--class-index applies to --data-set imagenet or folder");
  if (!index.empty() && !photos()) throw Error("--index applies to --data-set imagenet, folder or wds");
  if (image_folder() && !index.empty() && index != "none" && !path.empty() && index_inside_data()) {
    throw Error(cat("--index ", index, " lies inside --data-path ", path,
                    ": writing it changes the folder whose listing it records, so it would be stale at every use; "
                    "put it outside the data"));
  }
  if (kind().index == data::IndexSource::Shards && path.empty())
    throw Error("--data-set wds needs --data-path (shards: a pattern, a list or a folder)");
  if (scale.size() != 2 || !(scale[0] <= scale[1]))
    throw Error("--scale must be two values 0 < lo <= hi <= 1 (e.g. 0.08,1)");
  if (ratio.size() != 2 || !(ratio[0] <= ratio[1]))
    throw Error("--ratio must be two values 0 < lo <= hi (e.g. 0.75,1.3333)");
  if (auto_augment != "none") data::parse_rand_augment(auto_augment);  // throws naming --aa
  if (mean.size() != std.size() && !mean.empty() && !std.empty()) {
    throw Error(cat("--mean has ", mean.size(), " values but --std has ", std.size()));
  }
}

}  // namespace vitslim
