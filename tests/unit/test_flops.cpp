// Tests the analytic cost model against the figures fvcore gives (docs/method.md sections 1 and 6)
// and against the parameters the model really has.
#include <gtest/gtest.h>

#include "model/flops.h"
#include "model/presets.h"
#include "model/vit.h"

namespace m = vitslim::model;

TEST(Flops, DeitFiguresAsFvcoreCountsThem) {
  const auto base = m::analytic_cost(m::preset("deit_base"), {});
  EXPECT_EQ(base.params, 86567656);
  EXPECT_EQ(base.macs, 17582740224);  // 17.58 G
  const auto pruned = m::analytic_cost(m::preset("deit_base"), {0, 1, 3, 4, 6});
  EXPECT_EQ(pruned.params, 74748136);   // 74.75 M
  EXPECT_EQ(pruned.macs, 14956998144);  // 14.96 G
  EXPECT_NEAR(m::analytic_cost(m::preset("deit_tiny"), {}).macs / 1e9, 1.26, 0.005);
  EXPECT_NEAR(m::analytic_cost(m::preset("deit_small"), {}).macs / 1e9, 4.61, 0.005);
}

TEST(Flops, ParameterCountEqualsTheModel) {
  for (const std::vector<int64_t>& removed : {std::vector<int64_t>{}, std::vector<int64_t>{1, 3}}) {
    m::VisionTransformer model(m::preset("vit_fmnist"));
    for (int64_t b : removed) model->set_mode(b, m::AttentionMode::Removed);
    int64_t params = 0;
    for (const auto& p : model->parameters()) params += p.numel();
    EXPECT_EQ(m::analytic_cost(model->shape(), removed).params, params);
  }
}
