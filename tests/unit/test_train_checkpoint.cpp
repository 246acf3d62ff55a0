// Tests training checkpoint files (model/weights/train_checkpoint.h): round trip, listing, pruning, refusals,
// and what resume sets aside.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/weights/train_checkpoint.h"
#include "test_util.h"
#include "train/resume.h"
#include "train/train_summary.h"

namespace t = vitslim::train;
namespace m = vitslim::model;

TEST(TrainCheckpoint, RoundTripListAndPrune) {
  vitslim::test::TempDir dir;
  m::TrainState s;
  s.epoch = 2;
  s.step_in_epoch = 5;
  s.global_step = 25;
  s.modes = {"full", "diluting", "removed"};
  s.lambdas = {1.0, 0.25, 0.0};
  s.best_top1 = 71.5;
  s.best_epoch = 1;
  s.world_size = 4;
  s.seed = 42;
  s.config = "[train]\nepochs = 3\n";
  s.teacher = "soft distillation (alpha 0.5, tau 1) from teacher 0123456789abcdef";
  std::filesystem::create_directories(m::checkpoint_dir(dir.path()));
  auto w = torch::randn({3, 4});
  for (int64_t step : {5, 15, 25}) {
    m::write_checkpoint(m::checkpoint_path(dir.path(), step), s, {{"model/w", w}, {"optim/exp_avg/w", w * 2}});
  }
  EXPECT_EQ(m::list_checkpoints(dir.path()), (std::vector<int64_t>{5, 15, 25}));
  m::prune_checkpoints(dir.path(), 2);
  EXPECT_EQ(m::list_checkpoints(dir.path()), (std::vector<int64_t>{15, 25}));
  auto ck = m::read_checkpoint(m::checkpoint_path(dir.path(), 25));
  EXPECT_EQ(ck.state.global_step, 25);
  EXPECT_EQ(ck.state.modes, s.modes);
  EXPECT_EQ(ck.state.lambdas, s.lambdas);
  EXPECT_EQ(ck.state.config, s.config);
  EXPECT_EQ(ck.state.teacher, s.teacher);
  EXPECT_TRUE(torch::equal(ck.tensors.at("model/w"), w));
  // A file that is not a checkpoint is refused by name.
  EXPECT_THROW(m::read_checkpoint(vitslim::test::fixture("golden_vit_test.safetensors")), vitslim::Error);
}

// A stray file with a step number beyond int64 is ignored; a newest checkpoint that LibTorch
// itself would refuse (a shape whose strides overflow) is set aside, naming the file, and the one
// before it resumes.
TEST(TrainCheckpoint, ResumeSetsAsideWhatCannotBeReadAndIgnoresAbsurdNames) {
  vitslim::test::TempDir dir;
  m::TrainState s;
  s.modes = {"full"};
  s.lambdas = {1.0};
  s.global_step = 5;
  std::filesystem::create_directories(m::checkpoint_dir(dir.path()));
  m::write_checkpoint(m::checkpoint_path(dir.path(), 5), s, {{"model/w", torch::ones({2})}});
  std::ofstream(m::checkpoint_dir(dir.path()) + "/step-99999999999999999999.safetensors") << "x";
  const std::string header =
      R"({"model/w":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904,4],"data_offsets":[0,0]}})";
  const uint64_t size = header.size();
  std::ofstream bad(m::checkpoint_path(dir.path(), 25), std::ios::binary);
  bad.write(reinterpret_cast<const char*>(&size), sizeof(size));
  bad << header;
  bad.close();
  EXPECT_EQ(m::list_checkpoints(dir.path()), (std::vector<int64_t>{5, 25}));
  const auto ck = t::newest_checkpoint(dir.path(), true);
  ASSERT_TRUE(ck.has_value());
  EXPECT_EQ(ck->state.global_step, 5);
  EXPECT_TRUE(std::filesystem::exists(m::checkpoint_path(dir.path(), 25) + ".unreadable"));
  try {
    m::read_checkpoint(m::checkpoint_path(dir.path(), 25) + ".unreadable");
    ADD_FAILURE() << "read";
  } catch (const vitslim::Error& e) {
    EXPECT_NE(std::string(e.what()).find(m::checkpoint_path(dir.path(), 25) + ".unreadable"), std::string::npos)
        << e.what();
  }
}

// train.json written and read back (the pipeline reads it for a stage an earlier run finished),
// the per-phase times included; a file that is not one names itself.
TEST(TrainCheckpoint, TrainSummaryRoundTrips) {
  vitslim::test::TempDir dir;
  t::TrainSummary s;
  s.finished = true;
  s.epoch = 2;
  s.global_step = 1874;
  s.epochs = 2;
  s.steps_per_epoch = 937;
  s.global_batch = 64;
  s.dilute_layers = {2, 4, 5};
  s.removed_layers = {2, 4, 5};
  s.modes = {"full", "full", "removed", "full", "removed", "removed"};
  s.best_top1 = 89.88;
  s.step_seconds = 91.25;
  s.phases = {{"forward", 20.5}, {"backward", 41.0}, {"steps", 1873}};
  t::write_train_summary(dir.file("train.json"), s);
  const t::TrainSummary back = t::read_train_summary(dir.file("train.json"));
  EXPECT_TRUE(back.finished);
  EXPECT_EQ(back.global_step, 1874);
  EXPECT_EQ(back.removed_layers, s.removed_layers);
  EXPECT_EQ(back.modes, s.modes);
  EXPECT_DOUBLE_EQ(back.step_seconds, 91.25);
  EXPECT_DOUBLE_EQ(back.best_top1, 89.88);
  EXPECT_EQ(back.phases, s.phases);
  std::ofstream(dir.file("other.json")) << "{\"job\": \"eval\"}\n";
  try {
    t::read_train_summary(dir.file("other.json"));
    FAIL() << "an eval result read as train.json";
  } catch (const vitslim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("other.json: not a train.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(t::read_train_summary(dir.file("missing.json")), vitslim::Error);
}
