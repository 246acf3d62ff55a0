// Implements WebDataset shards (see shards.h; which files a --data-path names is in
// shard_files.cpp): the parallel header scan that groups members into samples, and the dataset that reads images by
// offset from shard files held open in a small cache.
#include "data/formats/shards.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "data/formats/folder.h"
#include "data/formats/tar.h"

namespace vitslim::data {
namespace fs = std::filesystem;
namespace {

constexpr int kScanThreads = 8;     // shard headers are read in parallel (file-system latency, not CPU)
constexpr size_t kOpenShards = 64;  // shard files a dataset keeps open at once
constexpr int64_t kMaxLabel = std::numeric_limits<int32_t>::max();
constexpr uint64_t kMaxLabelBytes = uint64_t{1} << 16;  // a .cls/.json label member; more is damage

bool is_image_ext(const std::string& ext) { return ext == "jpg" || ext == "jpeg" || ext == "png"; }

// A label member's value: .cls holds a decimal integer, .json an object with "label".
bool parse_label(const std::string& ext, const std::string& text, int64_t& label) {
  try {
    if (ext == "cls") {
      const auto a = text.find_first_not_of(" \t\r\n"), b = text.find_last_not_of(" \t\r\n");
      if (a == std::string::npos) return false;
      const std::string digits = text.substr(a, b - a + 1);
      if (digits.size() > 10 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
      label = std::stoll(digits);
    } else {
      const auto j = nlohmann::json::parse(text);
      if (!j.is_object() || !j.contains("label") || !j["label"].is_number_integer()) return false;
      label = j["label"].get<int64_t>();
    }
  } catch (const std::exception&) {
    return false;
  }
  return label >= 0 && label <= kMaxLabel;
}

std::string read_member(const std::string& shard, const TarMember& m) {
  if (m.size <= kTarBlock) return m.small;
  std::ifstream in(shard, std::ios::binary);
  std::string text(m.size, '\0');
  in.seekg(static_cast<std::streamoff>(m.offset));
  in.read(text.data(), static_cast<std::streamsize>(m.size));
  return text;
}

// One sample: the run of members from t.members[i] that share its key (i moves past them).
struct SampleMembers {
  std::string key;
  const TarMember* image = nullptr;  // its first image member
  int64_t label = -1;                // from .cls or .json; -1: none
  std::string wrong;                 // why the sample is refused, if it is
};
SampleMembers next_sample(const std::string& shard, const TarListing& t, size_t& i) {
  SampleMembers m;
  m.key = split_member_name(t.members[i].name).first;
  std::set<std::string> exts;
  for (; i < t.members.size(); ++i) {
    const auto [k, ext] = split_member_name(t.members[i].name);
    if (k != m.key) break;
    if (!exts.insert(ext).second && m.wrong.empty()) {
      m.wrong = cat("sample ", m.key, " has two ", t.members[i].name, " members (duplicate file name)");
    }
    if (!m.image && is_image_ext(ext)) m.image = &t.members[i];
    if (m.label >= 0 || (ext != "cls" && ext != "json")) continue;
    if (t.members[i].size > kMaxLabelBytes) {
      if (m.wrong.empty())
        m.wrong = cat("sample ", m.key, "'s label ", t.members[i].name, " is ", t.members[i].size,
                      " bytes (a label is at most ", kMaxLabelBytes, ")");
      continue;
    }
    parse_label(ext, read_member(shard, t.members[i]), m.label);
  }
  if (m.image && m.image->size > std::numeric_limits<uint32_t>::max() && m.wrong.empty()) {
    m.wrong = cat("sample ", m.key, "'s image ", m.image->name, " is ", m.image->size, " bytes (at most 4 GiB)");
  }
  return m;
}

// The samples of one shard, appended to `x` (shard number `s`).
void add_shard_samples(const std::string& shard, const TarListing& t, uint32_t s, ItemIndex& x) {
  const size_t before = x.entries.size();
  int64_t unlabelled = 0, imageless = 0, refused = 0;
  std::string first_problem, first_refused;
  const auto problem = [](int64_t& count, std::string& first, const std::string& what) {
    ++count;
    if (first.empty()) first = what;
  };
  size_t i = 0;
  while (i < t.members.size()) {
    const auto [key, image, label, wrong] = next_sample(shard, t, i);
    if (!wrong.empty()) {
      problem(refused, first_refused, wrong);
      continue;
    }
    if (!image || label < 0) {
      problem(image ? unlabelled : imageless, first_problem,
              image ? cat("sample ", key, " has no label (.cls, or .json with an integer \"label\")")
                    : cat("sample ", key, " has no .jpg/.jpeg/.png member"));
      continue;
    }
    ItemIndex::Entry e;
    e.offset = image->offset;
    e.name = x.add_name(image->name);
    e.size = static_cast<uint32_t>(image->size);
    e.container = s;
    e.label = static_cast<int32_t>(label);
    x.entries.push_back(e);
  }
  if (refused > 0) {
    x.problems.push_back(cat("shard ", shard, ": ", refused, " sample(s) refused, first ", first_refused));
  }
  if (unlabelled + imageless > 0) {
    x.problems.push_back(cat("shard ", shard, ": ", unlabelled + imageless, " sample(s) without ",
                             unlabelled ? "a label" : "an image", imageless && unlabelled ? " or an image" : "",
                             ", first ", first_problem));
  }
  const size_t used = x.entries.size() - before;
  if (!t.damage.empty()) {
    x.problems.push_back(cat("shard ", shard, ": damaged tar (", t.damage, "); ", used, " whole sample(s) before it"));
  } else if (t.members.empty()) {
    x.problems.push_back(cat("shard ", shard, ": empty shard (no samples)"));
  }
}

// Images read by offset from shard files; the open files are shared by the loader threads.
class ShardDataset : public Dataset {
 public:
  ShardDataset(std::string name, ItemIndex index, int64_t classes)
      : name_(std::move(name)), x_(std::move(index)), classes_(classes) {}
  std::string name() const override { return name_; }
  int64_t size() const override { return x_.size(); }
  int64_t channels() const override { return 3; }
  int64_t height() const override { return 0; }
  int64_t width() const override { return 0; }
  int64_t num_classes() const override { return classes_; }
  int64_t read(int64_t, uint8_t*) const override {
    throw Error(cat(name_, ": images differ in size; they are read through the per-image transforms"));
  }
  int64_t label(int64_t index) const override { return entry(index).label; }
  std::string item_name(int64_t index) const override {
    return cat(x_.containers[entry(index).container], ":", x_.name(index));
  }
  SourceImage source(int64_t index) const override {
    const auto& e = entry(index);
    std::vector<uint8_t> bytes(e.size);
    const auto file = open_shard(e.container);
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t got =
          ::pread(file->fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(e.offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        throw BadImage(cat("image ", item_name(index), ": cannot read (",
                           got < 0 ? std::strerror(errno) : "shard shorter than its index", ")"));
      }
      done += static_cast<size_t>(got);
    }
    return SourceImage::from_bytes(std::move(bytes), item_name(index));
  }
  std::vector<int64_t> shard_bounds() const override {
    std::vector<int64_t> bounds;
    uint32_t last = 0;
    for (int64_t i = 0; i < size(); ++i) {
      const uint32_t s = x_.entries[static_cast<size_t>(i)].container;
      if (i == 0 || s != last) bounds.push_back(i);
      last = s;
    }
    bounds.push_back(size());
    return bounds;
  }

 private:
  struct OpenFile {
    int fd = -1;
    ~OpenFile() {
      if (fd >= 0) ::close(fd);
    }
  };
  const ItemIndex::Entry& entry(int64_t index) const {
    if (index < 0 || index >= size()) throw Error(cat(name_, ": image index ", index, " out of range"));
    return x_.entries[static_cast<size_t>(index)];
  }
  // The open file of shard `s` (least recently used ones are closed beyond kOpenShards; a reader
  // holding one keeps it open).
  std::shared_ptr<OpenFile> open_shard(uint32_t s) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = open_.begin(); it != open_.end(); ++it) {
      if (it->first == s) {
        open_.splice(open_.begin(), open_, it);
        return open_.front().second;
      }
    }
    auto file = std::make_shared<OpenFile>();
    file->fd = ::open(x_.containers[s].c_str(), O_RDONLY | O_CLOEXEC);
    if (file->fd < 0) throw BadImage(cat("shard ", x_.containers[s], ": cannot open (", std::strerror(errno), ")"));
    open_.emplace_front(s, file);
    if (open_.size() > kOpenShards) open_.pop_back();
    return file;
  }

  std::string name_;
  ItemIndex x_;
  int64_t classes_;
  mutable std::mutex mutex_;
  mutable std::list<std::pair<uint32_t, std::shared_ptr<OpenFile>>> open_;
};

std::string shard_key(const std::vector<std::string>& files) {
  std::string key = "shards\n";
  for (const auto& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) {
      key += cat(f, " missing\n");
      continue;
    }
    key +=
        cat(fs::weakly_canonical(f).string(), " ", st.st_size, " ", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, "\n");
  }
  return key;
}

// Labels at or above `classes` are problems; those samples leave the index.
void drop_out_of_range(ItemIndex& x, int64_t classes) {
  int64_t dropped = 0;
  std::string first;
  auto out = x.entries.begin();
  for (const auto& e : x.entries) {
    if (e.label >= classes) {
      if (dropped++ == 0) first = cat(x.containers[e.container], ":", x.arena.data() + e.name, " has label ", e.label);
      continue;
    }
    *out++ = e;
  }
  x.entries.erase(out, x.entries.end());
  if (dropped > 0) {
    x.problems.push_back(cat(dropped, " sample(s) with a label outside 0..", classes - 1, " (the model's ", classes,
                             " classes), first ", first));
  }
}

}  // namespace

std::pair<std::string, std::string> split_member_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  const size_t base = slash == std::string::npos ? 0 : slash + 1;
  const size_t dot = path.find('.', base);
  if (dot == std::string::npos) return {path, ""};
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return {path.substr(0, dot), ext};
}

ItemIndex scan_shards(const std::vector<std::string>& shards) {
  const size_t n = shards.size();
  std::vector<TarListing> listings(n);
  std::vector<std::string> errors(n);
  parallel_for(n, kScanThreads, [&](size_t k) {
    try {
      listings[k] = list_tar(shards[k]);
    } catch (const std::exception& e) {
      errors[k] = e.what();
    }
  });

  ItemIndex x;
  x.kind = ItemIndex::Kind::Shards;
  x.containers = shards;
  for (size_t k = 0; k < n; ++k) {
    if (!errors[k].empty()) {
      x.problems.push_back(cat("shard ", errors[k]));
      continue;
    }
    add_shard_samples(shards[k], listings[k], static_cast<uint32_t>(k), x);
    listings[k] = {};
  }
  return x;
}

// Every entry's bytes lie inside its shard: an index file that says otherwise (damaged, or forged
// with a size of 4 GiB) would make each read of that image allocate and read past the shard.
void check_entries_fit(const ItemIndex& x, const std::string& what) {
  std::vector<uint64_t> sizes;
  for (const auto& shard : x.containers) {
    struct stat st {};
    sizes.push_back(::stat(shard.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0);
  }
  for (int64_t i = 0; i < x.size(); ++i) {
    const auto& e = x.entries[static_cast<size_t>(i)];
    if (e.container >= sizes.size() || e.offset + e.size > sizes[e.container]) {
      throw Error(cat(what, ": entry ", x.name(i), " ends at byte ", e.offset + e.size, ", beyond its shard ",
                      e.container < x.containers.size() ? x.containers[e.container] : std::string("?"), " (",
                      e.container < sizes.size() ? sizes[e.container] : 0, " bytes): not a valid index"));
    }
  }
}

ItemIndex shard_index(const ShardRequest& r) {
  const ShardFiles files = shard_files(r.path, r.split);
  const std::string source = cat("shards ", fs::absolute(r.path).string(), " (split ", r.split, ")");
  const IndexPlace place = index_place(r.index, source);
  ItemIndex x = load_or_build_index(place, source, shard_key(files.files), [&] { return scan_shards(files.files); });
  check_entries_fit(x, r.index.empty() ? std::string("the dataset index cache") : cat("--index ", r.index));
  x.problems.insert(x.problems.begin(), files.problems.begin(), files.problems.end());
  return x;
}

std::unique_ptr<Dataset> read_shards(const ShardRequest& r, const RootShare& share) {
  auto make = [&] { return shard_index(r).serialise(); };
  ItemIndex x = ItemIndex::parse(share ? share(make) : make(), "dataset index");
  int64_t classes = r.num_classes;
  if (classes <= 0) {
    for (const auto& e : x.entries) classes = std::max<int64_t>(classes, e.label + 1);
  }
  drop_out_of_range(x, classes);
  report_index_problems(x, r.skip_bad);
  if (x.entries.empty())
    throw Error(cat("--data-path ", r.path, ": no samples in its ", x.containers.size(), " shard(s)"));
  return std::make_unique<ShardDataset>(cat("wds ", r.split), std::move(x), classes);
}

}  // namespace vitslim::data
