// Implements image-folder datasets (see folder.h): the class folders listed by parallel threads
// with readdir + fstatat (an unreadable folder is a recorded problem, never an exception), the
// result kept as a compact ItemIndex (data/formats/item_index.h) made once and shared, images read from
// disk when loaded.
#include "data/formats/folder.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/text_file.h"
#include "core/threads.h"

namespace vitslim::data {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kFolderChannels = 3;

// Whether `p` is a directory, never throwing: a symlink loop or a permission problem is "no",
// with the reason in `why`.
bool readable_dir(const fs::path& p, std::string* why = nullptr) {
  std::error_code ec;
  const bool dir = fs::is_directory(p, ec);
  if (why) *why = ec ? ec.message() : "missing or not a folder";
  return dir && !ec;
}

// Images of an index: file `name` in class folder `containers[label]` under `root`.
class FolderDataset : public Dataset {
 public:
  FolderDataset(std::string name, ItemIndex index) : name_(std::move(name)), x_(std::move(index)) {}
  std::string name() const override { return name_; }
  int64_t size() const override { return x_.size(); }
  int64_t channels() const override { return kFolderChannels; }
  int64_t height() const override { return 0; }
  int64_t width() const override { return 0; }
  int64_t num_classes() const override { return static_cast<int64_t>(x_.containers.size()); }
  int64_t read(int64_t, uint8_t*) const override {
    throw Error(cat(name_, ": images differ in size; they are read through the per-image transforms"));
  }
  int64_t label(int64_t index) const override { return entry(index).label; }
  SourceImage source(int64_t index) const override { return SourceImage::from_file(path(index)); }
  std::string item_name(int64_t index) const override {
    return cat(x_.containers[entry(index).container], "/", x_.name(index));
  }
  std::string path(int64_t index) const { return cat(x_.root, "/", item_name(index)); }

 private:
  const ItemIndex::Entry& entry(int64_t index) const {
    if (index < 0 || index >= size()) throw Error(cat(name_, ": image index ", index, " out of range"));
    return x_.entries[static_cast<size_t>(index)];
  }
  std::string name_;
  ItemIndex x_;
};

// Image files without labels (read_image_files).
class FileListDataset : public Dataset {
 public:
  FileListDataset(std::string name, std::vector<std::string> files)
      : name_(std::move(name)), files_(std::move(files)) {}
  std::string name() const override { return name_; }
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t channels() const override { return kFolderChannels; }
  int64_t height() const override { return 0; }
  int64_t width() const override { return 0; }
  int64_t num_classes() const override { return 0; }
  int64_t read(int64_t, uint8_t*) const override {
    throw Error(cat(name_, ": images differ in size; they are read through the per-image transforms"));
  }
  int64_t label(int64_t) const override { return -1; }
  SourceImage source(int64_t index) const override {
    return SourceImage::from_file(files_.at(static_cast<size_t>(index)));
  }
  std::string item_name(int64_t index) const override { return files_.at(static_cast<size_t>(index)); }

 private:
  std::string name_;
  std::vector<std::string> files_;
};

// Sorted entry names of `dir` that satisfy `keep`; false (with `error`) when it cannot be listed.
bool list_dir(const fs::path& dir, bool directories, std::vector<std::string>& names, std::string& error,
              int64_t* ignored = nullptr) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    const bool is_dir = it->is_directory(type_ec);
    const std::string name = it->path().filename().string();
    if (directories) {
      // A symlink that does not resolve is still a class folder (one that cannot be read).
      if (is_dir || it->is_symlink(type_ec)) names.push_back(name);
    } else if (!is_dir && is_image_name(name)) {
      names.push_back(name);
    } else if (ignored) {
      ++*ignored;
    }
  }
  if (ec) {
    error = cat(dir.string(), ": cannot list (", ec.message(), ")");
    return false;
  }
  std::sort(names.begin(), names.end());
  return true;
}

}  // namespace

bool is_image_name(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
  for (const char* ext : {".jpg", ".jpeg", ".png"}) {
    const std::string e(ext);
    if (lower.size() > e.size() && lower.compare(lower.size() - e.size(), e.size(), e) == 0) return true;
  }
  return false;
}

std::vector<std::string> read_class_index(const std::string& path) {
  const std::string text = read_text_file(path, "--class-index");
  std::vector<std::string> classes;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    try {
      const auto j = nlohmann::json::parse(text);
      classes.resize(j.size());
      for (const auto& [key, value] : j.items()) {
        const size_t k = std::stoul(key);
        if (k >= classes.size()) throw Error(cat("index ", key, " is not in 0..", classes.size() - 1));
        classes[k] = value.is_array() ? value.at(0).get<std::string>() : value.get<std::string>();
      }
    } catch (const std::exception& e) {
      throw Error(cat("--class-index ", path, ": malformed JSON class index (", e.what(), ")"));
    }
  } else {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      const auto a = line.find_first_not_of(" \t\r");
      if (a == std::string::npos || line[a] == '#') continue;
      const auto b = line.find_last_not_of(" \t\r");
      classes.push_back(line.substr(a, b - a + 1));
    }
  }
  std::set<std::string> unique;
  for (const auto& c : classes) {
    if (c.empty()) throw Error(cat("--class-index ", path, ": an empty class name"));
    if (!unique.insert(c).second) throw Error(cat("--class-index ", path, ": class ", c, " listed twice"));
  }
  if (classes.empty()) throw Error(cat("--class-index ", path, ": names no class"));
  return classes;
}

namespace {

// The folder of the split: ROOT/train, ROOT/val or ROOT/test, or ROOT itself (folder datasets).
// `found`: a split folder exists.
fs::path split_dir(const std::string& root, bool imagenet, const std::string& split, bool& found) {
  std::string why;
  if (!readable_dir(root, &why)) throw Error(cat("--data-path ", root, ": not a directory (", why, ")"));
  const std::vector<std::string> split_dirs =
      split == "train" ? std::vector<std::string>{"train"} : std::vector<std::string>{"val", "test"};
  for (const auto& s : split_dirs) {
    if (readable_dir(fs::path(root) / s)) {
      found = true;
      return fs::path(root) / s;
    }
  }
  if (imagenet) {
    throw Error(cat("--data-path ", root, ": no ", split_dirs.front(), "/ folder (ImageNet layout: ", root,
                    "/train/<wnid>/*.JPEG and ", root, "/val/<wnid>/*.JPEG)"));
  }
  found = false;
  return fs::path(root);
}

using Problem = std::function<void(const std::string&)>;

constexpr int kListThreads = 8;  // directory listing waits on the file system (parallel file systems above all)

// The image files of one class folder, sorted by name: the names NUL-terminated in one buffer
// (no allocation per file; 1.28M files list in a fraction of a second).
struct ClassFiles {
  std::string names;
  std::vector<uint32_t> starts;  // of each name in `names`, sorted by name
  int64_t ignored = 0;
  std::string error;  // the folder cannot be listed
};

// Whether the entry `name` of the folder open as `fd` is a regular file (following links). The
// entry's type from readdir settles it without touching the file's inode; a stat per file is
// the metadata cost on a parallel file system that the index exists to avoid, so file sizes
// are not recorded for folders.
bool regular_file(int fd, const dirent& e) {
  if (e.d_type == DT_REG) return true;
  if (e.d_type != DT_LNK && e.d_type != DT_UNKNOWN) return false;
  struct stat st {};
  return ::fstatat(fd, e.d_name, &st, 0) == 0 && S_ISREG(st.st_mode);
}

ClassFiles list_class(const fs::path& dir) {
  ClassFiles out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    out.error = cat("class folder missing or unreadable (", std::strerror(errno), ")");
    return out;
  }
  const int fd = ::dirfd(d);
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    const char* name = e->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
    if (!is_image_name(name) || !regular_file(fd, *e)) {
      ++out.ignored;  // not an image name, a folder, a dangling link: the loader could not read it anyway
      continue;
    }
    out.starts.push_back(static_cast<uint32_t>(out.names.size()));
    out.names.append(name);
    out.names.push_back('\0');
    if (out.names.size() > std::numeric_limits<uint32_t>::max()) {
      out.error = "more than 4 GiB of file names";
      break;
    }
  }
  if (errno != 0) out.error = cat("cannot list (", std::strerror(errno), ")");
  ::closedir(d);
  const char* base = out.names.data();
  std::sort(out.starts.begin(), out.starts.end(),
            [base](uint32_t a, uint32_t b) { return std::strcmp(base + a, base + b) < 0; });
  return out;
}

// A folder's modification time (its entries were added, removed or renamed) in nanoseconds.
std::string mtime_key(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return "unreadable";
  return cat(st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec);
}

// The classes in label order: --class-index, or the sorted class folders.
std::vector<std::string> class_list(const fs::path& dir, const std::string& class_index, const Problem& problem) {
  std::vector<std::string> classes;
  std::string error;
  if (!class_index.empty()) {
    classes = read_class_index(class_index);
    std::vector<std::string> present;
    if (!list_dir(dir, true, present, error)) throw Error(cat("--data-path ", error));
    const std::set<std::string> known(classes.begin(), classes.end());
    for (const auto& p : present) {
      if (!known.count(p)) problem(cat(dir.string(), "/", p, ": class folder not in --class-index ", class_index));
    }
  } else if (!list_dir(dir, true, classes, error)) {
    throw Error(cat("--data-path ", error));
  }
  if (classes.empty()) throw Error(cat("--data-path ", dir.string(), ": no class folders"));
  return classes;
}

}  // namespace

FolderListing folder_listing(const std::string& root, bool imagenet, const std::string& split,
                             const std::string& class_index) {
  bool found = false;
  const fs::path dir = split_dir(root, imagenet, split, found);
  FolderListing out;
  out.dir = dir.string();
  out.name = cat(imagenet ? "imagenet " : "folder ", found ? dir.filename().string() : split);
  out.classes = class_list(dir, class_index, [&](const std::string& what) { out.problems.push_back(what); });
  out.key = cat("folder\n", fs::weakly_canonical(dir).string(), "\n", mtime_key(dir), "\n");
  if (!class_index.empty()) out.key += cat("class-index ", fs::weakly_canonical(class_index).string(), "\n");
  for (const auto& c : out.classes) out.key += cat(c, " ", mtime_key(dir / c), "\n");
  return out;
}

ItemIndex list_folder(const FolderListing& listing) {
  const size_t n = listing.classes.size();
  std::vector<ClassFiles> found(n);
  parallel_for(n, kListThreads, [&](size_t k) { found[k] = list_class(fs::path(listing.dir) / listing.classes[k]); });

  ItemIndex x;
  x.kind = ItemIndex::Kind::Folder;
  x.root = listing.dir;
  x.containers = listing.classes;
  int64_t ignored = 0;
  size_t total = 0, name_bytes = 0;
  for (const auto& f : found) {
    total += f.starts.size();
    name_bytes += f.names.size();
  }
  x.entries.reserve(total);
  x.arena.reserve(name_bytes);
  for (size_t k = 0; k < n; ++k) {
    const std::string class_dir = (fs::path(listing.dir) / listing.classes[k]).string();
    if (!found[k].error.empty()) {
      x.problems.push_back(cat(class_dir, ": ", found[k].error));
      continue;
    }
    if (found[k].starts.empty())
      x.problems.push_back(cat(class_dir, ": empty class folder (no .jpg/.jpeg/.png files)"));
    ignored += found[k].ignored;
    for (const uint32_t start : found[k].starts) {
      ItemIndex::Entry e;
      e.name = x.add_name(found[k].names.data() + start);
      e.container = static_cast<uint32_t>(k);
      e.label = static_cast<int32_t>(k);
      x.entries.push_back(e);
    }
    found[k] = {};
  }
  if (ignored > 0) {
    x.notes.push_back(cat(listing.dir, ": ignored ", ignored, " entries that are not .jpg/.jpeg/.png files"));
  }
  return x;
}

void report_index_problems(const ItemIndex& x, bool skip_bad) {
  const auto n = static_cast<int64_t>(x.problems.size());
  if (n > 0 && !skip_bad) throw Error(cat(x.problems.front(), " (--bad-images fail)"));
  for (const auto& note : x.notes) log_warn(note);
  for (int64_t i = 0; i < std::min(n, BadImageLog::kNamedBadImages); ++i) {
    log_warn(cat(x.problems[static_cast<size_t>(i)], "; skipped (--bad-images skip)"));
  }
  if (n > BadImageLog::kNamedBadImages) {
    log_warn(cat(n, " problems with the dataset in all (the first ", BadImageLog::kNamedBadImages,
                 " are named above); skipped (--bad-images skip)"));
  }
}

ItemIndex folder_index(const FolderRequest& r, std::string* name) {
  const FolderListing listing = folder_listing(r.root, r.imagenet, r.split, r.class_index);
  const std::string source = fs::weakly_canonical(listing.dir).string();
  const IndexPlace place = index_place(r.index, cat("folder\n", source, "\n", r.class_index));
  ItemIndex x = load_or_build_index(place, source, listing.key, [&] { return list_folder(listing); });
  x.problems.insert(x.problems.begin(), listing.problems.begin(), listing.problems.end());
  if (name) *name = listing.name;
  return x;
}

std::unique_ptr<Dataset> read_image_folder(const FolderRequest& r, const RootShare& share) {
  auto make = [&] {
    std::string name;
    ItemIndex x = folder_index(r, &name);
    x.notes.insert(x.notes.begin(), name);  // carried to the other ranks, taken off below
    return x.serialise();
  };
  ItemIndex x = ItemIndex::parse(share ? share(make) : make(), "dataset index");
  const std::string name = x.notes.front();
  x.notes.erase(x.notes.begin());
  report_index_problems(x, r.skip_bad);
  if (x.entries.empty()) throw Error(cat("--data-path ", x.root, ": no images (.jpg/.jpeg/.png) in its class folders"));
  return std::make_unique<FolderDataset>(name, std::move(x));
}

}  // namespace vitslim::data

namespace vitslim::data {
namespace {

// Image files under `dir`, recursively, sorted by path; an unreadable folder is an Error.
std::vector<std::string> images_under(const fs::path& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_regular_file(type_ec) && is_image_name(it->path().filename().string()))
      files.push_back(it->path().string());
  }
  if (ec) throw Error(cat("--images ", dir.string(), ": cannot list (", ec.message(), ")"));
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

std::vector<std::string> read_path_list(const std::string& list, const std::string& flag, bool comments) {
  std::error_code ec;
  if (fs::is_directory(list, ec)) {
    throw Error(cat(flag, " ", list, ": is a directory; give a text file naming one image per line"));
  }
  std::istringstream in(read_text_file(list, flag));
  const fs::path base = fs::path(list).parent_path();
  std::vector<std::string> files;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // a list written on Windows
    if (comments) {
      const auto first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] == '#') continue;
      line = line.substr(first, line.find_last_not_of(" \t") - first + 1);
    }
    if (line.empty()) continue;
    const fs::path p(line);
    files.push_back(p.is_absolute() ? p.string() : (base / p).string());
  }
  return files;
}

std::unique_ptr<Dataset> read_image_files(const std::string& images, const std::string& image_list) {
  std::vector<std::string> files;
  std::string what;
  if (!image_list.empty()) {
    files = read_path_list(image_list, "--image-list", false);
    what = "--image-list " + image_list;
  } else {
    std::error_code ec;
    if (fs::is_directory(images, ec)) {
      files = images_under(images);
    } else if (fs::exists(images, ec)) {
      files = {images};
    } else {
      throw Error(cat("--images ", images, ": no such file or folder"));
    }
    what = "--images " + images;
  }
  if (files.empty()) throw Error(cat(what, ": no .jpg/.jpeg/.png images"));
  return std::make_unique<FileListDataset>("images", std::move(files));
}

}  // namespace vitslim::data
