// Implements the entropy job (see entropy_job.h). Every input is checked before any output file
// is created; the trace is written as <out>.partial and renamed when complete.
#include "entropy/entropy_job.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "entropy/channel_stats.h"
#include "io/trace.h"
#include "model/checkpoint.h"

namespace vitslim::entropy {
namespace {

constexpr const char* kEstimator =
    "sum over channels of ln(sigma_c), sigma_c the population standard deviation over all rows "
    "(rows = images x tokens for branches, images for the head), natural log; *_gaussian adds "
    "C/2 ln(2 pi e)";

// Statistics of one shard: attention and MLP branch per block, then the head.
struct BranchStats {
  std::vector<ChannelStats> attn, mlp;
  ChannelStats head;

  BranchStats(int64_t depth, int64_t dim, int64_t classes)
      : attn(static_cast<size_t>(depth), ChannelStats(dim)),
        mlp(static_cast<size_t>(depth), ChannelStats(dim)),
        head(classes) {}

  std::vector<double> serialize() const {
    std::vector<double> out;
    for (const auto* group : {&attn, &mlp}) {
      for (const auto& s : *group) {
        auto v = s.serialize();
        out.insert(out.end(), v.begin(), v.end());
      }
    }
    auto h = head.serialize();
    out.insert(out.end(), h.begin(), h.end());
    return out;
  }

  void merge_serialized(const double* data) {
    for (auto* group : {&attn, &mlp}) {
      for (auto& s : *group) {
        s.merge(ChannelStats::deserialize(data, s.channels()));
        data += ChannelStats::serialized_size(s.channels());
      }
    }
    head.merge(ChannelStats::deserialize(data, head.channels()));
  }
};

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

std::vector<double> sigmas(const ChannelStats& s) {
  auto v = s.variance();
  for (double& x : v) x = std::sqrt(x);
  return v;
}

}  // namespace

BranchEntropies branch_entropies(model::VisionTransformer& model, const data::Dataset& dataset,
                                 const std::vector<int64_t>& indices, const std::vector<double>& mean,
                                 const std::vector<double>& std, int64_t batch_size) {
  const ModelShape& shape = model->shape();
  BranchStats stats(shape.depth, shape.embed_dim, shape.num_classes);
  model->eval();
  model->set_taps(true);
  {
    c10::InferenceMode inference;
    for (size_t lo = 0; lo < indices.size(); lo += static_cast<size_t>(batch_size)) {
      const size_t hi = std::min(indices.size(), lo + static_cast<size_t>(batch_size));
      std::vector<int64_t> chunk(indices.begin() + static_cast<std::ptrdiff_t>(lo),
                                 indices.begin() + static_cast<std::ptrdiff_t>(hi));
      auto batch = data::load_batch(dataset, chunk, mean, std, shape);
      model->forward(batch.images);
      for (int64_t b = 0; b < shape.depth; ++b) {
        const auto& blk = model->block(b);
        if (blk->attn_tap().defined())
          stats.attn[b].add(blk->attn_tap().reshape({-1, shape.embed_dim}));  // [B*(N+1), C]
        stats.mlp[b].add(blk->mlp_tap().reshape({-1, shape.embed_dim}));
      }
    }
  }
  model->set_taps(false);
  BranchEntropies out;
  for (int64_t b = 0; b < shape.depth; ++b) {
    out.attn.push_back(stats.attn[b].count() ? stats.attn[b].entropy() : std::nan(""));
    out.mlp.push_back(stats.mlp[b].entropy());
  }
  return out;
}

void run_entropy(ModelRequest model_request, const DataConfig& data, const EntropyConfig& out,
                 const RuntimeConfig& runtime, const std::string& config_ini, const dist::MpiSession& mpi) {
  const auto started = std::chrono::steady_clock::now();
  model::use_default_preset(model_request);
  // Inputs first: weights, data, options. Nothing is written before all of them are good.
  model::VisionTransformer model = model::build_model(model_request, runtime.seed);
  model->eval();
  const ModelShape& shape = model->shape();
  auto dataset = data::open_dataset(data, shape, runtime.seed);
  const auto indices = data::calibration_indices(dataset->size(), data.calib_images, runtime.seed);
  const auto [mean, stdev] = data::normalisation(data, *dataset);
  if (!out.json.empty()) check_writable_output(out.json, "--json");
  log_info(cat("model: ", shape.describe(), "; data: ", dataset->name(), " (", dataset->size(), " images, ",
               dataset->channels(), "x", dataset->height(), "x", dataset->width(),
               "); calibration images: ", indices.size(), "; ranks: ", mpi.world_size()));

  const int64_t depth = shape.depth, dim = shape.embed_dim, classes = shape.num_classes;
  std::unique_ptr<io::TraceFile> trace;
  if (mpi.rank() == 0) {
    trace =
        std::make_unique<io::TraceFile>(out.out, std::map<std::string, std::string>{{"program", "vitslim"},
                                                                                    {"version", kVersion},
                                                                                    {"schema", "vitslim-trace/1"},
                                                                                    {"job", "entropy"},
                                                                                    {"created", utc_timestamp()},
                                                                                    {"config", config_ini},
                                                                                    {"model_shape", shape.describe()}});
    trace->create_series("/entropy/images", 0, "calibration images merged into each row");
    trace->create_series("/entropy/attn", depth, "running entropy of each block's attention branch [row, block]");
    trace->create_series("/entropy/mlp", depth, "running entropy of each block's MLP branch [row, block]");
    trace->create_series("/entropy/head", 0, "running entropy of the head logits");
    trace->create_array("/entropy/attn_sigma", {depth, dim}, "final per-channel sigma, attention branch");
    trace->create_array("/entropy/mlp_sigma", {depth, dim}, "final per-channel sigma, MLP branch");
    trace->create_array("/entropy/head_sigma", {classes}, "final per-class sigma of the logits");
    trace->create_array("/entropy/attn_gaussian", {depth}, "final Gaussian differential entropy, attention");
    trace->create_array("/entropy/mlp_gaussian", {depth}, "final Gaussian differential entropy, MLP");
    trace->create_array("/entropy/head_gaussian", {1}, "final Gaussian differential entropy, head");
    trace->create_array("/entropy/complete", {1}, "1 once every calibration image is merged");
    trace->set_attribute("/entropy", "estimator", kEstimator);
    std::string modes;
    for (int64_t b = 0; b < depth; ++b) modes += cat(b ? "," : "", model::to_string(model->block(b)->mode()));
    trace->set_attribute("/entropy", "block_modes", modes);
    trace->set_attribute("/entropy", "calib_images", std::to_string(indices.size()));
    trace->set_attribute("/entropy", "world_size", std::to_string(mpi.world_size()));
    trace->start_swmr();
    trace->flush();
  }

  // This rank's contiguous shard of the calibration list.
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t begin = n * mpi.rank() / mpi.world_size(), end = n * (mpi.rank() + 1) / mpi.world_size();
  const int64_t bs = data.batch_size;
  const int64_t batches = (end - begin + bs - 1) / bs;
  const int64_t points = out.trace_points;

  BranchStats local(depth, dim, classes);
  BranchStats merged(depth, dim, classes);
  c10::InferenceMode inference;
  model->set_taps(true);
  int64_t done = 0;
  int64_t last_rows = -1;
  for (int64_t p = 0; p < points; ++p) {
    const int64_t until = (batches * (p + 1) + points - 1) / points;  // batches done after trace point p
    for (; done < until; ++done) {
      const int64_t lo = begin + done * bs, hi = std::min(end, lo + bs);
      std::vector<int64_t> chunk(indices.begin() + lo, indices.begin() + hi);
      auto batch = data::load_batch(*dataset, chunk, mean, stdev, shape);
      auto logits = model->forward(batch.images);  // [B, K]
      if (!torch::isfinite(logits).all().item<bool>()) {
        throw Error(cat("non-finite logits for calibration images ", lo, "..", hi - 1, " (check the weights)"));
      }
      for (int64_t b = 0; b < depth; ++b) {
        const auto& blk = model->block(b);
        if (blk->attn_tap().defined()) local.attn[b].add(blk->attn_tap().reshape({-1, dim}));  // [B*(N+1), C]
        local.mlp[b].add(blk->mlp_tap().reshape({-1, dim}));
      }
      local.head.add(logits);
    }
    // Merge all shards at rank 0 in rank order; the merged copy restarts from zero each time.
    auto all = mpi.gather(local.serialize());
    if (mpi.rank() != 0) continue;
    merged = BranchStats(depth, dim, classes);
    const size_t per_rank = all.size() / static_cast<size_t>(mpi.world_size());
    for (int r = 0; r < mpi.world_size(); ++r) merged.merge_serialized(all.data() + per_rank * r);
    const int64_t rows = merged.head.count();
    if (rows == last_rows) continue;
    last_rows = rows;
    std::vector<double> attn_row, mlp_row;
    for (int64_t b = 0; b < depth; ++b) {
      attn_row.push_back(merged.attn[b].entropy());
      mlp_row.push_back(merged.mlp[b].entropy());
    }
    trace->append("/entropy/images", {static_cast<double>(rows)});
    trace->append("/entropy/attn", attn_row);
    trace->append("/entropy/mlp", mlp_row);
    trace->append("/entropy/head", {merged.head.entropy()});
    trace->flush();
    log_info(cat("entropy: ", rows, "/", n, " images"));
  }
  model->set_taps(false);
  if (mpi.rank() != 0) return;

  std::vector<double> attn_sigma, mlp_sigma, attn_g, mlp_g;
  nlohmann::json blocks = nlohmann::json::array();
  for (int64_t b = 0; b < depth; ++b) {
    auto as = sigmas(merged.attn[b]), ms = sigmas(merged.mlp[b]);
    attn_sigma.insert(attn_sigma.end(), as.begin(), as.end());
    mlp_sigma.insert(mlp_sigma.end(), ms.begin(), ms.end());
    attn_g.push_back(merged.attn[b].gaussian_entropy());
    mlp_g.push_back(merged.mlp[b].gaussian_entropy());
    blocks.push_back({{"block", b},
                      {"mode", model::to_string(model->block(b)->mode())},
                      {"attn_entropy", finite_or_null(merged.attn[b].entropy())},
                      {"mlp_entropy", finite_or_null(merged.mlp[b].entropy())},
                      {"attn_gaussian", finite_or_null(attn_g.back())},
                      {"mlp_gaussian", finite_or_null(mlp_g.back())},
                      {"attn_zero_variance_channels", merged.attn[b].zero_variance_channels()},
                      {"mlp_zero_variance_channels", merged.mlp[b].zero_variance_channels()}});
  }
  trace->write("/entropy/attn_sigma", attn_sigma);
  trace->write("/entropy/mlp_sigma", mlp_sigma);
  trace->write("/entropy/head_sigma", sigmas(merged.head));
  trace->write("/entropy/attn_gaussian", attn_g);
  trace->write("/entropy/mlp_gaussian", mlp_g);
  trace->write("/entropy/head_gaussian", {merged.head.gaussian_entropy()});
  trace->write("/entropy/complete", {1.0});
  trace->commit();

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  nlohmann::json summary = {
      {"program", "vitslim"},
      {"version", kVersion},
      {"job", "entropy"},
      {"estimator", kEstimator},
      {"model",
       {{"img_size", shape.img_size},
        {"patch_size", shape.patch_size},
        {"in_chans", shape.in_chans},
        {"embed_dim", dim},
        {"depth", depth},
        {"num_heads", shape.num_heads},
        {"mlp_ratio", shape.mlp_ratio},
        {"num_classes", classes},
        {"weights", model_request.weights},
        {"removed_layers", model->removed_blocks()}}},
      {"data", {{"data_set", data.dataset}, {"split", data.split}, {"mean", mean}, {"std", stdev}}},
      {"calib_images", n},
      {"world_size", mpi.world_size()},
      {"seed", runtime.seed},
      {"blocks", blocks},
      {"head",
       {{"entropy", finite_or_null(merged.head.entropy())},
        {"gaussian", finite_or_null(merged.head.gaussian_entropy())}}},
      {"trace", out.out},
      {"seconds", seconds},
  };
  if (!out.json.empty()) write_file_atomic(out.json, summary.dump(2) + "\n");

  std::printf("block  mode      H(attn)      H(mlp)     [sum_c ln sigma_c over %lld images]\n",
              static_cast<long long>(n));
  for (int64_t b = 0; b < depth; ++b) {
    std::printf("%5lld  %-8s %10.3f  %10.3f\n", static_cast<long long>(b), model::to_string(model->block(b)->mode()),
                merged.attn[b].entropy(), merged.mlp[b].entropy());
  }
  std::printf("head logits: %.4f\ntrace: %s%s%s (%.1f s)\n", merged.head.entropy(), out.out.c_str(),
              out.json.empty() ? "" : ", summary: ", out.json.c_str(), seconds);
}

}  // namespace vitslim::entropy
