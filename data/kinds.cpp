// The table of dataset kinds (see kinds.h): one row per --data-set value, with the reader that
// opens it.
#include "data/kinds.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "data/formats/dataset.h"
#include "data/formats/folder.h"
#include "data/formats/shards.h"
#include "data/settings.h"

namespace vitslim::data {
namespace {

constexpr int kCifar10Classes = 10;
constexpr int kCifar100Classes = 100;

bool skip_bad(const OpenRequest& r) { return r.config.bad_images == BadImages::Skip; }

std::unique_ptr<Dataset> open_fashion_mnist(const OpenRequest& r) { return read_fashion_mnist(r.path, r.config.split); }
std::unique_ptr<Dataset> open_cifar10(const OpenRequest& r) {
  return read_cifar(r.path, kCifar10Classes, r.config.split, skip_bad(r));
}
std::unique_ptr<Dataset> open_cifar100(const OpenRequest& r) {
  return read_cifar(r.path, kCifar100Classes, r.config.split, skip_bad(r));
}
std::unique_ptr<Dataset> open_folder(const OpenRequest& r) {
  const DataConfig& c = r.config;
  return read_image_folder({r.path, kind_info(c.dataset).imagenet_layout, c.split, c.class_index, c.index, skip_bad(r)},
                           r.share);
}
std::unique_ptr<Dataset> open_shards(const OpenRequest& r) {
  return read_shards({r.path, r.config.split, r.config.index, r.model.num_classes, skip_bad(r)}, r.share);
}
// A model without a head (a backbone) gets one-class labels: entropy and search ignore them.
std::unique_ptr<Dataset> open_synthetic(const OpenRequest& r) {
  return make_synthetic(r.config.calib_images, r.model.in_chans, r.model.img_size,
                        std::max<int64_t>(r.model.num_classes, 1), r.seed);
}

const Normalisation kNoStatistics{{0.5}, {0.5}};

// One row per kind. Columns: the kind, its --data-set name; photos (any size, read per image),
// image folder (class-per-folder tree), ImageNet layout (train/ and val/); what the index records;
// needs files (false: generated), the default --data-path; the default normalisation; the reader.
// clang-format off
const std::vector<DataKindInfo> kKinds = {
    {DataKind::FashionMnist, "fashion-mnist", false, false, false, IndexSource::None,   true,  kFashionMnistDefaultPath,
     {{0.2860}, {0.3530}}, open_fashion_mnist},
    {DataKind::Cifar10,      "cifar10",       false, false, false, IndexSource::None,   true,  nullptr,
     {{0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}}, open_cifar10},
    {DataKind::Cifar100,     "cifar100",      false, false, false, IndexSource::None,   true,  nullptr,
     {{0.5071, 0.4865, 0.4409}, {0.2673, 0.2564, 0.2762}}, open_cifar100},
    {DataKind::Imagenet,     "imagenet",      true,  true,  true,  IndexSource::Folder, true,  nullptr,
     kImagenetNormalisation, open_folder},
    {DataKind::Folder,       "folder",        true,  true,  false, IndexSource::Folder, true,  nullptr,
     kImagenetNormalisation, open_folder},
    {DataKind::Wds,          "wds",           true,  false, false, IndexSource::Shards, true,  nullptr,
     kImagenetNormalisation, open_shards},
    {DataKind::Synthetic,    "synthetic",     false, false, false, IndexSource::None,   false, nullptr,
     kNoStatistics, open_synthetic},
};
// clang-format on

}  // namespace

const DataKindInfo& kind_info(DataKind kind) {
  for (const auto& row : kKinds) {
    if (row.kind == kind) return row;
  }
  throw Error(cat("dataset kind ", static_cast<int>(kind), " has no row in data/kinds.cpp"));
}

const EnumNames<DataKind>& data_kind_names() {
  static const EnumNames<DataKind> names = [] {
    EnumNames<DataKind> out;
    for (const auto& row : kKinds) out.emplace_back(row.kind, row.name);
    return out;
  }();
  return names;
}

const char* kind_name(DataKind kind) { return kind_info(kind).name; }

}  // namespace vitslim::data
