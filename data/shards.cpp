// Implements WebDataset shards (see shards.h): brace expansion and shard lists, the parallel
// header scan that groups members into samples, and the dataset that reads images by offset
// from shard files held open in a small cache.
#include "data/shards.h"

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
#include "data/folder.h"
#include "data/tar.h"

namespace vitslim::data {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxExpansion = 1000000;
constexpr int kScanThreads = 8;     // shard headers are read in parallel (file-system latency, not CPU)
constexpr size_t kOpenShards = 64;  // shard files a dataset keeps open at once
constexpr int64_t kMaxLabel = std::numeric_limits<int32_t>::max();
constexpr uint64_t kMaxLabelBytes = uint64_t{1} << 16;  // a .cls/.json label member; more is damage

bool is_image_ext(const std::string& ext) { return ext == "jpg" || ext == "jpeg" || ext == "png"; }

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() < 19 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The ends of a brace range {a..b}: integers, or single letters as bash's; false otherwise.
bool range_ends(const std::string& inner, std::string& a, std::string& b) {
  const size_t dots = inner.find("..");
  if (dots == std::string::npos) return false;
  a = inner.substr(0, dots);
  b = inner.substr(dots + 2);
  const auto letter = [](const std::string& s) {
    return s.size() == 1 && std::isalpha(static_cast<unsigned char>(s[0]));
  };
  return (all_digits(a) && all_digits(b)) || (letter(a) && letter(b));
}

bool top_level_comma(const std::string& inner) {
  int depth = 0;
  for (const char c : inner) {
    if (c == '{') ++depth;
    if (c == '}') --depth;
    if (c == ',' && depth == 0) return true;
  }
  return false;
}

// The `{...}` group that brace expansion applies to first: a top-level brace holding a comma or
// a range; others ({}, {x}, {a..xyz}) stay literal. npos when there is none.
size_t first_group(const std::string& p, size_t& close) {
  std::string a, b;
  for (size_t open = p.find('{'); open != std::string::npos; open = p.find('{', open + 1)) {
    int depth = 0;
    for (size_t i = open; i < p.size(); ++i) {
      if (p[i] == '{') ++depth;
      if (p[i] == '}' && --depth == 0) {
        close = i;
        const std::string inner = p.substr(open + 1, i - open - 1);
        if (top_level_comma(inner) || range_ends(inner, a, b)) return open;
        break;
      }
    }
  }
  return std::string::npos;
}

// {a..b} as integers (zero-padded when an end has a leading zero) or letters.
std::vector<std::string> range(const std::string& a, const std::string& b) {
  std::vector<std::string> out;
  if (!all_digits(a)) {
    for (char c = a[0];; c = static_cast<char>(c + (b[0] >= a[0] ? 1 : -1))) {
      out.emplace_back(1, c);
      if (c == b[0]) break;
    }
    return out;
  }
  const int64_t lo = std::stoll(a), hi = std::stoll(b);
  const bool pad = (a.size() > 1 && a[0] == '0') || (b.size() > 1 && b[0] == '0');
  const int width = pad ? static_cast<int>(std::max(a.size(), b.size())) : 0;
  if (static_cast<uint64_t>(std::abs(hi - lo)) >= kMaxExpansion)
    throw Error(cat("brace range {", a, "..", b, "} is too long"));
  for (int64_t v = lo;; v += hi >= lo ? 1 : -1) {
    char text[32];
    std::snprintf(text, sizeof text, "%0*lld", width, static_cast<long long>(v));
    out.push_back(text);
    if (v == hi) break;
  }
  return out;
}

std::vector<std::string> alternatives(const std::string& inner) {
  std::string a, b;
  if (!top_level_comma(inner) && range_ends(inner, a, b)) return range(a, b);
  std::vector<std::string> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= inner.size(); ++i) {
    if (i == inner.size() || (inner[i] == ',' && depth == 0)) {
      out.push_back(inner.substr(start, i - start));
      start = i + 1;
    } else if (inner[i] == '{') {
      ++depth;
    } else if (inner[i] == '}') {
      --depth;
    }
  }
  return out;
}

void expand_into(const std::string& p, std::vector<std::string>& out) {
  size_t close = 0;
  const size_t open = first_group(p, close);
  if (open == std::string::npos) {
    if (out.size() >= kMaxExpansion) throw Error(cat("brace pattern names more than ", kMaxExpansion, " files"));
    out.push_back(p);
    return;
  }
  for (const auto& alt : alternatives(p.substr(open + 1, close - open - 1))) {
    expand_into(p.substr(0, open) + alt + p.substr(close + 1), out);
  }
}

bool has_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

std::vector<std::string> glob_files(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  return out;  // sorted by glob
}

bool ends_with(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

std::vector<std::string> split_folder_shards(const std::string& dir, const std::string& split) {
  const std::vector<std::string> prefixes =
      split == "train" ? std::vector<std::string>{"train-"} : std::vector<std::string>{"val-", "test-"};
  for (const auto& prefix : prefixes) {
    std::vector<std::string> files;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind(prefix, 0) == 0 && ends_with(name, ".tar")) files.push_back(it->path().string());
    }
    if (ec) throw Error(cat("--data-path ", dir, ": cannot list (", ec.message(), ")"));
    std::sort(files.begin(), files.end());
    if (!files.empty()) return files;
  }
  throw Error(cat("--data-path ", dir, ": no ", prefixes.front(), "*.tar shards (a folder of shards holds ",
                  "train-*.tar and val-*.tar; or give a pattern such as 'DIR/train-{000000..000127}.tar')"));
}

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
    const std::string key = split_member_name(t.members[i].name).first;
    const TarMember* image = nullptr;
    int64_t label = -1;
    std::set<std::string> exts;
    std::string wrong;  // why this sample is refused, if it is
    for (; i < t.members.size(); ++i) {
      const auto [k, ext] = split_member_name(t.members[i].name);
      if (k != key) break;
      if (!exts.insert(ext).second && wrong.empty()) {
        wrong = cat("sample ", key, " has two ", t.members[i].name, " members (duplicate file name)");
      }
      if (!image && is_image_ext(ext)) image = &t.members[i];
      if (label >= 0 || (ext != "cls" && ext != "json")) continue;
      if (t.members[i].size > kMaxLabelBytes) {
        if (wrong.empty())
          wrong = cat("sample ", key, "'s label ", t.members[i].name, " is ", t.members[i].size,
                      " bytes (a label is at most ", kMaxLabelBytes, ")");
        continue;
      }
      parse_label(ext, read_member(shard, t.members[i]), label);
    }
    if (image && image->size > std::numeric_limits<uint32_t>::max() && wrong.empty()) {
      wrong = cat("sample ", key, "'s image ", image->name, " is ", image->size, " bytes (at most 4 GiB)");
    }
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

std::vector<std::string> brace_expand(const std::string& pattern) {
  std::vector<std::string> out;
  expand_into(pattern, out);
  return out;
}

std::pair<std::string, std::string> split_member_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  const size_t base = slash == std::string::npos ? 0 : slash + 1;
  const size_t dot = path.find('.', base);
  if (dot == std::string::npos) return {path, ""};
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return {path.substr(0, dot), ext};
}

ShardFiles shard_files(const std::string& path, const std::string& split) {
  ShardFiles out;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    out.files = split_folder_shards(path, split);
    return out;
  }
  std::vector<std::string> named;
  const bool list = fs::is_regular_file(path, ec) && !ends_with(path, ".tar");
  if (list) {
    named = read_path_list(path, "--data-path", true);
  } else {
    for (const auto& p : brace_expand(path)) {
      if (!has_glob(p)) {
        named.push_back(p);
        continue;
      }
      for (auto& f : glob_files(p)) named.push_back(std::move(f));
    }
  }
  for (const auto& f : named) {
    if (fs::is_regular_file(f, ec)) {
      out.files.push_back(f);
    } else {
      out.problems.push_back(cat("shard ", f, ": missing or not a file"));
    }
  }
  if (out.files.empty()) {
    throw Error(cat("--data-path ", path, ": ", list ? "the list names no existing shard" : "matches no shard file",
                    named.empty() ? std::string() : cat(" (", named.size(), " named, the first ", named.front(), ")")));
  }
  return out;
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
