// Tests the image code against PIL/timm golden fixtures (scripts/make_image_fixtures.py, the
// ctest fixture that writes test-data/images): JPEG/PNG decoding of every kind, region decoding,
// PIL-exact resizing of crops and boxes, the eval transform, every RandAugment op, normalisation,
// RandomResizedCrop statistics, the uint8 eval planes a GPU normalises; plus the loader's determinism and error
// handling, and bad files.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/formats/folder.h"
#include "data/image/augment.h"
#include "data/image/codec.h"
#include "data/image/resample.h"
#include "data/image/transforms.h"
#include "data/loading/batch.h"
#include "data/loading/loader.h"
#include "test_util.h"

namespace data = vitslim::data;
using data::Image;
using json = nlohmann::json;

namespace {

std::string dir() { return vitslim::test::test_data("images"); }

json manifest() {
  std::ifstream in(dir() + "/manifest.json");
  EXPECT_TRUE(in.good()) << "fixtures missing: run scripts/make_image_fixtures.py (ctest fixture)";
  return json::parse(in);
}

Image load_u8(const json& entry) {
  Image img(entry["width"].get<int64_t>(), entry["height"].get<int64_t>(), entry["channels"].get<int64_t>());
  std::ifstream in(dir() + "/" + entry["file"].get<std::string>(), std::ios::binary);
  in.read(reinterpret_cast<char*>(img.pixels.data()), static_cast<std::streamsize>(img.pixels.size()));
  EXPECT_TRUE(in.good()) << entry["file"];
  return img;
}

// Number of bytes that differ and the largest difference.
struct Diff {
  int64_t count = 0;
  int max = 0;
};
Diff compare(const Image& a, const Image& b) {
  Diff d;
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.channels, b.channels);
  if (a.pixels.size() != b.pixels.size()) return {-1, 255};
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const int e = std::abs(int{a.pixels[i]} - int{b.pixels[i]});
    if (e) {
      ++d.count;
      d.max = std::max(d.max, e);
    }
  }
  return d;
}

Image crop(const Image& src, int64_t x, int64_t y, int64_t w, int64_t h) {
  Image out(w, h, src.channels);
  for (int64_t r = 0; r < h; ++r) std::copy_n(src.row(y + r) + x * src.channels, w * src.channels, out.row(r));
  return out;
}

data::Filter filter_of(const std::string& name) { return vitslim::parse_enum(data::kFilterNames, name, "filter"); }

}  // namespace

TEST(Images, DecodeMatchesPilForEveryKind) {
  const json m = manifest();
  for (const auto& [name, entry] : m["decode"].items()) {
    const Image ours = data::SourceImage::from_file(dir() + "/" + name).decode_all(3);
    const Diff d = compare(ours, load_u8(entry));
    EXPECT_EQ(d.count, 0) << name << ": " << d.count << " bytes differ from PIL, max " << d.max;
  }
}

TEST(Images, RegionDecodeEqualsCropOfFullDecode) {
  for (const char* name :
       {"baseline.jpg", "progressive.jpg", "q95_444.jpg", "grey.jpg", "cmyk.jpg", "odd.jpg", "png_named.JPEG"}) {
    const auto src = data::SourceImage::from_file(dir() + "/" + name);
    const Image full = src.decode_all(3);
    for (const data::Region r :
         {data::Region{0, 0, 17, 9}, data::Region{13, 7, 150, 101}, data::Region{1, 200, 77, 10},
          data::Region{16, 32, 64, 48}, data::Region{32, 0, 33, 20}, data::Region{10, 20, 300, 150},
          data::Region{src.width() - 31, src.height() - 29, 31, 29}, data::Region{0, 0, src.width(), src.height()}}) {
      const auto region = src.decode(r, 3);
      EXPECT_EQ(region.box.x0, 0);
      EXPECT_EQ(region.box.x1, r.w);
      const Diff d = compare(region.image, crop(full, r.x, r.y, r.w, r.h));
      EXPECT_EQ(d.count, 0) << name << " region " << r.x << "," << r.y << " " << r.w << "x" << r.h;
    }
  }
}

TEST(Images, CropAndResizeMatchPil) {
  const json m = manifest();
  const auto src = data::SourceImage::from_file(dir() + "/baseline.jpg");
  for (const auto& e : m["crops"]) {
    const auto r = e["region"];
    const auto region = src.decode({r[0], r[1], r[2], r[3]}, 3);
    const int64_t size = e["size"];
    const Image ours = data::resample(region.image, region.box, size, size, filter_of(e["filter"]));
    const Diff d = compare(ours, load_u8(e));
    EXPECT_EQ(d.count, 0) << e["file"] << ": " << d.count << " bytes differ, max " << d.max;
  }
}

TEST(Images, ResizeWithFractionalBoxMatchesPil) {
  const json m = manifest();
  const Image full = data::SourceImage::from_file(dir() + "/baseline.jpg").decode_all(3);
  for (const auto& e : m["boxes"]) {
    const auto b = e["box"];
    const Image ours = data::resample(full, {b[0], b[1], b[2], b[3]}, e["width"], e["height"], data::Filter::Bicubic);
    const Diff d = compare(ours, load_u8(e));
    EXPECT_EQ(d.count, 0) << e["file"];
  }
}

TEST(Images, ResampleWindowEqualsCropOfFullResize) {
  const Image full = data::SourceImage::from_file(dir() + "/odd.jpg").decode_all(3);
  const data::Box box{0, 0, static_cast<double>(full.width), static_cast<double>(full.height)};
  const Image all = data::resample(full, box, 290, 181, data::Filter::Bicubic);
  const data::Region w{33, 21, 200, 150};
  const Image part = data::resample(full, box, 290, 181, data::Filter::Bicubic, w);
  EXPECT_EQ(compare(part, crop(all, w.x, w.y, w.w, w.h)).count, 0);
}

TEST(Images, EvalTransformMatchesTorchvision) {
  const json m = manifest();
  data::TransformSettings s;
  for (const auto& e : m["eval"]) {
    const auto src = data::SourceImage::from_file(dir() + "/" + e["source"].get<std::string>());
    const Diff d = compare(data::eval_image(src, s), load_u8(e));
    EXPECT_EQ(d.count, 0) << e["file"] << ": " << d.count << " bytes differ, max " << d.max;
  }
}

namespace {

Image apply_fixture_op(const Image& base, const std::string& op, const json& args, const std::array<uint8_t, 3>& fill) {
  Image img = base;
  const auto a = [&](size_t i) { return args[i].get<double>(); };
  if (op == "AutoContrast")
    data::autocontrast(img);
  else if (op == "Equalize")
    data::equalize(img);
  else if (op == "Invert") {
    std::array<uint8_t, 256> lut;
    for (int i = 0; i < 256; ++i) lut[static_cast<size_t>(i)] = static_cast<uint8_t>(255 - i);
    data::apply_lut(img, lut);
  } else if (op == "Rotate")
    img = data::rotate(img, a(0), data::Filter::Bicubic, fill);
  else if (op == "Posterize")
    data::posterize(img, static_cast<int>(a(0)));
  else if (op == "Solarize")
    data::solarize(img, static_cast<int>(a(0)));
  else if (op == "SolarizeAdd")
    data::solarize_add(img, static_cast<int>(a(0)));
  else if (op == "Color")
    data::enhance_color(img, a(0));
  else if (op == "Contrast")
    data::enhance_contrast(img, a(0));
  else if (op == "Brightness")
    data::enhance_brightness(img, a(0));
  else if (op == "Sharpness")
    data::enhance_sharpness(img, a(0));
  else if (op == "ShearX")
    img = data::affine(img, {1, a(0), 0, 0, 1, 0}, data::Filter::Bicubic, fill);
  else if (op == "ShearY")
    img = data::affine(img, {1, 0, 0, a(0), 1, 0}, data::Filter::Bicubic, fill);
  else if (op == "TranslateXRel")
    img = data::affine(img, {1, 0, a(0) * img.width, 0, 1, 0}, data::Filter::Bicubic, fill);
  else if (op == "TranslateYRel")
    img = data::affine(img, {1, 0, 0, 0, 1, a(0) * img.height}, data::Filter::Bicubic, fill);
  else if (op == "AffineBilinear" || op == "AffineBicubic") {
    img = data::affine(img, {a(0), a(1), a(2), a(3), a(4), a(5)},
                       op == "AffineBilinear" ? data::Filter::Bilinear : data::Filter::Bicubic, fill);
  } else {
    ADD_FAILURE() << "unknown op " << op;
  }
  return img;
}

}  // namespace

TEST(Images, RandAugmentOpsMatchTimmOnPil) {
  const json m = manifest();
  const std::array<uint8_t, 3> fill = {m["fill"][0], m["fill"][1], m["fill"][2]};
  for (const char* set : {"ops", "grey_ops"}) {
    const Image base = load_u8(m[set == std::string("ops") ? "op_base" : "op_base_grey"]);
    for (const auto& e : m[set]) {
      const Image ours = apply_fixture_op(base, e["op"], e["args"], fill);
      const Diff d = compare(ours, load_u8(e));
      EXPECT_EQ(d.count, 0) << set << " " << e["op"] << " " << e["args"] << ": " << d.count << " bytes differ, max "
                            << d.max;
    }
  }
}

TEST(Images, NormalisationMatchesToTensorNormalize) {
  const json m = manifest();
  const Image base = load_u8(m["op_base"]);
  std::vector<float> expected(static_cast<size_t>(3 * base.width * base.height)), ours(expected.size());
  std::ifstream(dir() + "/normalised.f32", std::ios::binary)
      .read(reinterpret_cast<char*>(expected.data()), static_cast<std::streamsize>(expected.size() * sizeof(float)));
  data::Normaliser norm({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, 3);
  norm(base, ours.data());
  EXPECT_EQ(ours, expected);
}

TEST(Images, RandomResizedCropFollowsTimmStatistics) {
  const json st = manifest()["rrc_stats"];
  data::TransformSettings s;
  const int64_t W = st["width"], H = st["height"], n = 20000;
  double area = 0, area2 = 0, lr = 0, lr2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    vitslim::Rng rng(vitslim::mix_seed(11, static_cast<uint64_t>(i)));
    const data::Region r = data::random_resized_crop(W, H, s, rng);
    ASSERT_TRUE(r.x >= 0 && r.y >= 0 && r.x + r.w <= W && r.y + r.h <= H && r.w > 0 && r.h > 0);
    const double a = static_cast<double>(r.w * r.h) / static_cast<double>(W * H),
                 l = std::log(static_cast<double>(r.w) / r.h);
    area += a, area2 += a * a, lr += l, lr2 += l * l;
  }
  area /= n, lr /= n;
  EXPECT_NEAR(area, st["area_mean"].get<double>(), 0.01);
  EXPECT_NEAR(std::sqrt(area2 / n - area * area), st["area_std"].get<double>(), 0.01);
  EXPECT_NEAR(lr, st["log_aspect_mean"].get<double>(), 0.01);
  EXPECT_NEAR(std::sqrt(lr2 / n - lr * lr), st["log_aspect_std"].get<double>(), 0.01);
}

TEST(Images, RandAugmentConfigStrings) {
  auto c = data::parse_rand_augment("rand-m9-mstd0.5-inc1");
  EXPECT_EQ(c.magnitude, 9);
  EXPECT_EQ(c.magnitude_std, 0.5);
  EXPECT_TRUE(c.increasing);
  EXPECT_EQ(c.num_ops, 2);
  EXPECT_EQ(c.prob, 0.5);
  c = data::parse_rand_augment("rand-m7-n3-mstd101-mmax15-p0.3");
  EXPECT_EQ(c.num_ops, 3);
  EXPECT_TRUE(std::isinf(c.magnitude_std));
  EXPECT_EQ(c.magnitude_max, 15);
  EXPECT_FALSE(c.increasing);
  for (const char* bad : {"augmix-m9", "rand-x9", "rand-m9-p2", "rand-mfoo"}) {
    EXPECT_THROW(data::parse_rand_augment(bad), vitslim::Error) << bad;
  }
}

TEST(Images, TrainTransformIsAFunctionOfTheSeed) {
  const auto src = data::SourceImage::from_file(dir() + "/baseline.jpg");
  data::TransformSettings s;
  s.rand_augment = data::parse_rand_augment("rand-m9-mstd0.5-inc1");
  const data::Normaliser norm(s.mean, s.std, 3);
  std::vector<float> a(3 * 224 * 224), b(a.size()), c(a.size());
  vitslim::Rng r1(5), r2(5), r3(6);
  data::train_transform(src, s, norm, r1, a.data());
  data::train_transform(src, s, norm, r2, b.data());
  data::train_transform(src, s, norm, r3, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (float v : a) ASSERT_TRUE(std::isfinite(v));
}

TEST(Images, DctShrinkStaysCloseToFullResolution) {
  // A large real photo: the crop decoded at 1/4 then resized vs decoded at full size and resized.
  const auto src = data::SourceImage::from_file("/usr/share/backgrounds/mate/nature/Garden.jpg");
  ASSERT_GE(src.width(), 1000);
  const data::Region r{100, 50, src.width() - 200, src.height() - 100};
  const auto exact = src.decode(r, 3);
  const auto shrunk = src.decode(r, 3, 8, 224, 224);
  EXPECT_GT(r.w / shrunk.image.width, 1) << "no DCT shrink happened";
  const Image a = data::resample(exact.image, exact.box, 224, 224, data::Filter::Bicubic);
  const Image b = data::resample(shrunk.image, shrunk.box, 224, 224, data::Filter::Bicubic);
  double se = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i)
    se += std::pow(static_cast<double>(a.pixels[i]) - static_cast<double>(b.pixels[i]), 2);
  const double psnr = 10 * std::log10(255.0 * 255.0 / (se / static_cast<double>(a.pixels.size())));
  EXPECT_GT(psnr, 30.0) << "PSNR " << psnr;
}

TEST(Images, BadFilesAreBadImageErrorsNamingTheFile) {
  vitslim::test::TempDir tmp;
  std::ifstream in(dir() + "/baseline.jpg", std::ios::binary);
  std::vector<char> jpeg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto write = [&](const std::string& name, const char* p, size_t n) {
    std::ofstream(tmp.file(name), std::ios::binary).write(p, static_cast<std::streamsize>(n));
    return tmp.file(name);
  };
  const std::string truncated = write("truncated.jpg", jpeg.data(), jpeg.size() / 2);
  const std::string header_only = write("header.jpg", jpeg.data(), 600);
  const std::string text = write("text.JPEG", "hello, not an image\n", 20);
  const std::string empty = write("empty.jpg", "", 0);
  std::vector<char> garbage(jpeg.begin(), jpeg.begin() + 2000);
  for (size_t i = 700; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 37);
  const std::string corrupt = write("corrupt.jpg", garbage.data(), garbage.size());
  for (const std::string& f : {truncated, header_only, text, empty, corrupt}) {
    try {
      data::SourceImage::from_file(f).decode_all(3);
      ADD_FAILURE() << f << " decoded";
    } catch (const data::BadImage& e) {
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(data::SourceImage::from_file(tmp.file("missing.jpg")), data::BadImage);
}

TEST(Images, SizeIsTheDecodersEvenWhenTheHeaderBytesLie) {
  std::ifstream in(dir() + "/baseline.jpg", std::ios::binary);
  std::vector<uint8_t> jpeg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const Image truth = data::SourceImage::from_bytes(jpeg, "baseline.jpg").decode_all(3);
  // FF 00 after SOI: not a marker; libjpeg (and PIL) skip it as extraneous bytes.
  auto lying = jpeg;
  lying.insert(lying.begin() + 2, {0xFF, 0x00, 0x12, 0x34});
  const auto src = data::SourceImage::from_bytes(lying, "lying.jpg");
  EXPECT_EQ(src.width(), truth.width);
  EXPECT_EQ(src.height(), truth.height);
  EXPECT_EQ(src.decode_all(3).pixels, truth.pixels);
  // A second frame header (a 16x16 SOF0 ahead of the real one) is a bad image, never a corner.
  auto two_frames = jpeg;
  two_frames.insert(two_frames.begin() + 2, {0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x10, 0x00, 0x10, 0x03, 0x01, 0x22,
                                             0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01});
  try {
    const auto s2 = data::SourceImage::from_bytes(two_frames, "two_frames.jpg");
    const Image img = s2.decode_all(3);
    EXPECT_EQ(img.width, s2.width());
    EXPECT_EQ(img.height, s2.height());
  } catch (const data::BadImage& e) {
    EXPECT_NE(std::string(e.what()).find("two_frames.jpg"), std::string::npos) << e.what();
  }
}

TEST(Loader, SameBatchesForAnyWorkerCountAndErrorsReachTheConsumer) {
  auto make = [](int64_t b) {
    data::Batch batch;
    batch.images = torch::full({2, 3}, static_cast<float>(b));
    batch.labels = torch::full({2}, b, torch::kLong);
    return batch;
  };
  for (int64_t workers : {0, 1, 3}) {
    data::Loader loader(5, 20, make, workers, 2);
    for (int64_t b = 5; b < 25; ++b) {
      auto batch = loader.next();
      EXPECT_EQ(batch.labels[0].item<int64_t>(), b) << workers << " workers";
    }
    EXPECT_THROW(loader.next(), vitslim::Error);
  }
  auto failing = [&](int64_t b) {
    if (b == 3) throw vitslim::Error("batch 3 cannot be built");
    return make(b);
  };
  data::Loader loader(0, 10, failing, 2, 2);
  for (int64_t b = 0; b < 3; ++b) EXPECT_EQ(loader.next().labels[0].item<int64_t>(), b);
  EXPECT_THROW(loader.next(), vitslim::Error);
  // Destroyed with batches pending and workers blocked on the window: must not hang.
  std::atomic<int> built{0};
  {
    data::Loader pending(
        0, 1000,
        [&](int64_t b) {
          ++built;
          return make(b);
        },
        3, 2);
    pending.next();
  }
  EXPECT_LE(built.load(), 1 + 3 * 2 + 3);
}

// Evaluation on a GPU: photos cross as uint8 planes and the device's table gives the CPU's floats.
TEST(Images, EvalPlanesNormalisedWhereTheModelIsAreTheCpuBatch) {
  const auto files = data::read_image_files(dir(), "");
  vitslim::ModelShape shape;
  shape.in_chans = 3;
  shape.img_size = 40;
  const std::vector<double> mean = {0.5, 0.45, 0.4}, std = {0.2, 0.25, 0.3};
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < std::min<int64_t>(files->size(), 5); ++i) idx.push_back(i);
  ASSERT_GE(idx.size(), 2u);
  const auto cpu = data::load_batch(*files, idx, mean, std, shape);
  const auto planes = data::load_batch_planes(*files, idx, mean, std, shape, /*pinned=*/false);
  ASSERT_EQ(planes.images.scalar_type(), torch::kUInt8);
  const data::PlaneNormaliser device_half(data::Normaliser(mean, std, 3), torch::kCPU);
  EXPECT_TRUE(torch::equal(device_half(planes.images), cpu.images));
  EXPECT_TRUE(torch::equal(planes.labels, cpu.labels));
  EXPECT_THROW(data::load_batch_planes(*data::make_synthetic(4, 3, 8, 2, 1), {0}, mean, std, shape, false),
               vitslim::Error);
}
