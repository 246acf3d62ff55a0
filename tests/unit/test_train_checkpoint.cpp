// Tests training checkpoint files (train/train_checkpoint.h): round trip, listing, pruning, refusals.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "core/error.h"
#include "test_util.h"
#include "train/train_checkpoint.h"

namespace t = vitslim::train;

TEST(TrainCheckpoint, RoundTripListAndPrune) {
  vitslim::test::TempDir dir;
  t::TrainState s;
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
  std::filesystem::create_directories(t::checkpoint_dir(dir.path()));
  auto w = torch::randn({3, 4});
  for (int64_t step : {5, 15, 25}) {
    t::write_checkpoint(t::checkpoint_path(dir.path(), step), s, {{"model/w", w}, {"optim/exp_avg/w", w * 2}});
  }
  EXPECT_EQ(t::list_checkpoints(dir.path()), (std::vector<int64_t>{5, 15, 25}));
  t::prune_checkpoints(dir.path(), 2);
  EXPECT_EQ(t::list_checkpoints(dir.path()), (std::vector<int64_t>{15, 25}));
  auto ck = t::read_checkpoint(t::checkpoint_path(dir.path(), 25));
  EXPECT_EQ(ck.state.global_step, 25);
  EXPECT_EQ(ck.state.modes, s.modes);
  EXPECT_EQ(ck.state.lambdas, s.lambdas);
  EXPECT_EQ(ck.state.config, s.config);
  EXPECT_TRUE(torch::equal(ck.tensors.at("model/w"), w));
  // A file that is not a checkpoint is refused by name.
  EXPECT_THROW(t::read_checkpoint(vitslim::test::fixture("golden_vit_test.safetensors")), vitslim::Error);
}
