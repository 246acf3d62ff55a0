// Tests the dataset readers on files written here in their exact formats: IDX plain and gzipped,
// bad magic, truncation; CIFAR record sizes; calibration subsets; batch preparation (also the
// uint8 planes a GPU normalises).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <fstream>
#include <set>

#include "core/cuda_device.h"
#include "core/error.h"
#include "data/formats/dataset.h"
#include "data/loading/batch.h"
#include "test_util.h"

namespace data = vitslim::data;
using vitslim::Error;

namespace {

std::vector<uint8_t> idx_bytes(int dims_code, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out = {0, 0, 0x08, static_cast<uint8_t>(dims_code)};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(d >> s));
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

void write_plain(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

// 3 images of 2x2 and their labels.
void write_fmnist(const vitslim::test::TempDir& dir, bool gz) {
  std::vector<uint8_t> pixels = {0, 1, 2, 3, 10, 11, 12, 13, 250, 251, 252, 253};
  auto img = idx_bytes(3, {3, 2, 2}, pixels);
  auto lab = idx_bytes(1, {3}, {4, 0, 9});
  if (gz) {
    write_gz(dir.file("train-images-idx3-ubyte.gz"), img);
    write_gz(dir.file("train-labels-idx1-ubyte.gz"), lab);
  } else {
    write_plain(dir.file("train-images-idx3-ubyte"), img);
    write_plain(dir.file("train-labels-idx1-ubyte"), lab);
  }
}

using vitslim::test::error_of;

}  // namespace

TEST(FashionMnist, ReadsPlainAndGzipped) {
  for (bool gz : {false, true}) {
    vitslim::test::TempDir dir;
    write_fmnist(dir, gz);
    auto ds = data::read_fashion_mnist(dir.path(), "train");
    ASSERT_EQ(ds->size(), 3);
    EXPECT_EQ(ds->height(), 2);
    EXPECT_EQ(ds->channels(), 1);
    uint8_t px[4];
    EXPECT_EQ(ds->read(2, px), 9);
    EXPECT_EQ(px[3], 253);
    EXPECT_EQ(ds->read(0, px), 4);
  }
}

TEST(FashionMnist, BadMagicTruncationAndMismatch) {
  vitslim::test::TempDir dir;
  write_fmnist(dir, true);
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_bytes(1, {3, 2, 2}, std::vector<uint8_t>(12)));
  EXPECT_NE(error_of([&] { data::read_fashion_mnist(dir.path(), "train"); }).find("bad magic"), std::string::npos);
  auto img = idx_bytes(3, {3, 2, 2}, std::vector<uint8_t>(12));
  img.resize(img.size() - 5);
  write_gz(dir.file("train-images-idx3-ubyte.gz"), img);
  EXPECT_NE(error_of([&] { data::read_fashion_mnist(dir.path(), "train"); }).find("truncated"), std::string::npos);
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_bytes(3, {4, 2, 2}, std::vector<uint8_t>(16)));
  EXPECT_NE(error_of([&] { data::read_fashion_mnist(dir.path(), "train"); }).find("4 images but 3 labels"),
            std::string::npos);
  EXPECT_NE(error_of([&] { data::read_fashion_mnist(dir.path(), "test"); }).find("t10k-images"), std::string::npos);
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_bytes(3, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, {}));
  EXPECT_NE(error_of([&] { data::read_fashion_mnist(dir.path(), "train"); }).find("implausible"), std::string::npos);
  EXPECT_NE(error_of([&] { data::read_fashion_mnist(dir.file("nope"), "train"); }).find("not a directory"),
            std::string::npos);
}

TEST(FashionMnist, HeaderSizesAreCheckedAgainstTheFileBeforeAllocating) {
  vitslim::test::TempDir dir;
  write_fmnist(dir, false);
  // 16 bytes declaring 16384 images of 512x512 (4 GiB): refused at once, plain or gzipped.
  const auto lie = idx_bytes(3, {16384, 512, 512}, {});
  write_plain(dir.file("train-images-idx3-ubyte"), lie);
  const std::string plain = error_of([&] { data::read_fashion_mnist(dir.path(), "train"); });
  EXPECT_NE(plain.find("truncated (the header declares 4294967296 bytes of data, the file holds 16)"),
            std::string::npos)
      << plain;
  std::remove(dir.file("train-images-idx3-ubyte").c_str());
  write_gz(dir.file("train-images-idx3-ubyte.gz"), lie);
  const std::string gz = error_of([&] { data::read_fashion_mnist(dir.path(), "train"); });
  EXPECT_NE(gz.find("the compressed file holds"), std::string::npos) << gz;
}

TEST(FashionMnist, DebianPackageFiles) {
  auto ds = data::read_fashion_mnist(data::kFashionMnistDefaultPath, "test");
  EXPECT_EQ(ds->size(), 10000);
  EXPECT_EQ(ds->height(), 28);
  EXPECT_EQ(ds->num_classes(), 10);
}

TEST(Cifar, RecordsAndWrongSize) {
  vitslim::test::TempDir dir;
  std::vector<uint8_t> rec100(2 * (2 + 3072));
  rec100[0] = 3;
  rec100[1] = 77;  // fine label
  rec100[2] = 200;
  rec100[3074] = 1;
  rec100[3075] = 5;
  write_plain(dir.file("train.bin"), rec100);
  auto ds = data::read_cifar(dir.path(), 100, "train");
  ASSERT_EQ(ds->size(), 2);
  std::vector<uint8_t> px(3072);
  EXPECT_EQ(ds->read(0, px.data()), 77);
  EXPECT_EQ(px[0], 200);
  EXPECT_EQ(ds->read(1, px.data()), 5);
  rec100.pop_back();
  write_plain(dir.file("train.bin"), rec100);
  EXPECT_NE(error_of([&] { data::read_cifar(dir.path(), 100, "train"); }).find("not a multiple"), std::string::npos);
  std::vector<uint8_t> rec10(3073 * 2);
  rec10[3073] = 9;
  write_plain(dir.file("test_batch.bin"), rec10);
  auto test10 = data::read_cifar(dir.path(), 10, "test");
  EXPECT_EQ(test10->read(1, px.data()), 9);
  EXPECT_NE(error_of([&] { data::read_cifar(dir.path(), 10, "train"); }).find("data_batch_1.bin"), std::string::npos);
}

TEST(Calibration, SeededSubsetIndependentOfAnythingElse) {
  auto a = data::calibration_indices(1000, 100, 5);
  auto b = data::calibration_indices(1000, 100, 5);
  EXPECT_EQ(a, b);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 100u);
  EXPECT_NE(a, data::calibration_indices(1000, 100, 6));
  EXPECT_EQ(data::calibration_indices(10, 10, 0).size(), 10u);
  EXPECT_NE(error_of([] { data::calibration_indices(10, 11, 0); }).find("more than the 10 images"), std::string::npos);
}

TEST(Batch, NormalisesReplicatesAndResizes) {
  auto ds = data::make_synthetic(4, 1, 8, 3, 42);
  auto again = data::make_synthetic(4, 1, 8, 3, 42);
  uint8_t p1[64], p2[64];
  EXPECT_EQ(ds->read(3, p1), again->read(3, p2));
  EXPECT_EQ(0, std::memcmp(p1, p2, 64));
  vitslim::ModelShape shape;
  shape.in_chans = 3;
  shape.img_size = 16;
  auto batch = data::load_batch(*ds, {0, 3}, {0.5}, {0.25}, shape);
  ASSERT_EQ(batch.images.sizes(), (std::vector<int64_t>{2, 3, 16, 16}));
  EXPECT_TRUE(torch::equal(batch.images[0][0], batch.images[0][2]));
  shape.img_size = 8;
  auto native = data::load_batch(*ds, {3}, {0.5}, {0.25}, shape);
  EXPECT_NEAR(native.images[0][0][0][0].item<float>(), (p1[0] / 255.0 - 0.5) / 0.25, 1e-5);
}

// A GPU's batch (uint8 planes, normalised and erased where the model is) against the CPU's float
// batch of the same seeds, both on the CPU here: bit for bit outside the erased rectangles, the
// same rectangles (the CPU's erased values are no normalised pixel), and noise drawn only from
// the given generator.
TEST(Batch, PlanesNormalisedWhereTheModelIsEqualTheCpuBatchOutsideTheErasing) {
  auto ds = data::make_synthetic(6, 3, 40, 10, 7);
  data::TransformSettings s;
  s.size = 24;
  s.mean = {0.5, 0.4, 0.3};
  s.std = {0.2, 0.25, 0.3};
  s.erase_prob = 1.0;
  const std::vector<int64_t> idx = {0, 1, 2, 3, 4, 5};
  const std::vector<uint64_t> seeds = {11, 12, 13, 14, 15, 16};
  const auto cpu = data::load_train_batch(*ds, idx, seeds, s);
  const auto planes = data::load_train_batch(*ds, idx, seeds, s, {data::TrainPixels::Planes, false, true});
  EXPECT_FALSE(cpu.erase.defined());
  ASSERT_EQ(planes.images.scalar_type(), torch::kUInt8);
  ASSERT_EQ(planes.erase.sizes(), (std::vector<int64_t>{6, 4}));
  EXPECT_TRUE(torch::equal(planes.labels, cpu.labels));
  EXPECT_TRUE(planes.erase.select(1, 2).gt(0).all().item<bool>()) << "probability 1 erases every image";

  const data::Normaliser norm(s.mean, s.std, 3);
  const data::PlaneNormaliser device_half(norm, torch::kCPU);
  auto gen = vitslim::cuda::make_generator(torch::kCPU, 99);
  const auto x = device_half(planes.images, planes.erase, gen);
  ASSERT_EQ(x.sizes(), cpu.images.sizes());
  ASSERT_EQ(x.scalar_type(), torch::kFloat);
  auto inside = torch::zeros({6, 1, 24, 24}, torch::kBool);
  for (int64_t b = 0; b < 6; ++b) {
    const auto e = planes.erase[b];
    const int64_t x0 = e[0].item<int64_t>(), y0 = e[1].item<int64_t>(), w = e[2].item<int64_t>(),
                  h = e[3].item<int64_t>();
    inside[b].narrow(1, y0, h).narrow(2, x0, w).fill_(true);
  }
  inside = inside.expand({6, 3, 24, 24});
  EXPECT_TRUE(torch::equal(x.masked_select(~inside), cpu.images.masked_select(~inside)));
  // Inside, the CPU's values are its noise: none equals a normalised pixel of its channel.
  for (int64_t c = 0; c < 3; ++c) {
    const auto table = torch::from_blob(const_cast<float*>(norm.table()[c].data()), {256}, torch::kFloat);
    const auto erased = cpu.images.select(1, c).masked_select(inside.select(1, c));
    EXPECT_FALSE(torch::isin(erased, table).any().item<bool>()) << "channel " << c;
  }
  const auto noise = x.masked_select(inside);
  EXPECT_GT(noise.numel(), 100);
  EXPECT_LT(noise.mean().abs().item<double>(), 0.25);
  EXPECT_NEAR(noise.std().item<double>(), 1.0, 0.25);
  EXPECT_FALSE(torch::equal(noise, cpu.images.masked_select(inside)));
  auto same = vitslim::cuda::make_generator(torch::kCPU, 99), other = vitslim::cuda::make_generator(torch::kCPU, 100);
  EXPECT_TRUE(torch::equal(device_half(planes.images, planes.erase, same), x));
  EXPECT_FALSE(torch::equal(device_half(planes.images, planes.erase, other), x));

  s.erase_prob = 0;  // nothing erased: the two batches are equal
  const auto kept = data::load_train_batch(*ds, idx, seeds, s, {data::TrainPixels::Planes});
  EXPECT_TRUE(kept.erase.eq(0).all().item<bool>());
  EXPECT_TRUE(
      torch::equal(device_half(kept.images, kept.erase, gen), data::load_train_batch(*ds, idx, seeds, s).images));
}
