// `vitslim make-shards`: WebDataset shards from an image folder. Each image becomes two tar
// members, `<class>/<stem>.<ext>` (the file's bytes, extension lowercased) and `<class>/<stem>.cls`
// (its label in decimal), so the key is unique across classes (dots in the stem become '_'). The
// train split is shuffled across shards by default (a seeded order), as streaming needs;
// `--shard-size` samples per shard. Every shard is written to a partial file and renamed into
// place when whole, so an interrupted run leaves only whole shards. Unreadable images follow
// --bad-images (header checked before writing: skip counts them, fail stops).
#pragma once

#include <cstdint>
#include <string>

#include "data/settings.h"

namespace vitslim::data {

struct ShardsWritten {
  int64_t samples = 0, shards = 0, skipped = 0;
  uint64_t bytes = 0;
  std::string first, last;  // shard files
};

ShardsWritten make_shards(const DataConfig& data, const MakeShardsConfig& config, uint64_t seed);

// The file name of shard `k` from a pattern with one printf integer conversion (%d, %06d);
// Error naming --out when the pattern has none, more than one, or another conversion.
std::string shard_name(const std::string& pattern, int64_t k);

}  // namespace vitslim::data
