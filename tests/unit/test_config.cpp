// Tests option parsing (flags, INI files, errors naming the flag) and model shape resolution.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/json_text.h"
#include "data/formats/dataset.h"
#include "data/open.h"
#include "jobs/job.h"
#include "jobs/settings.h"
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

// Issue 33 item 11: a byte-order mark is not part of the first key; `= 8` and `[entropy` are
// refused by line, not skipped.
TEST(Options, IniByteOrderMarkEmptyKeyAndOpenSection) {
  vitslim::test::TempDir dir;
  std::ofstream(dir.file("bom.ini")) << "\xEF\xBB\xBF"
                                     << "calib-images = 8\n";
  EXPECT_EQ(parse({"entropy", "--config", dir.file("bom.ini")}).config.data.calib_images, 8);
  const auto error_of = [&](const std::string& text) {
    std::ofstream(dir.file("bad.ini")) << text;
    try {
      parse({"entropy", "--config", dir.file("bad.ini")});
    } catch (const vitslim::Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error_of("calib-images = 8\n= 8\n").find("bad.ini:2: no key before '='"), std::string::npos);
  EXPECT_NE(error_of("[entropy\ncalib-images = 8\n").find("bad.ini:1: unterminated section '[entropy'"),
            std::string::npos);
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
  // Words that are no option's value are refused by name, never dropped.
  EXPECT_NE(error_of({"entropy", "--remove-layers", "1", "2", "3"}).find("unexpected argument '2'"), std::string::npos);
  EXPECT_NE(error_of({"eval", "typo"}).find("unexpected argument 'typo'"), std::string::npos);
  EXPECT_NE(error_of({"entropy", "--", "--remove-layers", "1"}).find("unexpected argument '--remove-layers'"),
            std::string::npos);
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

// The pipeline's other criteria (and the kd row) run at --compare-ratio, which must be a NOSE ratio.
TEST(Config, PipelineCompareRatioIsOneOfTheRatios) {
  vitslim::PipelineConfig p;
  p.ratios = {0.25, 0.5, 0.75};
  EXPECT_EQ(p.compared_ratio(), 0.75);  // default: the largest
  p.compare_ratio = 0.5;
  EXPECT_EQ(p.compared_ratio(), 0.5);
  EXPECT_NO_THROW(p.validate());
  p.compare_ratio = 0.4;
  try {
    p.validate();
    FAIL() << "--compare-ratio 0.4 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--compare-ratio 0.4 is not one of --ratios 0.25,0.5,0.75"), std::string::npos)
        << e.what();
  }
}

// vit_fmnist12 is vit_fmnist at the paper's depth: everything else the same.
TEST(Config, FmnistTwelveIsFmnistWithTwelveBlocks) {
  auto deep = vitslim::model::preset("vit_fmnist12");
  const auto shallow = vitslim::model::preset("vit_fmnist");
  EXPECT_EQ(deep.depth, 12);
  EXPECT_EQ(shallow.depth, 6);
  EXPECT_EQ(deep.img_size, 28);
  EXPECT_EQ(deep.embed_dim, 64);
  EXPECT_EQ(deep.num_heads, 4);
  deep.depth = shallow.depth;
  EXPECT_EQ(deep.describe(), shallow.describe());
}

namespace {

// Arguments a job needs before any other option can be valid, and those an option needs.
std::vector<std::string> required_args(const std::string& job) {
  if (job == "convert") return {"--weights", "w.pth", "--out", "o.safetensors"};
  if (job == "merge") return {"--checkpoint", "c.safetensors", "--out", "o.safetensors"};
  if (job == "bench-data") return {"--data-path", "photos"};
  if (job == "export") return {"--out", "o.onnx"};
  if (job == "predict") return {"--out", "p.csv"};
  if (job == "make-shards") return {"--data-set", "folder", "--data-path", "photos", "--out", "s-%06d.tar"};
  if (job == "index") return {"--data-set", "folder", "--data-path", "photos"};
  if (job == "plan") return {"--max-drop", "1"};
  return {};
}
std::vector<std::string> context_args(const std::string& job, const std::string& flag) {
  const bool folder_job = job == "make-shards" || job == "index";
  if ((flag == "class-index" || flag == "index") && !folder_job && job != "bench-data") return {"--data-set", "folder"};
  if (flag == "tome-start") return {"--tome-r", "1"};
  if (job == "bench-data" && flag == "index") return {"--data-set", "wds"};
  if (job == "export" && flag == "lambda") return {"--checkpoint", "c.safetensors"};
  if (job == "train" && flag == "teacher") return {"--distill", "soft"};
  if (job == "train" && flag == "distill") return {"--teacher", "start"};
  return {};
}

// Parses `job` with --flag=value (plus what it needs); nullopt when validation refuses it.
std::optional<vitslim::ParsedCommand> try_parse(const std::string& job, const std::string& flag,
                                                const std::string& value) {
  std::vector<std::string> args = {job, "--" + flag + "=" + value};
  const auto base = required_args(job);
  for (size_t i = 0; i + 1 < base.size(); i += 2) {
    if (base[i] != "--" + flag) args.insert(args.end(), {base[i], base[i + 1]});
  }
  for (const auto& a : context_args(job, flag)) args.push_back(a);
  try {
    return parse(args);
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::string option_text(const vitslim::Config& config, const std::string& flag) {
  vitslim::Config copy = config;
  vitslim::Options options;
  vitslim::find_job(config.job).declare(options, copy);
  const auto text = options.find(flag)->text();
  return text ? *text : "<unset>";
}

}  // namespace

// Every option of every job: a value other than the default survives --dump-config and reading
// the dump back, exactly (doubles at full precision, paths with spaces and non-ASCII bytes,
// switches, enums, lists).
TEST(Options, DumpConfigRoundTripsEveryOptionOfEveryJob) {
  vitslim::test::TempDir dir;
  int checked = 0;
  for (const vitslim::Job& job : vitslim::jobs()) {
    vitslim::Config defaults;
    defaults.job = job.name;
    if (job.defaults) job.defaults(defaults);
    vitslim::Options options;
    job.declare(options, defaults);
    for (const vitslim::Option& option : options.all()) {
      if (option.samples().empty()) {  // a flag the job refuses: an error naming it, never dumped
        EXPECT_NE(error_of({job.name, "--" + option.flag + "=1"}).find("--" + option.flag), std::string::npos);
        continue;
      }
      const auto default_text = option.text();
      bool round_tripped = false;
      for (const std::string& sample : option.samples()) {
        if (default_text && sample == *default_text) continue;
        const auto parsed = try_parse(job.name, option.flag, sample);
        if (!parsed) continue;
        const std::string text = option_text(parsed->config, option.flag);
        if (default_text && text == *default_text) continue;
        const std::string ini = vitslim::config_to_ini(parsed->config);
        const std::string file = dir.file(job.name + "-" + option.flag + ".ini");
        std::ofstream(file) << ini;
        const auto again = parse({job.name, "--config", file});
        EXPECT_EQ(vitslim::config_to_ini(again.config), ini) << job.name << " --" << option.flag << "=" << sample;
        EXPECT_EQ(option_text(again.config, option.flag), text) << job.name << " --" << option.flag;
        round_tripped = true;
        break;
      }
      EXPECT_TRUE(round_tripped) << job.name << " --" << option.flag << ": no non-default value round-tripped";
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
}

TEST(Options, ValuesThatWouldBreakTheIniAreRefused) {
  EXPECT_NE(error_of({"entropy", "--out", "a.h5\nseed = 7"}).find("--out: a value may not contain a line break"),
            std::string::npos);
  // A value with spaces at both ends and quotes reads back exactly from the dump.
  vitslim::test::TempDir dir;
  auto p = parse({"entropy", "--json", " \"odd\" name.json "});
  std::ofstream(dir.file("q.ini")) << vitslim::config_to_ini(p.config);
  EXPECT_EQ(parse({"entropy", "--config", dir.file("q.ini")}).config.entropy.json, " \"odd\" name.json ");
}

TEST(Options, EnumsParseOnceAndPrintBack) {
  auto p = parse({"search", "--estimator", "cls", "--out", "s.h5"});
  EXPECT_EQ(p.config.search.estimator, vitslim::Estimator::Pooled);
  EXPECT_STREQ(vitslim::to_string(p.config.search.estimator), "pooled");
  EXPECT_NE(error_of({"search", "--estimator", "mean"}).find("--estimator must be logits, pooled or cls"),
            std::string::npos);
  EXPECT_NE(error_of({"train", "--device", "tpu"}).find("--device must be cpu, cuda or auto"), std::string::npos);
}

// Values that would exhaust the machine or wrap around are refused by name, not run.
TEST(Options, CapsAndNonFilesAreRefusedByName) {
  EXPECT_NE(error_of({"entropy", "--threads", "100000"}).find("--threads must be in [0, 1024]"), std::string::npos);
  EXPECT_NE(error_of({"train", "--workers", "100000"}).find("--workers must be in [0, 1024]"), std::string::npos);
  EXPECT_NE(error_of({"entropy", "--trace-points", "1000000000"}).find("--trace-points must be in [1, 10000]"),
            std::string::npos);
  EXPECT_NE(error_of({"entropy", "--batch-size", "9223372036854775807"}).find("--batch-size must be in"),
            std::string::npos);
  EXPECT_NE(error_of({"entropy", "--mlp-ratio", "inf"}).find("--mlp-ratio: 'inf' is not a finite number"),
            std::string::npos);
  EXPECT_NE(error_of({"entropy", "--seed", "-1"}).find("--seed: '-1' is not a non-negative integer"),
            std::string::npos);
  vitslim::test::TempDir dir;
  EXPECT_NE(error_of({"entropy", "--config", dir.path()}).find("is a directory"), std::string::npos);
  ModelRequest tiny_mlp;
  tiny_mlp.preset = "vit_test";
  tiny_mlp.mlp_ratio = 0.001;
  EXPECT_THROW(resolve_shape(tiny_mlp, std::nullopt), Error);
}

// File names are bytes: JSON carries the bytes that are not UTF-8 as \udcXX (Python's
// surrogateescape) and reads them back; UTF-8 documents are exactly nlohmann's dump().
TEST(JsonText, BytesThatAreNotUtf8RoundTripLosslessly) {
  const nlohmann::json plain = {{"a", {1, 2}}, {"path", "runs/\xc3\xbc"}, {"empty", nlohmann::json::object()}};
  EXPECT_EQ(vitslim::json_text(plain), plain.dump(2));
  EXPECT_EQ(vitslim::json_text(plain, -1), plain.dump());
  // Invalid bytes, a reserved code point (U+10FF80) and a genuine escaped-looking text.
  const std::string odd = std::string("caf\xe9/\xff\xfe/") + "\xf4\x8f\xbe\x80" + "\\udce9 \"q\"\n";
  const nlohmann::json doc = {{"path", odd}, {std::string("k\xe9y"), {odd, 3.5, nullptr, true}}};
  for (int indent : {-1, 0, 2}) {
    const std::string text = vitslim::json_text(doc, indent);
    EXPECT_NE(text.find("caf\\udce9/\\udcff\\udcfe/"), std::string::npos) << text;
    const auto back = vitslim::parse_json_text(text, "test");
    EXPECT_EQ(back, doc) << text;
  }
  EXPECT_THROW(vitslim::parse_json_text("{\"a\": ", "test.json"), vitslim::Error);
}

// Photos default to the normalisation the preset's pretrained weights expect; given values and
// the small datasets' own statistics win.
TEST(Options, PresetNormalisationForPhotos) {
  auto norm_of = [](std::vector<std::string> args) {
    return vitslim::data::requested_normalisation(parse(std::move(args)).config.data);
  };
  const auto clip = norm_of({"export", "--model", "vit_base_clip", "--data-set", "imagenet", "--out", "m.onnx"});
  EXPECT_EQ(clip.mean, (std::vector<double>{0.48145466, 0.4578275, 0.40821073}));
  EXPECT_EQ(clip.std, (std::vector<double>{0.26862954, 0.26130258, 0.27577711}));
  const auto augreg = norm_of({"export", "--model", "vit_base_augreg", "--data-set", "folder", "--out", "m.onnx"});
  EXPECT_EQ(augreg.mean, (std::vector<double>{0.5, 0.5, 0.5}));
  const auto given = norm_of({"export", "--model", "vit_base_clip", "--data-set", "imagenet", "--mean", "0.1,0.2,0.3",
                              "--std", "0.4,0.5,0.6", "--out", "m.onnx"});
  EXPECT_EQ(given.mean, (std::vector<double>{0.1, 0.2, 0.3}));
  const auto small = norm_of({"export", "--model", "vit_base_clip", "--data-set", "fashion-mnist", "--out", "m.onnx"});
  EXPECT_EQ(small.mean, vitslim::data::kind_info(vitslim::data::DataKind::FashionMnist).normalisation.mean);
  const auto own = norm_of({"export", "--model", "vit_test", "--data-set", "imagenet", "--out", "m.onnx"});
  EXPECT_EQ(own.mean, vitslim::kImagenetNormalisation.mean);
}
