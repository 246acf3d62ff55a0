// The data settings of every job that reads images, each field declared once with its option:
// the dataset and split, calibration subset, normalisation, image-folder decoding, the bad-image
// policy, and the per-image DeiT training transforms and loader threads. No torch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/runtime.h"
#include "data/image/resample.h"
#include "data/kinds.h"

namespace vitslim {

enum class BadImages { Skip, Fail };
inline const EnumNames<BadImages> kBadImagesNames = {{BadImages::Skip, "skip"}, {BadImages::Fail, "fail"}};
enum class Augment { Auto, Deit, None };
inline const EnumNames<Augment> kAugmentNames = {
    {Augment::Deit, "deit"}, {Augment::None, "none"}, {Augment::Auto, "auto"}};

inline constexpr double kMaxPrefetch = 64;
inline constexpr double kMaxShuffleBuffer = 1e8;

struct DataConfig {
  data::DataKind dataset = data::DataKind::FashionMnist;  // its row: data/kinds.h
  std::string path;                                       // empty: the kind's default folder (data/kinds.cpp)
  std::string split = "train";                            // train | test (imagenet: val)
  int64_t calib_images = 1024;
  int64_t batch_size = 64;
  std::vector<double> mean;  // per channel, after scaling pixels to [0,1]; empty: dataset default
  std::vector<double> std;
  // The model preset's pretrained normalisation (CLIP's, AugReg's, ImageNet's), the default for
  // photos; set by the jobs layer from --model, not an option. Empty: none.
  std::vector<double> preset_mean, preset_std;
  // Image folders (imagenet, folder) and the per-image transforms (data/image/transforms.h).
  std::string class_index;  // optional file naming the classes in label order
  BadImages bad_images = BadImages::Skip;
  Augment augment = Augment::Auto;                    // train transform (auto: deit for image folders)
  std::string auto_augment = "rand-m9-mstd0.5-inc1";  // timm RandAugment string, or none
  double reprob = 0.25;                               // random erasing probability (pixel mode)
  double hflip = 0.5;
  std::vector<double> scale = {0.08, 1.0};             // RandomResizedCrop area range
  std::vector<double> ratio = {3.0 / 4.0, 4.0 / 3.0};  // RandomResizedCrop aspect range
  double crop_pct = 0.875;                             // eval: resize to size / crop_pct, centre crop
  data::Filter interpolation = data::Filter::Bicubic;
  bool dct_scaling = true;         // JPEG DCT-domain downscaling of large crops
  std::string index;               // image folders and shards: index file, "none", or empty (cache)
  int64_t shuffle_buffer = 5000;   // shards, training: positions drawn from at random
  std::optional<int64_t> workers;  // training loader threads per rank (unset: loader_threads' choice)
  int64_t prefetch = 2;            // batches prepared ahead per worker

  // --workers, or when unset the threads this rank's cores allow (core/threads.h).
  int64_t loader_threads(bool cuda) const;
  // Whether --index names a file below --data-path (refused for image folders: see validate).
  bool index_inside_data() const;
  const data::DataKindInfo& kind() const { return data::kind_info(dataset); }
  bool image_folder() const { return kind().image_folder; }
  // Photos of any size, read per image (image folders and WebDataset shards).
  bool photos() const { return kind().photos; }
  bool train_augment() const { return augment == Augment::Deit || (augment == Augment::Auto && photos()); }

  // What makes an image the model's input (export records it): the dataset whose defaults apply,
  // --mean/--std, and the evaluation resize.
  void declare_dataset(Options& o) {
    o.group("data", "Data");
    o.add_enum("data-set", dataset, "dataset", data::data_kind_names());
  }
  void declare_preprocessing(Options& o) {
    declare_dataset(o);
    o.add("mean", mean, "per-channel mean after scaling to [0,1] (default: dataset's)");
    o.add("std", std, "per-channel std after scaling to [0,1] (default: dataset's)", positive());
    o.add("crop-pct", crop_pct,
          "image folders, evaluation: resize the shorter side to size / crop-pct, then centre crop",
          {0, 1, true, false});
    o.add_enum("interpolation", interpolation, "image folders: PIL's antialiased filter", data::kFilterNames);
  }
  // Where the images are and what becomes of unreadable ones (every job reading a dataset).
  void declare_source(Options& o) {
    o.add_path("data-path", path,
               "dataset folder (default for fashion-mnist: /usr/share/datasets/fashion-mnist; imagenet: the folder "
               "holding train/ and val/); wds: shards as 'DIR/train-{000000..001023}.tar', a list file, or a folder "
               "of train-*.tar and val-*.tar",
               PathRole::InputDir);
    o.add_choice("data-split", split, "split", {"train", "test"});
    o.add_path("class-index", class_index,
               "imagenet/folder: file naming the classes in label order (one folder name per line, or JSON "
               "{\"0\": [\"n01440764\", ...]}); default: sorted folder names",
               PathRole::InputFile);
    o.add_path("index", index,
               "imagenet/folder/wds: the dataset index rank 0 builds once and shares (read when it exists, written "
               "when not; train keeps its training split's here, the test split's in the cache; none: in memory "
               "only; default: a cache in $VITSLIM_CACHE_DIR, else $XDG_CACHE_HOME/vitslim or ~/.cache/vitslim)",
               PathRole::OutputFile);
    o.add_enum("bad-images", bad_images,
               "unreadable images, empty class folders, bad shards or samples, short CIFAR files: skip (counted "
               "warning) or fail",
               kBadImagesNames);
  }
  void declare(Options& o) {
    declare_preprocessing(o);
    declare_source(o);
    o.add("calib-images", calib_images, "calibration images (a seeded random subset of the split)", positive());
    o.add("batch-size", batch_size, "images per forward pass", closed(1, kMaxBatch));
    o.add_switch("jpeg-dct-scaling", dct_scaling,
                 "decode large JPEG crops at 1/2, 1/4 or 1/8 in the DCT domain when still >= the model's size");
  }
  // The per-image training transforms and the loader (train, pipeline, bench-data).
  void declare_augment(Options& o) {
    o.group("augment", "Training images (per-image DeiT augmentation, threaded loader)");
    o.add_enum("aug", augment,
               "deit: RandomResizedCrop + flip + RandAugment + random erasing; auto: deit for image folders",
               kAugmentNames);
    o.add("aa", auto_augment, "RandAugment config (timm syntax) or none", {"rand-m7-n3-mstd1.0", "none"});
    o.add("reprob", reprob, "random erasing probability (per-pixel values)", closed(0, 1));
    o.add("hflip", hflip, "horizontal flip probability", closed(0, 1));
    o.add("scale", scale, "RandomResizedCrop area range lo,hi", {0, 1, true, false});
    o.add("ratio", ratio, "RandomResizedCrop aspect-ratio range lo,hi", positive());
    o.add("shuffle-buffer", shuffle_buffer,
          "wds: each rank streams its shards through a buffer of this many samples, drawn at random (0: in order)",
          closed(0, kMaxShuffleBuffer));
    o.add("workers", workers,
          "loader threads per rank (0: the training thread builds each batch, over the compute threads; default: "
          "with a GPU the rank's cores less one, at most 16; on the CPU the cores the compute threads leave, 0 to 4)",
          closed(0, kMaxThreads));
    o.add("prefetch", prefetch, "batches prepared ahead per loader thread", closed(1, kMaxPrefetch));
  }
  // Cross-field checks (throws Error naming the flag).
  void validate() const;
};

struct BenchDataConfig {
  int64_t images = 256;  // images per timed round
  int64_t rounds = 3;
  std::string json;

  void declare(Options& o) {
    o.group("bench-data", "Data benchmark (images/s per thread: decode, train and eval transforms, loader)");
    o.add("images", images, "images timed per round", positive());
    o.add("rounds", rounds, "rounds (best reported)", positive());
    o.add_path("json", json, "write the result as JSON", PathRole::OutputFile);
  }
};

// `vitslim make-shards`: WebDataset shards from an image folder (data/make_shards.h).
struct MakeShardsConfig {
  std::string out;  // printf pattern with one integer conversion: DIR/train-%06d.tar
  int64_t shard_size = 1000;
  std::optional<bool> shuffle;  // unset: shuffle the train split, keep the order of the others
  bool force = false;

  void declare(Options& o) {
    o.group("make-shards", "WebDataset shards from an image folder");
    o.add_path("out", out, "shard files, a printf pattern with one integer conversion (DIR/train-%06d.tar)",
               PathRole::OutputFile);
    o.add("shard-size", shard_size, "samples per shard", positive());
    o.add_switch("shuffle", shuffle, "seeded shuffle of the samples across shards (default: for the train split)");
    o.add_switch("force", force, "replace existing shard files");
  }
};

}  // namespace vitslim
