// Token merging (ToMe): logits and gradients against the Python reference that patches timm
// (scripts/tome_reference.py) in every attention mode, r = 0 bit-identical to no merging, token
// counts and MACs against the schedule, settings and their errors, metadata round trip; tome-sweep's
// choice and its speed table (speeds injected, never timed).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "evaluation/tome_sweep.h"
#include "model/checkpoint.h"
#include "model/flops.h"
#include "test_util.h"

namespace m = vitslim::model;
using m::AttentionMode;

namespace {

constexpr double kTolerance = 1e-4;
constexpr int64_t kGoldenHeads = 2;

m::VisionTransformer golden_model() {
  vitslim::ModelRequest r;
  r.num_heads = kGoldenHeads;
  r.weights = vitslim::test::test_data("tome_golden_weights.safetensors");
  return m::build_model(r, 0);
}

// "modes=full,diluting@0.25,...;r=...;prop_attn=1;mlp_blocks=0;train=1" (the fixture's metadata).
struct Case {
  std::vector<std::pair<AttentionMode, double>> modes;
  m::TokenMerging merging;
  bool train = false;
};

Case parse_case(const std::string& text) {
  Case c;
  std::string tome;
  std::stringstream parts(text);
  std::string part;
  while (std::getline(parts, part, ';')) {
    if (part.rfind("modes=", 0) == 0) {
      std::stringstream modes(part.substr(6));
      std::string mode;
      while (std::getline(modes, mode, ',')) {
        const auto at = mode.find('@');
        c.modes.emplace_back(m::parse_attention_mode(mode.substr(0, at), "case"),
                             at == std::string::npos ? 1.0 : std::stod(mode.substr(at + 1)));
      }
    } else if (part.rfind("train=", 0) == 0) {
      c.train = part == "train=1";
    } else {
      tome += (tome.empty() ? "" : ";") + part;
    }
  }
  c.merging = m::tome_from_text(tome, "case");
  return c;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(Tome, LogitsAndGradientsMatchTheReference) {
  const auto golden = m::read_safetensors(vitslim::test::test_data("tome_golden.safetensors"));
  const auto input = *golden.find("input");
  int cases = 0;
  for (const auto& [key, text] : golden.metadata) {
    if (key.rfind("case.", 0) != 0) continue;
    const std::string name = key.substr(5);
    const Case c = parse_case(text);
    auto model = golden_model();
    for (size_t b = 0; b < c.modes.size(); ++b)
      model->set_mode(static_cast<int64_t>(b), c.modes[b].first, c.modes[b].second);
    model->set_token_merging(c.merging);
    const auto want = *golden.find("logits." + name);
    model->train(c.train);
    auto logits = model->forward(input);  // the last block computes the class token only
    EXPECT_LE(max_diff(logits, want), kTolerance) << name;
    if (c.train) {
      (logits * *golden.find("loss_weights")).sum().backward();
      int grads = 0;
      for (const auto& p : model->named_parameters()) {
        const auto* g = golden.find("grad." + name + "." + p.key());
        if (!g) continue;
        ASSERT_TRUE(p.value().grad().defined()) << name << " " << p.key();
        EXPECT_LE(max_diff(p.value().grad(), *g), kTolerance) << name << " " << p.key();
        ++grads;
      }
      EXPECT_GT(grads, 20) << name;
    } else {
      torch::NoGradGuard no_grad;
      // All rows through the last block too (the entropy taps' path): same logits.
      EXPECT_LE(max_diff(model->logits(model->forward_tokens(input)), want), kTolerance) << name;
    }
    ++cases;
  }
  EXPECT_GE(cases, 9);
}

TEST(Tome, RZeroIsBitIdenticalToNoMerging) {
  const auto golden = m::read_safetensors(vitslim::test::test_data("tome_golden.safetensors"));
  const auto input = *golden.find("input");
  auto plain = golden_model();
  auto zero = golden_model();
  zero->set_token_merging({{0, 0, 0, 0}, true, true});
  EXPECT_FALSE(zero->token_merging().active());
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(plain->forward(input), zero->forward(input)));
  EXPECT_LE(max_diff(plain->forward(input), *golden.find("logits.plain")), kTolerance);
}

TEST(Tome, TokenCountsAndMacsFollowTheSchedule) {
  auto model = golden_model();
  model->set_mode(1, AttentionMode::Removed);
  m::TokenMerging tm{{3, 5, 8, 2}, true, false};
  model->set_token_merging(tm);
  model->set_taps(true);
  const auto golden = m::read_safetensors(vitslim::test::test_data("tome_golden.safetensors"));
  torch::NoGradGuard no_grad;
  model->forward(*golden.find("input"));
  const auto& s = model->shape();
  const auto tokens = m::token_schedule(s.num_tokens(), s.num_prefix_tokens(), {true, false, true, true}, tm);
  ASSERT_EQ(tokens.size(), 4u);
  EXPECT_EQ(tokens[1].in, tokens[1].out);  // no attention, no --tome-mlp-blocks: no merge
  int64_t macs = 0;                        // counted from the tensors the forward really made
  const int64_t C = s.embed_dim, H = C * 4, D = C / s.num_heads;
  for (int64_t b = 0; b < 4; ++b) {
    auto& blk = model->block(b);
    const int64_t out = blk->mlp_tap().size(1);
    EXPECT_EQ(out, tokens[static_cast<size_t>(b)].out) << b;
    macs += 5 * out * C + 2 * out * C * H;
    if (blk->attn_tap().defined()) {
      const int64_t in = blk->attn_tap().size(1);
      EXPECT_EQ(in, tokens[static_cast<size_t>(b)].in) << b;
      macs += 5 * in * C + 4 * in * C * C + 2 * in * in * C + ((in + 1) / 2) * (in / 2) * D;
    }
  }
  const int64_t patches = s.grid() * s.grid(), patch_in = s.in_chans * s.patch_size * s.patch_size;
  macs += patches * patch_in * C + 5 * tokens.back().out * C + C * s.num_classes;
  EXPECT_EQ(m::analytic_cost(s, {1}, tm).macs, macs);
  EXPECT_LT(m::analytic_cost(s, {1}, tm).macs, m::analytic_cost(s, {1}).macs);
  EXPECT_EQ(m::analytic_cost(s, {1}, tm).params, m::analytic_cost(s, {1}).params);
}

TEST(Tome, ResolvesFlagsIntoOneRPerBlock) {
  m::TomeRequest q;
  q.r = {8};
  EXPECT_EQ(m::resolve_tome(q, 4).r, (std::vector<int64_t>{8, 8, 8, 8}));
  q.start = 2;
  EXPECT_EQ(m::resolve_tome(q, 4).r, (std::vector<int64_t>{0, 0, 8, 8}));
  q.start = 0;
  q.schedule = m::TomeSchedule::Decreasing;  // ToMe's: 1.5 r down to 0.5 r
  EXPECT_EQ(m::resolve_tome(q, 5).r, (std::vector<int64_t>{12, 10, 8, 6, 4}));
  q.schedule = m::TomeSchedule::Constant;
  q.r = {1, 2, 3};
  q.start = 1;
  EXPECT_EQ(m::resolve_tome(q, 4).r, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_FALSE(m::resolve_tome(m::TomeRequest{}, 4).active());
}

TEST(Tome, BadSettingsNameTheFlag) {
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const vitslim::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  m::TomeRequest q;
  q.r = {2};
  q.start = 4;
  EXPECT_NE(message([&] { m::resolve_tome(q, 4); }).find("--tome-start"), std::string::npos);
  q.start = 0;
  q.r = {1, 2};
  EXPECT_NE(message([&] { m::resolve_tome(q, 4); }).find("--tome-r"), std::string::npos);
  auto model = golden_model();  // 65 tokens: 32 pairs at most in block 0, then fewer
  EXPECT_NE(message([&] {
              model->set_token_merging({{33, 0, 0, 0}, true, false});
            }).find("--tome-r"),
            std::string::npos);
  EXPECT_NE(message([&] {
              model->set_token_merging({{16, 16, 16, 16}, true, false});
            }).find("block 3"),
            std::string::npos);
  EXPECT_FALSE(model->token_merging().active());  // a refused setting leaves the model as it was
  EXPECT_NE(message([] { m::tome_from_text("r=1,x", "file"); }).find("file"), std::string::npos);
  EXPECT_NE(message([] { m::tome_from_text("prop_attn=1", "file"); }).find("without r"), std::string::npos);
}

TEST(Tome, ExportedModelsCarryTheirMerging) {
  vitslim::test::TempDir dir;
  auto model = golden_model();
  model->set_mode(0, AttentionMode::Removed);
  const m::TokenMerging tm{{0, 4, 4, 4}, false, true};
  model->set_token_merging(tm);
  m::export_safetensors(model, dir.file("tome.safetensors"));
  vitslim::ModelRequest r;
  r.num_heads = kGoldenHeads;
  r.weights = dir.file("tome.safetensors");
  auto loaded = m::build_model(r, 0);
  EXPECT_TRUE(loaded->token_merging() == tm);
  EXPECT_EQ(loaded->removed_blocks(), std::vector<int64_t>{0});
  r.tome.r = {0};  // --tome-r 0 turns it off
  EXPECT_FALSE(m::build_model(r, 0)->token_merging().active());
  r.tome.r = {2};
  EXPECT_EQ(m::build_model(r, 0)->token_merging().r, (std::vector<int64_t>{2, 2, 2, 2}));
  // A recorded setting this model cannot run: the error names the file (issue 33 item 11).
  m::export_safetensors(model, dir.file("bad.safetensors"), {{m::kMetaTokenMerging, "r=0,40,0,0;prop_attn=1"}});
  r.weights = dir.file("bad.safetensors");
  r.tome = {};
  try {
    m::build_model(r, 0);
    FAIL() << "a recorded merging the model cannot run was accepted";
  } catch (const vitslim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("weights " + r.weights + ": metadata"), std::string::npos) << e.what();
  }
}

// tome-sweep's choice (evaluation/tome_sweep.h) with the speeds injected as a table: the choice is
// checked exactly, whatever this machine's timings would have been.
namespace {
vitslim::evaluation::TomePoint point(int64_t r, double top1, double images_per_s) {
  vitslim::evaluation::TomePoint p;
  p.r = r;
  p.top1 = top1;
  p.images_per_s = images_per_s;
  return p;
}
}  // namespace

TEST(TomeSweep, ChoosesTheFastestPointWithinTheBudget) {
  vitslim::evaluation::TomeSweepResult result;
  result.points = {point(0, 90.0, 100), point(2, 89.9, 120), point(4, 89.5, 150), point(8, 88.0, 300)};
  vitslim::evaluation::choose(result, 0.3);
  EXPECT_EQ(result.chosen, 1);  // r = 4 is faster but 0.5 points down; r = 8 is 2 down
  vitslim::evaluation::choose(result, 0.5);
  EXPECT_EQ(result.chosen, 2);
  vitslim::evaluation::choose(result, 100);
  EXPECT_EQ(result.chosen, 3);
  // The Pareto front: nothing beats r = 0 in top-1, nor r = 8 in speed; each between trades one off.
  for (const auto& p : result.points) EXPECT_TRUE(p.pareto) << p.r;
}

TEST(TomeSweep, KeepsNoMergingWhenNothingIsFasterWithinTheBudget) {
  vitslim::evaluation::TomeSweepResult result;
  // r = 2 is slower than r = 0 (merging overhead on a small model), r = 6 costs too much accuracy.
  result.points = {point(0, 90.0, 100), point(2, 90.0, 95), point(6, 85.0, 200)};
  vitslim::evaluation::choose(result, 0.3);
  EXPECT_EQ(result.chosen, 0);
  EXPECT_TRUE(result.points[0].pareto);
  EXPECT_FALSE(result.points[1].pareto);  // r = 0 beats it in speed at the same top-1
  EXPECT_TRUE(result.points[2].pareto);
  // A tie in speed is no gain: the earlier point stays.
  result.points = {point(0, 90.0, 100), point(2, 90.0, 100)};
  vitslim::evaluation::choose(result, 0.3);
  EXPECT_EQ(result.chosen, 0);
}

// Issue 33 item 5: a point whose schedule only reaches blocks without attention merges nothing; a
// noisy timing of it ("1.08x faster") must neither be chosen nor dominate the front.
TEST(TomeSweep, APointThatMergesNothingIsNeverChosen) {
  vitslim::evaluation::TomeSweepResult result;
  result.points = {point(0, 90.0, 100), point(2, 90.0, 108), point(4, 89.9, 104)};
  result.points[1].merges = false;
  vitslim::evaluation::choose(result, 0.3);
  EXPECT_EQ(result.chosen, 2);
  EXPECT_FALSE(result.points[1].pareto);
  EXPECT_TRUE(result.points[2].pareto);  // the 108 of a point that merges nothing does not dominate it
  result.points = {point(0, 90.0, 100), point(2, 90.0, 108)};
  result.points[1].merges = false;
  vitslim::evaluation::choose(result, 0.3);
  EXPECT_EQ(result.chosen, 0);
}

TEST(TomeSweep, SpeedTableReadsWhatCsvWritesAndRefusesBadTables) {
  vitslim::test::TempDir dir;
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.file(name)) << text;
    return dir.file(name);
  };
  const auto table = vitslim::evaluation::read_speed_table(
      write("ok.csv", "r,start,top1,images_per_s,macs,pareto,chosen\n0,0,90,100.5,10,1,0\n2,1,89,250,8,1,1\n"));
  ASSERT_EQ(table.size(), 2u);
  EXPECT_DOUBLE_EQ(table.at({0, 0}), 100.5);
  EXPECT_DOUBLE_EQ(table.at({2, 1}), 250);
  const auto refused = [&](const std::string& text, const std::string& want) {
    try {
      vitslim::evaluation::read_speed_table(write("bad.csv", text));
      ADD_FAILURE() << "accepted: " << text;
    } catch (const vitslim::Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("bad.csv"), std::string::npos) << e.what();
    }
  };
  refused("r,start\n0,0\n", "no 'images_per_s' column");
  refused("r,start,images_per_s\n0,0,100\n0,0,120\n", ":3: r 0 from block 0 a second time");
  refused("r,start,images_per_s\n0,0,nan\n", "images_per_s");
  refused("r,start,images_per_s\n0,0,-5\n", "must be positive");
  refused("r,start,images_per_s\n0,0\n", ":2: 2 fields, the header has 3");
  refused("r,start,images_per_s\n", "no rows");
  refused("", "empty");
  EXPECT_THROW(vitslim::evaluation::read_speed_table(dir.path()), vitslim::Error);  // a folder
}
