// Tests option parsing (flags, INI files, errors naming the flag) and model shape resolution.
#include <gtest/gtest.h>

#include <fstream>
#include <vector>

#include "core/error.h"
#include "core/options.h"
#include "model/presets.h"
#include "test_util.h"

using vitslim::Error;
using vitslim::ModelRequest;
using vitslim::parse_options;
using vitslim::model::resolve_shape;
using vitslim::model::ShapeFromWeights;

namespace {

vitslim::ParsedCommand parse(std::vector<std::string> args) {
  std::vector<const char*> argv = {"vitslim"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_options(static_cast<int>(argv.size()), argv.data());
}

std::string error_of(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Options, ParsesEntropyFlags) {
  auto p = parse({"entropy", "--model", "deit_tiny", "--calib-images", "64", "--mean", "0.5,0.4,0.3", "--std",
                  "0.2, 0.2, 0.2", "--remove-layers", "0,2", "--out", "x.h5", "--threads", "3"});
  EXPECT_EQ(p.config.job, "entropy");
  EXPECT_EQ(p.config.model.preset, "deit_tiny");
  EXPECT_EQ(p.config.data.calib_images, 64);
  EXPECT_EQ(p.config.data.mean, (std::vector<double>{0.5, 0.4, 0.3}));
  EXPECT_EQ(p.config.data.std.size(), 3u);
  EXPECT_EQ(p.config.model.removed_layers, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(p.config.runtime.threads, 3);
  EXPECT_FALSE(p.config.model.img_size.has_value());
}

TEST(Options, IniFileWithSectionsAndFlagsWin) {
  vitslim::test::TempDir dir;
  std::ofstream(dir.file("run.ini")) << "# comment\n[model]\nmodel = deit_small\nimg-size = 160\n"
                                     << "[data]\ncalib-images = 32\nbatch-size = 8\n";
  auto p = parse({"entropy", "--config", dir.file("run.ini"), "--batch-size", "4"});
  EXPECT_EQ(p.config.model.preset, "deit_small");
  EXPECT_EQ(*p.config.model.img_size, 160);
  EXPECT_EQ(p.config.data.calib_images, 32);
  EXPECT_EQ(p.config.data.batch_size, 4);
  // The dump is itself a valid INI file that reproduces the configuration.
  std::ofstream(dir.file("dump.ini")) << vitslim::config_to_ini(p.config);
  auto again = parse({"entropy", "--config", dir.file("dump.ini")});
  EXPECT_EQ(vitslim::config_to_ini(again.config), vitslim::config_to_ini(p.config));
}

TEST(Options, ErrorsNameTheFlag) {
  EXPECT_NE(error_of({"entropy", "--no-such-flag"}).find("no-such-flag"), std::string::npos);
  EXPECT_NE(error_of({"frobnicate"}).find("unknown job 'frobnicate'"), std::string::npos);
  EXPECT_NE(error_of({"entropy", "--calib-images", "abc"}).find("calib-images"), std::string::npos);
  EXPECT_NE(error_of({"entropy", "--calib-images", "0"}).find("--calib-images"), std::string::npos);
  EXPECT_NE(error_of({"entropy", "--mean", "0.1,x"}).find("--mean"), std::string::npos);
  EXPECT_NE(error_of({"entropy", "--mean", "nan"}).find("--mean"), std::string::npos);
  EXPECT_NE(error_of({"entropy", "--data-set", "mnist2"}).find("--data-set"), std::string::npos);
  EXPECT_NE(error_of({"entropy", "--img-size", "30", "--patch-size", "8"}).find("--img-size"), std::string::npos);
  EXPECT_NE(error_of({"entropy", "--depth", "4", "--remove-layers", "5"}).find("--remove-layers"), std::string::npos);
  EXPECT_NE(error_of({"entropy", "--remove-layers", "1,1"}).find("twice"), std::string::npos);
  EXPECT_NE(error_of({"entropy", "--config", "/nonexistent.ini"}).find("/nonexistent.ini"), std::string::npos);
  EXPECT_NE(error_of({"convert", "--out", "x.safetensors"}).find("--weights"), std::string::npos);
  EXPECT_TRUE(parse({"entropy", "--help"}).help);
}

TEST(ResolveShape, PresetFlagsAndWeights) {
  ModelRequest r;
  r.preset = "deit_base";
  auto s = resolve_shape(r, std::nullopt);
  EXPECT_EQ(s.embed_dim, 768);
  EXPECT_EQ(s.num_heads, 12);
  r.img_size = 384;
  EXPECT_EQ(resolve_shape(r, std::nullopt).num_tokens(), 24 * 24 + 1);

  ShapeFromWeights w;
  w.file = "w.pth";
  w.embed_dim = 192;
  w.depth = 12;
  w.patch_size = 16;
  w.in_chans = 3;
  w.num_classes = 1000;
  w.img_size = 224;
  ModelRequest tiny;
  tiny.preset = "deit_tiny";
  EXPECT_EQ(resolve_shape(tiny, w).num_heads, 3);
  ModelRequest wrong;
  wrong.preset = "deit_small";
  try {
    resolve_shape(wrong, w);
    FAIL() << "expected a mismatch error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--embed-dim is 384 (preset deit_small) but weights w.pth have 192"),
              std::string::npos)
        << e.what();
  }
  ModelRequest no_heads;  // the weights cannot say how many heads
  EXPECT_THROW(resolve_shape(no_heads, w), Error);
  no_heads.num_heads = 3;
  EXPECT_EQ(resolve_shape(no_heads, w).depth, 12);
  ModelRequest other_classes = tiny;
  other_classes.num_classes = 10;
  EXPECT_THROW(resolve_shape(other_classes, w), Error);
  other_classes.reset_head = true;
  EXPECT_EQ(resolve_shape(other_classes, w).num_classes, 10);
  EXPECT_THROW(vitslim::model::preset("deit_huge"), Error);
}
