// WebDataset shards (`--data-set wds`): tar files in which a sample is the run of members sharing
// a key (the member path up to the first '.' of its file name), here an image (`.jpg`, `.jpeg`
// or `.png`) and a label (`.cls`: a decimal integer; or `.json`: an object with an integer
// "label"). `--data-path` names the shards as a brace pattern
// ('train-{000000..001023}.tar', '{a,b}'; then shell globs), a list file (one shard per line), or
// a folder holding <split>-*.tar (train-*.tar; val-*.tar or test-*.tar for the test split). Rank 0
// reads the shards' headers into an index (data/formats/item_index.h; a label member's data comes with
// its header) that the other ranks receive; images are then read by offset (pread) from shard
// files kept open, so any sample order costs one read per image. Damaged or empty shards,
// samples without an image or a label, and labels out of range follow --bad-images.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/formats/dataset.h"
#include "data/formats/item_index.h"

namespace vitslim::data {

// Brace expansion as the shell (and Python's braceexpand) does it: {a,b}, {0..9}, zero-padded
// {000..999} (width of the wider end), nested; an Error beyond a million names.
std::vector<std::string> brace_expand(const std::string& pattern);

// The shard files `path` names for `split` (see above). Error when it names none; missing files
// of a pattern are problems (--bad-images).
struct ShardFiles {
  std::vector<std::string> files;
  std::vector<std::string> problems;
};
ShardFiles shard_files(const std::string& path, const std::string& split);

// The samples of `shards` as an index (parallel header reads); problems recorded.
ItemIndex scan_shards(const std::vector<std::string>& shards);

// Sample key and extension of a member path (webdataset's rule): "a/b.c.d" -> ("a/b", "c.d").
std::pair<std::string, std::string> split_member_name(const std::string& path);

struct ShardRequest {
  std::string path;
  std::string split = "train";
  std::string index;        // --index
  int64_t num_classes = 0;  // labels must be below it; 0: the largest label + 1
  bool skip_bad = true;
};
std::unique_ptr<Dataset> read_shards(const ShardRequest& request, const RootShare& share = {});
// The index of the shards `request` names: from --index or the cache when current, else scanned.
ItemIndex shard_index(const ShardRequest& request);

}  // namespace vitslim::data
