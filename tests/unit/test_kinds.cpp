// Tests of the dataset-kind table (data/kinds.h): every kind has one consistent row, and the
// --data-set names parse back to their kind.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/options.h"
#include "data/kinds.h"

namespace vitslim::data {
namespace {

TEST(DataKinds, EveryKindHasOneRowWhoseNameParsesBack) {
  std::set<std::string> names;
  for (const auto& [kind, name] : data_kind_names()) {
    EXPECT_EQ(kind_info(kind).kind, kind);
    EXPECT_STREQ(kind_name(kind), name);
    EXPECT_EQ(parse_enum(data_kind_names(), name, "--data-set"), kind);
    names.insert(name);
  }
  EXPECT_EQ(names.size(), data_kind_names().size());
  EXPECT_EQ(names.size(), static_cast<size_t>(DataKind::Synthetic) + 1);  // one row per enum value
}

TEST(DataKinds, RowsAreConsistent) {
  for (const auto& [kind, name] : data_kind_names()) {
    const DataKindInfo& k = kind_info(kind);
    SCOPED_TRACE(name);
    EXPECT_NE(k.open, nullptr);
    EXPECT_EQ(k.normalisation.mean.size(), k.normalisation.std.size());
    EXPECT_TRUE(!k.imagenet_layout || k.image_folder);
    EXPECT_TRUE(!k.image_folder || k.photos);
    EXPECT_EQ(k.index == IndexSource::Folder, k.image_folder);
    EXPECT_TRUE(k.index == IndexSource::None || k.photos);
    EXPECT_TRUE(k.needs_files || k.default_path == nullptr);
  }
}

TEST(DataKinds, PhotosDefaultToImagenetStatistics) {
  for (DataKind kind : {DataKind::Imagenet, DataKind::Folder, DataKind::Wds}) {
    EXPECT_EQ(kind_info(kind).normalisation.mean, kImagenetNormalisation.mean);
    EXPECT_EQ(kind_info(kind).normalisation.std, kImagenetNormalisation.std);
  }
  EXPECT_EQ(kind_info(DataKind::FashionMnist).normalisation.mean.size(), 1U);
  EXPECT_STREQ(kind_info(DataKind::FashionMnist).default_path, "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(kind_info(DataKind::Cifar10).default_path, nullptr);
  EXPECT_THROW(parse_enum(data_kind_names(), "mnist", "--data-set"), Error);
}

}  // namespace
}  // namespace vitslim::data
