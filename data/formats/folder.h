// Image-folder datasets: one folder per class holding .jpg/.jpeg/.png files (any case), the
// layout of ImageNet-1k (`<root>/train/<wnid>/*.JPEG`, `<root>/val/<wnid>/*.JPEG`) and of
// torchvision's ImageFolder. Classes are the sorted folder names, or the order of a class index
// file. Files are listed once into an index (sorted, so indices are stable; cached and shared
// between ranks, see data/formats/item_index.h) and decoded per image when loaded. Empty class folders and unreadable
// directories follow --bad-images (skip: a warning naming them, the class keeps its label; fail: an Error).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/formats/dataset.h"
#include "data/formats/item_index.h"

namespace vitslim::data {

struct FolderRequest {
  std::string root;
  bool imagenet = false;
  std::string split = "train";
  std::string class_index;  // optional
  std::string index;        // --index: a file, "none", or empty for the cache (data/formats/item_index.h)
  bool skip_bad = true;
};

// `imagenet`: <root>/train or <root>/val (split test) must exist. Otherwise <root>/<train|val|test>
// when present, else <root> itself holds the class folders. Rank 0 lists the tree (or reads its
// index) and `share` hands the index to the other ranks.
std::unique_ptr<Dataset> read_image_folder(const FolderRequest& request, const RootShare& share = {});

// The index of the folder `request` names: read from --index or the cache when it is current,
// else listed (and written there). `name` gets the dataset's name ("imagenet train").
ItemIndex folder_index(const FolderRequest& request, std::string* name = nullptr);

// The split folder, its classes in label order, and the key an index of it is made from (the
// folder, the class index, every class folder's mtime). Lists the root only, not the classes.
struct FolderListing {
  std::string dir, name, key;
  std::vector<std::string> classes;
  std::vector<std::string> problems;  // class folders not in --class-index
};
FolderListing folder_listing(const std::string& root, bool imagenet, const std::string& split,
                             const std::string& class_index);
// Lists every class folder of `listing` into an index (parallel threads; problems recorded).
ItemIndex list_folder(const FolderListing& listing);
// The notes of an index as warnings, its problems as warnings (skip_bad) or the first as an Error.
void report_index_problems(const ItemIndex& index, bool skip_bad);

// Unlabelled image files (label -1, no classes) for prediction: `images` is one file or a folder
// searched recursively (sorted paths), `image_list` a text file naming one image per line (each
// line a name as written, empty lines skipped; relative paths are relative to the list's folder). Exactly one
// of them is non-empty. Missing files are found when read (the --bad-images policy); an empty
// selection is an Error naming the input.
std::unique_ptr<Dataset> read_image_files(const std::string& images, const std::string& image_list);
// The paths a list file names, one per line, relative paths from the list's folder; a trailing CR
// is dropped and empty lines skipped. With `comments` (shard lists) blank lines and `#` comments
// are skipped and surrounding spaces trimmed; without (image lists, whose file names may start
// with `#` or a space) every other line is a name as written. An Error naming `flag` when the list
// is a directory or cannot be opened.
std::vector<std::string> read_path_list(const std::string& list, const std::string& flag, bool comments);

// Whether a file name is an image the folder datasets read: .jpg, .jpeg or .png, any case.
bool is_image_name(const std::string& name);

// A class index file: one class folder name per line (blank lines and #-comments skipped), or
// JSON mapping "0".."K-1" to [folder, description] (Keras's imagenet_class_index.json) or to a name.
std::vector<std::string> read_class_index(const std::string& path);

}  // namespace vitslim::data
