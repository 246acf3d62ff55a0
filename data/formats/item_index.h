// The file index of a big dataset: where every image lies (its file, or its shard and byte
// offset), its label and (shards) size, in compact entries whose names share one arena (24 bytes per
// entry plus the name, instead of a std::string each). Listing ImageNet's 1.28M files is a
// metadata storm on a parallel file system when every rank does it, so one rank builds the
// index (data/formats/folder.cpp lists a tree, data/formats/shards.cpp reads shard headers), writes it as a file
// keyed by what it was made from (the tree's root and the mtimes of its folders, or the shards'
// sizes and mtimes) and hands the bytes to the other ranks. The file format is checked field by
// field when read: a truncated, corrupt or hostile index is an Error naming the file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace vitslim::data {

struct ItemIndex {
  enum class Kind : uint32_t { Folder = 1, Shards = 2 };
  struct Entry {
    uint64_t offset = 0;     // shards: of the member's data in its shard; folders: 0
    uint32_t name = 0;       // offset of the NUL-terminated name in `arena`
    uint32_t size = 0;       // shards: bytes of the member; folders: 0 (not read: a stat per file)
    uint32_t container = 0;  // folders: the class folder (= label); shards: the shard
    int32_t label = 0;
  };

  Kind kind = Kind::Folder;
  std::string root;                     // what it indexes: the split folder, or the shard pattern and split
  std::string key;                      // what it was made from (see make_*_key); equal keys, same items
  std::vector<std::string> containers;  // folders: class folder names in label order; shards: shard paths
  std::vector<std::string> problems;    // bad input met while building: skipped (--bad-images skip) or an Error
  std::vector<std::string> notes;       // warnings that are not bad input (ignored non-image files)
  std::string arena;                    // the names: file names in their class folder, or shard member keys
  std::vector<Entry> entries;

  int64_t size() const { return static_cast<int64_t>(entries.size()); }
  std::string_view name(int64_t i) const { return arena.data() + entries[static_cast<size_t>(i)].name; }
  // Appends a name to the arena and returns its offset (Error beyond 4 GiB of names).
  uint32_t add_name(std::string_view name);
  // Bytes this index holds in memory (entries, arena, containers).
  int64_t memory_bytes() const;

  std::string serialise() const;
  // `what` names the source in errors ("--index FILE", "index from rank 0").
  static ItemIndex parse(const std::string& bytes, const std::string& what);
};

// Rank 0 runs `make` and every rank gets its result (dist supplies it under MPI; empty: this
// process only). An error on rank 0 reaches the others as an Error naming rank 0.
using RootShare = std::function<std::string(const std::function<std::string()>& make)>;

// Where an index lives, from --index: "none" keeps it in memory only; a file path is read when it
// exists and written when it does not; empty means the cache directory ($VITSLIM_CACHE_DIR, else
// $XDG_CACHE_HOME/vitslim, else ~/.cache/vitslim), where a stale index is rebuilt. A --index file
// holds one split of one dataset (the first a job opens: train's training split); a job's other
// splits, whose `source` differs from the file's, use the cache. `identity` names what is indexed
// (the cache file's name comes from it).
struct IndexPlace {
  std::string file;     // empty: none
  bool cached = false;  // a cache file (rebuilt when stale) rather than the user's --index
  std::string cache;    // the cache file for `identity` (empty: no cache directory or --index none)
};
IndexPlace index_place(const std::string& index_option, const std::string& identity);
// Reads the index at `place` when it was made from `source` in the state `key`, else runs `build`
// and writes the result there (atomically; a cache directory that cannot be written is a
// warning). A user's file made from the same source in another state is an Error (stale). Runs
// on one rank.
ItemIndex load_or_build_index(const IndexPlace& place, const std::string& source, const std::string& key,
                              const std::function<ItemIndex()>& build);

}  // namespace vitslim::data
