// Implements `vitslim make-shards` (see make_shards.h).
#include "data/make_shards.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/formats/folder.h"
#include "data/formats/tar.h"
#include "data/image/codec.h"

namespace vitslim::data {
namespace fs = std::filesystem;
namespace {

constexpr uint64_t kSaltShards = 0x7368617264ULL;

// The sample key and extension of a file in class folder `cls`.
std::pair<std::string, std::string> key_of(const std::string& cls, const std::string& file) {
  const size_t dot = file.rfind('.');
  std::string stem = file.substr(0, dot), ext = file.substr(dot + 1);
  std::replace(stem.begin(), stem.end(), '.', '_');
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return {cls + "/" + stem, ext};
}

// One shard being written: a partial file, closed by finish() and renamed into place by commit();
// destroyed uncommitted, its partial file goes.
class ShardFile {
 public:
  explicit ShardFile(const std::string& path) : atomic_(path) {
    file_ = std::fopen(atomic_.partial_path().c_str(), "wbe");
    if (!file_) throw Error(cat("--out ", path, ": cannot write"));
    tar_ = std::make_unique<TarWriter>(file_, "--out " + path);
  }
  ~ShardFile() {
    if (file_) std::fclose(file_);
  }
  ShardFile(const ShardFile&) = delete;
  ShardFile& operator=(const ShardFile&) = delete;
  TarWriter& tar() { return *tar_; }
  uint64_t finish() {
    tar_->finish();
    const uint64_t bytes = tar_->bytes_written();
    const bool ok = std::fflush(file_) == 0 && !std::ferror(file_);
    std::fclose(file_);
    file_ = nullptr;
    if (!ok) throw Error(cat("--out ", atomic_.path(), ": write failed (disk full?)"));
    return bytes;
  }
  void commit() { atomic_.commit(); }

 private:
  AtomicFile atomic_;
  std::FILE* file_ = nullptr;
  std::unique_ptr<TarWriter> tar_;
};

// Two files whose keys coincide (a.jpg and a.png, or a.b.jpg and a_b.jpg) would merge into one sample.
void refuse_key_collisions(const ItemIndex& x) {
  std::map<std::string, std::string> seen;
  uint32_t cls = 0;
  for (int64_t i = 0; i < x.size(); ++i) {
    const auto& e = x.entries[static_cast<size_t>(i)];
    if (e.container != cls || i == 0) seen.clear();
    cls = e.container;
    const std::string file(x.name(i));
    const auto [it, fresh] = seen.emplace(key_of(x.containers[cls], file).first, file);
    if (!fresh) {
      throw Error(cat("make-shards: ", x.root, "/", x.containers[cls], "/", it->second, " and ", file,
                      " would share the sample key ", it->first, "; rename one"));
    }
  }
}

}  // namespace

std::string shard_name(const std::string& pattern, int64_t k) {
  size_t conversions = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%') continue;
    if (i + 1 < pattern.size() && pattern[i + 1] == '%') {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < pattern.size() && (std::isdigit(static_cast<unsigned char>(pattern[j])) != 0)) ++j;
    if (j >= pattern.size() || pattern[j] != 'd' || j - i > 3) {
      throw Error(cat("--out ", pattern, ": only %d or %0Nd may appear (e.g. DIR/train-%06d.tar)"));
    }
    ++conversions;
    i = j;
  }
  if (conversions != 1) {
    throw Error(
        cat("--out ", pattern, ": needs exactly one %d or %0Nd for the shard number (e.g. DIR/train-%06d.tar)"));
  }
  char name[4096];
  const int n = std::snprintf(name, sizeof name, pattern.c_str(), static_cast<int>(k));
  if (n < 0 || static_cast<size_t>(n) >= sizeof name) throw Error(cat("--out ", pattern, ": name too long"));
  return name;
}

namespace {

// Every shard the run may write: compared as the files they will be (DIR/c/%d/../x.tar names one
// file for every k), none inside the input tree (--force must never replace an input of the same
// run), none an existing file without --force. Their missing folders are made once all pass.
void check_shard_outputs(const MakeShardsConfig& c, const ItemIndex& x) {
  const int64_t most_shards = (x.size() + c.shard_size - 1) / c.shard_size;
  std::map<fs::path, int64_t> files;
  std::set<fs::path> new_dirs;
  std::error_code ec;
  const fs::path input_root = canonical_path(x.root);
  for (int64_t k = 0; k < most_shards; ++k) {
    const std::string name = shard_name(c.out, k);
    const fs::path file = canonical_path(name);
    const auto [other, fresh] = files.emplace(file, k);
    if (!fresh) {
      throw Error(cat("--out ", c.out, ": shards ", other->second, " and ", k, " are the same file ", file.string(),
                      "; the pattern must give each shard its own file"));
    }
    if (path_inside(file, input_root)) {
      throw Error(cat("--out ", c.out, ": shard ", name, " lies inside --data-path ", x.root,
                      ", the images it reads; write the shards outside it"));
    }
    const fs::path dir = fs::absolute(name).parent_path();
    if (fs::exists(dir, ec)) {
      check_new_output(name, "--out", c.force);
    } else {
      new_dirs.insert(dir);
    }
  }
  for (const auto& dir : new_dirs) fs::create_directories(dir);
}

// The order the samples go into the shards: a seeded shuffle, or the folder's own.
std::vector<int64_t> sample_order(int64_t n, bool shuffle, uint64_t seed) {
  if (shuffle) return shuffled_prefix(n, n, mix_seed(seed, kSaltShards));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  return order;
}

// Writes the samples in `order`, `shard_size` to a shard. Finished shards stay partial files until
// every shard is written: a run that fails (a bad image under --bad-images fail, a full disk)
// leaves none of its shards behind.
ShardsWritten write_shards(const ItemIndex& x, const std::vector<int64_t>& order, const MakeShardsConfig& c,
                           bool skip) {
  ShardsWritten out;
  std::unique_ptr<ShardFile> shard;
  std::vector<std::unique_ptr<ShardFile>> finished;
  int64_t in_shard = 0;
  auto close_shard = [&] {
    out.bytes += shard->finish();
    finished.push_back(std::move(shard));
    out.last = shard_name(c.out, out.shards);
    if (out.shards == 0) out.first = out.last;
    ++out.shards;
    in_shard = 0;
  };
  for (const int64_t i : order) {
    const auto& e = x.entries[static_cast<size_t>(i)];
    const std::string cls = x.containers[e.container], file(x.name(i));
    const std::string path = cat(x.root, "/", cls, "/", file);
    std::optional<SourceImage> image;  // read with its header: a file the reader would refuse is not written
    try {
      image = SourceImage::from_file(path);
    } catch (const BadImage& err) {
      if (!skip) throw Error(cat(err.what(), " (--bad-images fail)"));
      if (out.skipped++ < BadImageLog::kNamedBadImages) log_warn(cat("skipping unreadable image: ", err.what()));
      continue;
    }
    if (!shard) shard = std::make_unique<ShardFile>(shard_name(c.out, out.shards));
    const auto [key, ext] = key_of(cls, file);
    shard->tar().add(key + "." + ext, image->bytes().data(), image->bytes().size());
    const std::string label = std::to_string(e.label);
    shard->tar().add(key + ".cls", label.data(), label.size());
    ++out.samples;
    if (++in_shard == c.shard_size) close_shard();
  }
  if (shard) close_shard();
  for (auto& s : finished) s->commit();
  return out;
}

}  // namespace

ShardsWritten make_shards(const DataConfig& data, const MakeShardsConfig& c, uint64_t seed) {
  shard_name(c.out, 0);  // a bad --out pattern fails before the folder is listed
  const bool skip = data.bad_images == BadImages::Skip;
  std::string dataset_name;
  ItemIndex x = folder_index({data.path, data.kind().imagenet_layout, data.split, data.class_index, data.index, skip},
                             &dataset_name);
  report_index_problems(x, skip);
  if (x.entries.empty()) throw Error(cat("--data-path ", x.root, ": no images (.jpg/.jpeg/.png) in its class folders"));
  refuse_key_collisions(x);
  check_shard_outputs(c, x);
  const ShardsWritten out =
      write_shards(x, sample_order(x.size(), c.shuffle.value_or(data.split == "train"), seed), c, skip);
  if (out.samples == 0) throw Error(cat("--data-path ", x.root, ": no readable image"));
  if (out.skipped > 0) log_warn(cat(dataset_name, ": skipped ", out.skipped, " unreadable image(s); not written"));
  return out;
}

}  // namespace vitslim::data
