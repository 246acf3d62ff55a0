// Implements the dataset index (see item_index.h): a little-endian binary file (magic, kind,
// root, key, containers, problems, the name arena, the entries as they lie in memory, an FNV-1a
// checksum over words), parsed with every count checked against the bytes left before anything
// is allocated, and the cache.
#include "data/formats/item_index.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"

namespace vitslim::data {
namespace fs = std::filesystem;
namespace {

constexpr char kMagic[] = "VITSLIM-INDEX-1\n";
constexpr size_t kMagicLen = sizeof(kMagic) - 1;
constexpr size_t kEntryBytes = 24;
static_assert(sizeof(ItemIndex::Entry) == kEntryBytes, "entries are stored as they lie in memory");
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL, kFnvPrime = 0x100000001b3ULL;

uint64_t fnv1a(const char* p, size_t n) {
  uint64_t h = kFnvOffset;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * kFnvPrime;
  return h;
}

// The file's checksum: FNV-1a over 64-bit little-endian words (then the tail bytes), eight
// times fewer multiply steps than over bytes: 55 MB of ImageNet index in about 10 ms.
uint64_t checksum(const char* p, size_t n) {
  uint64_t h = kFnvOffset;
  size_t i = 0;
  for (; i + sizeof(uint64_t) <= n; i += sizeof(uint64_t)) {
    uint64_t w = 0;
    std::memcpy(&w, p + i, sizeof w);
    h = (h ^ w) * kFnvPrime;
  }
  for (; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * kFnvPrime;
  return h;
}

class Writer {
 public:
  template <class T>
  void put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
    out.append(b, sizeof(T));
  }
  void text(const std::string& s) {
    put<uint64_t>(s.size());
    out += s;
  }
  std::string out;
};

class Parser {
 public:
  Parser(const std::string& bytes, std::string what) : b_(bytes), what_(std::move(what)) {}
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  // A count of items at least `item_bytes` each, checked against what is left.
  uint64_t count(size_t item_bytes) {
    const auto n = get<uint64_t>();
    if (n > (b_.size() - at_) / item_bytes) fail("a count larger than the file");
    return n;
  }
  void copy(void* to, size_t n) {
    if (n == 0) return;  // `to` may be null (an empty vector's data())
    need(n);
    std::memcpy(to, b_.data() + at_, n);
    at_ += n;
  }
  std::string text() {
    const uint64_t n = count(1);
    std::string s = b_.substr(at_, n);
    at_ += n;
    return s;
  }
  void need(size_t n) {
    if (b_.size() - at_ < n) fail("truncated");
  }
  size_t at() const { return at_; }
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(cat(what_, ": not a valid vitslim index (", why, "); delete it to rebuild"));
  }

 private:
  const std::string& b_;
  std::string what_;
  size_t at_ = 0;
};

std::string read_whole(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    throw Error(cat("--index ", path, ": is a directory; give the index file (or none, or leave it out)"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat("--index ", path, ": cannot open"));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string cache_dir() {
  if (const char* d = std::getenv("VITSLIM_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "vitslim").string();
  if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".cache" / "vitslim").string();
  return "";
}

}  // namespace

uint32_t ItemIndex::add_name(std::string_view name) {
  if (arena.size() + name.size() + 1 > std::numeric_limits<uint32_t>::max()) {
    throw Error("dataset index: more than 4 GiB of file names");
  }
  const auto at = static_cast<uint32_t>(arena.size());
  arena.append(name);
  arena.push_back('\0');
  return at;
}

int64_t ItemIndex::memory_bytes() const {
  int64_t n = static_cast<int64_t>(entries.capacity() * sizeof(Entry) + arena.capacity());
  for (const auto& c : containers) n += static_cast<int64_t>(sizeof(std::string) + c.capacity());
  return n;
}

std::string ItemIndex::serialise() const {
  Writer w;
  w.out.append(kMagic, kMagicLen);
  w.put<uint32_t>(static_cast<uint32_t>(kind));
  w.text(root);
  w.text(key);
  for (const auto* list : {&containers, &problems, &notes}) {
    w.put<uint64_t>(list->size());
    for (const auto& s : *list) w.text(s);
  }
  w.text(arena);
  w.put<uint64_t>(entries.size());
  w.out.reserve(w.out.size() + entries.size() * kEntryBytes + sizeof(uint64_t));
  if (!entries.empty()) {
    w.out.append(reinterpret_cast<const char*>(entries.data()), entries.size() * kEntryBytes);  // packed, little-endian
  }
  w.put<uint64_t>(checksum(w.out.data(), w.out.size()));
  return std::move(w.out);
}

ItemIndex ItemIndex::parse(const std::string& bytes, const std::string& what) {
  Parser p(bytes, what);
  // Not an index at all (a photo, a weights file): say so, and never advise deleting it.
  if (bytes.size() < kMagicLen || bytes.compare(0, kMagicLen, kMagic) != 0) {
    throw Error(cat(what,
                    ": not a vitslim index file (no index header); --index takes a file that `vitslim "
                    "index` or a job wrote, or none"));
  }
  if (bytes.size() < kMagicLen + sizeof(uint64_t)) p.fail("truncated");
  uint64_t stored = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - sizeof(uint64_t), sizeof(uint64_t));
  if (stored != checksum(bytes.data(), bytes.size() - sizeof(uint64_t)))
    p.fail("checksum mismatch: truncated or corrupt");
  p.get<std::array<char, kMagicLen>>();
  ItemIndex x;
  const auto kind = p.get<uint32_t>();
  if (kind != static_cast<uint32_t>(Kind::Folder) && kind != static_cast<uint32_t>(Kind::Shards))
    p.fail("unknown kind");
  x.kind = static_cast<Kind>(kind);
  x.root = p.text();
  x.key = p.text();
  for (auto* list : {&x.containers, &x.problems, &x.notes}) {
    const uint64_t n = p.count(sizeof(uint64_t));
    list->reserve(n);
    for (uint64_t i = 0; i < n; ++i) list->push_back(p.text());
  }
  x.arena = p.text();
  if (!x.arena.empty() && x.arena.back() != '\0') p.fail("names not terminated");
  const uint64_t n = p.count(kEntryBytes);
  x.entries.resize(n);
  p.copy(x.entries.data(), n * kEntryBytes);
  for (const auto& e : x.entries) {
    if (e.name >= x.arena.size() || e.container >= x.containers.size() || e.label < 0) p.fail("an entry out of range");
    // An image folder's label is its class folder; another one would be a label no class has.
    if (x.kind == Kind::Folder && static_cast<uint32_t>(e.label) != e.container)
      p.fail("an entry's label is not its folder");
  }
  if (p.at() + sizeof(uint64_t) != bytes.size()) p.fail("trailing bytes");
  return x;
}

IndexPlace index_place(const std::string& option, const std::string& identity) {
  if (option == "none") return {};
  IndexPlace place;
  if (const std::string dir = cache_dir(); !dir.empty()) {
    char name[32];
    std::snprintf(name, sizeof name, "index-%016llx.bin",
                  static_cast<unsigned long long>(fnv1a(identity.data(), identity.size())));
    place.cache = (fs::path(dir) / name).string();
  }
  place.file = option.empty() ? place.cache : option;
  place.cached = option.empty();
  return place;
}

namespace {

// What an index file says it was made from (root, key), read from its head alone; nullopt when
// the head is not an index's (the full parse then names what is wrong). Lets a job pass over an
// index of another split without reading 55 MB.
std::optional<std::pair<std::string, std::string>> index_head(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  char magic[kMagicLen];
  uint32_t kind = 0;
  if (!in.read(magic, kMagicLen) || std::memcmp(magic, kMagic, kMagicLen) != 0) return std::nullopt;
  if (!in.read(reinterpret_cast<char*>(&kind), sizeof kind)) return std::nullopt;
  std::error_code ec;
  const uint64_t size = fs::file_size(file, ec);
  std::array<std::string, 2> texts;
  for (auto& text : texts) {
    uint64_t n = 0;
    if (ec || !in.read(reinterpret_cast<char*>(&n), sizeof n) || n > size) return std::nullopt;
    text.resize(n);
    if (!in.read(text.data(), static_cast<std::streamsize>(n))) return std::nullopt;
  }
  return std::make_pair(texts[0], texts[1]);
}

// The index in the user's --index file when it was made from `source` in the state `key`; the
// file made from another source: nullopt (that source uses the cache); stale: an Error.
std::optional<ItemIndex> read_user_index(const std::string& file, const std::string& source, const std::string& key) {
  const auto head = index_head(file);
  if (head && head->first != source) {
    log_info(cat("--index ", file, " indexes ", head->first, "; ", source, " uses the cache directory"));
    return std::nullopt;
  }
  if (head && head->second != key) {
    throw Error(cat("--index ", file, ": made from an older state of ", source,
                    " (files or folders changed since); delete it to rebuild"));
  }
  ItemIndex x = ItemIndex::parse(read_whole(file), "--index " + file);
  if (x.root != source || x.key != key) throw Error(cat("--index ", file, ": its head and body disagree; delete it"));
  return x;
}

// The index in a cache file when current; nullopt when missing, stale or unreadable.
std::optional<ItemIndex> read_cached_index(const std::string& file, const std::string& source, const std::string& key) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  try {
    ItemIndex x = ItemIndex::parse(read_whole(file), "dataset index " + file);
    if (x.root == source && x.key == key) return x;
    log_info(cat("dataset index ", file, " is stale; rebuilding it"));
  } catch (const Error&) {
    log_warn(cat("dataset index ", file, " is unreadable; rebuilding it"));
  }
  return std::nullopt;
}

}  // namespace

ItemIndex load_or_build_index(const IndexPlace& given, const std::string& source, const std::string& key,
                              const std::function<ItemIndex()>& build) {
  IndexPlace place = given;
  std::error_code ec;
  if (!place.cached && !place.file.empty() && fs::exists(place.file, ec)) {
    if (auto x = read_user_index(place.file, source, key)) return std::move(*x);
    place = {place.cache, true, place.cache};
  }
  if (place.file.empty()) return build();
  if (place.cached) {
    if (auto x = read_cached_index(place.file, source, key)) return std::move(*x);
  }
  ItemIndex x = build();
  x.root = source;
  x.key = key;
  try {
    if (place.cached) fs::create_directories(fs::path(place.file).parent_path());
    write_file_atomic(place.file, x.serialise());
  } catch (const std::exception& e) {
    if (!place.cached) throw Error(cat("--index ", place.file, ": cannot write (", e.what(), ")"));
    log_warn(cat("dataset index cache ", place.file, ": cannot write (", e.what(), "); continuing without it"));
  }
  return x;
}

}  // namespace vitslim::data
