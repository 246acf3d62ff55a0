// Implements image-folder datasets (see folder.h): a directory scan with error codes (an
// unreadable directory is a reported problem, never an exception from std::filesystem), file
// names kept per class, images read from disk when loaded.
#include "data/folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/log.h"

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

class FolderDataset : public Dataset {
 public:
  FolderDataset(std::string name, std::string root, std::vector<std::string> classes)
      : name_(std::move(name)), root_(std::move(root)), classes_(std::move(classes)) {}
  std::string name() const override { return name_; }
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t channels() const override { return kFolderChannels; }
  int64_t height() const override { return 0; }
  int64_t width() const override { return 0; }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  int64_t read(int64_t, uint8_t*) const override {
    throw Error(cat(name_, ": images differ in size; they are read through the per-image transforms"));
  }
  int64_t label(int64_t index) const override { return labels_.at(static_cast<size_t>(index)); }
  SourceImage source(int64_t index) const override { return SourceImage::from_file(path(index)); }
  std::string item_name(int64_t index) const override {
    const auto i = static_cast<size_t>(index);
    return (fs::path(classes_[static_cast<size_t>(labels_.at(i))]) / files_.at(i)).string();
  }
  std::string path(int64_t index) const { return (fs::path(root_) / item_name(index)).string(); }
  void add(int64_t label, std::string file) {
    labels_.push_back(static_cast<int32_t>(label));
    files_.push_back(std::move(file));
  }

 private:
  std::string name_, root_;
  std::vector<std::string> classes_;
  std::vector<int32_t> labels_;
  std::vector<std::string> files_;  // file name inside its class folder
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
  std::ifstream in(path);
  if (!in) throw Error(cat("--class-index ", path, ": cannot open"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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

std::unique_ptr<Dataset> read_image_folder(const std::string& root, bool imagenet, const std::string& split,
                                           const std::string& class_index, bool skip_bad) {
  bool found = false;
  const fs::path dir = split_dir(root, imagenet, split, found);
  const Problem problem = [&](const std::string& what) {
    if (!skip_bad) throw Error(cat(what, " (--bad-images fail)"));
    log_warn(cat(what, "; skipped (--bad-images skip)"));
  };
  const std::vector<std::string> classes = class_list(dir, class_index, problem);
  const std::string name = cat(imagenet ? "imagenet " : "folder ", found ? dir.filename().string() : split);
  auto data = std::make_unique<FolderDataset>(name, dir.string(), classes);
  int64_t ignored = 0;
  std::string error;
  for (size_t k = 0; k < classes.size(); ++k) {
    std::vector<std::string> files;
    const fs::path class_dir = dir / classes[k];
    std::string why;
    if (!readable_dir(class_dir, &why)) {
      problem(cat(class_dir.string(), ": class folder missing or unreadable (", why, ")"));
      continue;
    }
    if (!list_dir(class_dir, false, files, error, &ignored)) {
      problem(error);
      continue;
    }
    if (files.empty()) problem(cat(class_dir.string(), ": empty class folder (no .jpg/.jpeg/.png files)"));
    for (auto& f : files) data->add(static_cast<int64_t>(k), std::move(f));
  }
  if (ignored > 0) log_warn(cat(dir.string(), ": ignored ", ignored, " entries that are not .jpg/.jpeg/.png files"));
  if (data->size() == 0) {
    throw Error(cat("--data-path ", dir.string(), ": no images (.jpg/.jpeg/.png) in its class folders"));
  }
  return data;
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

std::vector<std::string> listed_images(const std::string& list) {
  std::ifstream in(list);
  if (!in) throw Error(cat("--image-list ", list, ": cannot open"));
  const fs::path base = fs::path(list).parent_path();
  std::vector<std::string> files;
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    const fs::path p(line.substr(first, last - first + 1));
    files.push_back(p.is_absolute() ? p.string() : (base / p).string());
  }
  return files;
}

}  // namespace

std::unique_ptr<Dataset> read_image_files(const std::string& images, const std::string& image_list) {
  std::vector<std::string> files;
  std::string what;
  if (!image_list.empty()) {
    files = listed_images(image_list);
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
