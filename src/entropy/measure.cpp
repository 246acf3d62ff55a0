// Implements the entropy measurement (see measure.h). Every input is checked before any output
// file is created; the trace is written as <out>.partial and renamed when complete.
#include "entropy/measure.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/cuda_device.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/version.h"
#include "data/loading/batch.h"
#include "data/open.h"
#include "dist/gpu_select.h"
#include "dist/mpi_session.h"
#include "entropy/branch_stats.h"
#include "io/trace.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "model/presets.h"

namespace vitslim::entropy {
namespace {

constexpr const char* kEstimator =
    "sum over channels of ln(sigma_c), sigma_c the population standard deviation over all rows "
    "(rows = images x tokens for branches, images for the head), natural log; *_gaussian adds "
    "C/2 ln(2 pi e)";

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

std::vector<double> sigmas(const ChannelStats& s) {
  auto v = s.variance();
  for (double& x : v) x = std::sqrt(x);
  return v;
}

class EntropyRun {
 public:
  EntropyRun(ModelRequest request, const DataConfig& data, const EntropyConfig& out, const ComputeConfig& compute,
             const RuntimeConfig& runtime, const std::string& config_ini, const dist::MpiSession& mpi);
  void run();

 private:
  void open_trace();
  void measure();
  void add_batches(int64_t from, int64_t until);
  void merge_point();
  void write_final();
  nlohmann::json block_json(int64_t b);
  void write_summary(double seconds);
  void print_table(double seconds);

  const DataConfig& data_;
  const EntropyConfig& out_;
  std::string config_ini_;
  const dist::MpiSession& mpi_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  ModelRequest request_;
  model::VisionTransformer model_{nullptr};
  ModelShape shape_;
  std::unique_ptr<data::Dataset> dataset_;
  std::vector<int64_t> indices_;
  Normalisation norm_;
  std::unique_ptr<io::TraceFile> trace_;
  OutputSet outputs_;  // the trace and the JSON summary, committed together
  BranchStats local_, merged_;
  uint64_t seed_ = 0;
  int64_t begin_ = 0, end_ = 0, last_rows_ = -1;
};

// Inputs first: weights, data, options. Nothing is written before all of them are good.
EntropyRun::EntropyRun(ModelRequest request, const DataConfig& data, const EntropyConfig& out,
                       const ComputeConfig& compute, const RuntimeConfig& runtime, const std::string& config_ini,
                       const dist::MpiSession& mpi)
    : data_(data),
      out_(out),
      config_ini_(config_ini),
      mpi_(mpi),
      request_(std::move(request)),
      local_(0, 0, 0),
      merged_(0, 0, 0) {
  seed_ = runtime.seed;
  model::use_default_preset(request_);
  const c10::Device device = dist::open_device(compute, mpi);
  model_ = model::build_model(request_, runtime.seed);
  model_->to(device);
  model_->eval();
  shape_ = model_->shape();
  dataset_ = data::open_dataset(data, shape_, runtime.seed, dist::root_share(mpi_));
  dist::agree_across_ranks(mpi_, "data", dataset_->size_summary());
  indices_ = data::calibration_indices(dataset_->size(), data.calib_images, runtime.seed);
  norm_ = data::normalisation(data, *dataset_);
  if (!out.json.empty()) check_writable_output(out.json, "--json");
  log_info(cat("model: ", shape_.describe(), "; data: ", dataset_->name(), " (", dataset_->size(), " images, ",
               dataset_->channels(), "x", dataset_->height(), "x", dataset_->width(),
               "); calibration images: ", indices_.size(), "; ranks: ", mpi.world_size()));
  local_ = BranchStats(shape_.depth, shape_.embed_dim, shape_.output_dim());
  merged_ = local_;
  // This rank's contiguous shard of the calibration list.
  const auto n = static_cast<int64_t>(indices_.size());
  begin_ = n * mpi.rank() / mpi.world_size();
  end_ = n * (mpi.rank() + 1) / mpi.world_size();
}

void EntropyRun::open_trace() {
  const int64_t depth = shape_.depth, dim = shape_.embed_dim, classes = shape_.output_dim();
  trace_ =
      std::make_unique<io::TraceFile>(out_.out, std::map<std::string, std::string>{{"program", "vitslim"},
                                                                                   {"version", kVersion},
                                                                                   {"schema", "vitslim-trace/1"},
                                                                                   {"job", "entropy"},
                                                                                   {"created", utc_timestamp()},
                                                                                   {"config", config_ini_},
                                                                                   {"model_shape", shape_.describe()}});
  trace_->create_series("/entropy/images", 0, "calibration images merged into each row");
  trace_->create_series("/entropy/attn", depth, "running entropy of each block's attention branch [row, block]");
  trace_->create_series("/entropy/mlp", depth, "running entropy of each block's MLP branch [row, block]");
  trace_->create_series("/entropy/head", 0, "running entropy of the head logits");
  trace_->create_array("/entropy/attn_sigma", {depth, dim}, "final per-channel sigma, attention branch");
  trace_->create_array("/entropy/mlp_sigma", {depth, dim}, "final per-channel sigma, MLP branch");
  trace_->create_array("/entropy/head_sigma", {classes},
                       "final per-class sigma of the logits (the pooled feature of a model without a head)");
  trace_->create_array("/entropy/attn_gaussian", {depth}, "final Gaussian differential entropy, attention");
  trace_->create_array("/entropy/mlp_gaussian", {depth}, "final Gaussian differential entropy, MLP");
  trace_->create_array("/entropy/head_gaussian", {1}, "final Gaussian differential entropy, head");
  trace_->create_array("/entropy/complete", {1}, "1 once every calibration image is merged");
  trace_->set_attribute("/entropy", "estimator", kEstimator);
  std::string modes;
  for (int64_t b = 0; b < depth; ++b) modes += cat(b ? "," : "", model::to_string(model_->block(b)->mode()));
  trace_->set_attribute("/entropy", "block_modes", modes);
  trace_->set_attribute("/entropy", "calib_images", std::to_string(indices_.size()));
  trace_->set_attribute("/entropy", "world_size", std::to_string(mpi_.world_size()));
  trace_->start_swmr();
  trace_->flush();
}

// Batches [from, until) of this rank's shard through the model, taps into the local statistics.
void EntropyRun::add_batches(int64_t from, int64_t until) {
  const int64_t bs = data_.batch_size;
  for (int64_t done = from; done < until; ++done) {
    const int64_t lo = begin_ + done * bs, hi = std::min(end_, lo + bs);
    std::vector<int64_t> chunk(indices_.begin() + lo, indices_.begin() + hi);
    auto batch = data::load_batch(*dataset_, chunk, norm_.mean, norm_.std, shape_);
    torch::Tensor logits;  // [B, K]
    {
      model::Bf16Autocast autocast(model_->device().type(), out_.bf16);
      logits = model_->forward(cuda::to_device(batch.images, model_->device())).to(torch::kFloat);
    }
    if (!torch::isfinite(logits).all().item<bool>()) {
      throw Error(cat("non-finite logits for calibration images ", lo, "..", hi - 1, " (check the weights)"));
    }
    local_.add_taps(model_);
    local_.head.add(logits);
  }
}

// Merges all shards at rank 0 in rank order (the merged copy restarts from zero each time) and
// appends the running estimates to the trace.
void EntropyRun::merge_point() {
  auto all = mpi_.gather(local_.serialize());
  if (mpi_.rank() != 0) return;
  merged_ = BranchStats(shape_.depth, shape_.embed_dim, shape_.output_dim());
  const size_t per_rank = all.size() / static_cast<size_t>(mpi_.world_size());
  for (int r = 0; r < mpi_.world_size(); ++r) merged_.merge_serialized(all.data() + per_rank * r);
  const int64_t rows = merged_.head.count();
  if (rows == last_rows_) return;
  last_rows_ = rows;
  std::vector<double> attn_row, mlp_row;
  for (int64_t b = 0; b < shape_.depth; ++b) {
    attn_row.push_back(merged_.attn[b].entropy());
    mlp_row.push_back(merged_.mlp[b].entropy());
  }
  trace_->append("/entropy/images", {static_cast<double>(rows)});
  trace_->append("/entropy/attn", attn_row);
  trace_->append("/entropy/mlp", mlp_row);
  trace_->append("/entropy/head", {merged_.head.entropy()});
  trace_->flush();
  log_info(cat("entropy: ", rows, "/", indices_.size(), " images"));
}

void EntropyRun::measure() {
  const int64_t bs = data_.batch_size;
  const int64_t batches = (end_ - begin_ + bs - 1) / bs;
  const int64_t points = out_.trace_points;
  c10::InferenceMode inference;
  model::warn_if_bf16_emulated(model_->device().type(), out_.bf16);
  model_->set_taps(true);
  int64_t done = 0;
  for (int64_t p = 0; p < points; ++p) {
    const int64_t until = (batches * (p + 1) + points - 1) / points;  // batches done after trace point p
    add_batches(done, until);
    done = until;
    merge_point();
  }
  model_->set_taps(false);
}

void EntropyRun::write_final() {
  std::vector<double> attn_sigma, mlp_sigma, attn_g, mlp_g;
  for (int64_t b = 0; b < shape_.depth; ++b) {
    auto as = sigmas(merged_.attn[b]), ms = sigmas(merged_.mlp[b]);
    attn_sigma.insert(attn_sigma.end(), as.begin(), as.end());
    mlp_sigma.insert(mlp_sigma.end(), ms.begin(), ms.end());
    attn_g.push_back(merged_.attn[b].gaussian_entropy());
    mlp_g.push_back(merged_.mlp[b].gaussian_entropy());
  }
  trace_->write("/entropy/attn_sigma", attn_sigma);
  trace_->write("/entropy/mlp_sigma", mlp_sigma);
  trace_->write("/entropy/head_sigma", sigmas(merged_.head));
  trace_->write("/entropy/attn_gaussian", attn_g);
  trace_->write("/entropy/mlp_gaussian", mlp_g);
  trace_->write("/entropy/head_gaussian", {merged_.head.gaussian_entropy()});
  trace_->write("/entropy/complete", {1.0});
  outputs_.adopt(trace_->close());
}

nlohmann::json EntropyRun::block_json(int64_t b) {
  const ChannelStats &attn = merged_.attn[b], &mlp = merged_.mlp[b];
  return {{"block", b},
          {"mode", model::to_string(model_->block(b)->mode())},
          {"attn_entropy", finite_or_null(attn.entropy())},
          {"mlp_entropy", finite_or_null(mlp.entropy())},
          {"attn_gaussian", finite_or_null(attn.gaussian_entropy())},
          {"mlp_gaussian", finite_or_null(mlp.gaussian_entropy())},
          {"attn_zero_variance_channels", attn.zero_variance_channels()},
          {"mlp_zero_variance_channels", mlp.zero_variance_channels()}};
}

void EntropyRun::write_summary(double seconds) {
  if (out_.json.empty()) return;
  nlohmann::json blocks = nlohmann::json::array();
  for (int64_t b = 0; b < shape_.depth; ++b) blocks.push_back(block_json(b));
  const ModelShape& s = shape_;
  const nlohmann::json summary = {
      {"program", "vitslim"},
      {"version", kVersion},
      {"job", "entropy"},
      {"estimator", kEstimator},
      {"model",
       {{"img_size", s.img_size},
        {"patch_size", s.patch_size},
        {"in_chans", s.in_chans},
        {"embed_dim", s.embed_dim},
        {"depth", s.depth},
        {"num_heads", s.num_heads},
        {"mlp_ratio", s.mlp_ratio},
        {"num_classes", s.num_classes},
        {"weights", request_.weights},
        {"removed_layers", model_->removed_blocks()}}},
      {"data",
       {{"data_set", data::kind_name(data_.dataset)},
        {"split", data_.split},
        {"mean", norm_.mean},
        {"std", norm_.std}}},
      {"calib_images", indices_.size()},
      {"world_size", mpi_.world_size()},
      {"seed", seed_},
      {"blocks", blocks},
      {"head",
       {{"entropy", finite_or_null(merged_.head.entropy())},
        {"gaussian", finite_or_null(merged_.head.gaussian_entropy())}}},
      {"trace", out_.out},
      {"seconds", seconds},
  };
  outputs_.write(out_.json, json_text(summary) + "\n");
}

void EntropyRun::print_table(double seconds) {
  std::printf("block  mode      H(attn)      H(mlp)     [sum_c ln sigma_c over %lld images]\n",
              static_cast<long long>(indices_.size()));
  for (int64_t b = 0; b < shape_.depth; ++b) {
    std::printf("%5lld  %-8s %10.3f  %10.3f\n", static_cast<long long>(b), model::to_string(model_->block(b)->mode()),
                merged_.attn[b].entropy(), merged_.mlp[b].entropy());
  }
  std::printf("head logits: %.4f\ntrace: %s%s%s (%.1f s)\n", merged_.head.entropy(), out_.out.c_str(),
              out_.json.empty() ? "" : ", summary: ", out_.json.c_str(), seconds);
}

void EntropyRun::run() {
  if (mpi_.rank() == 0) open_trace();
  measure();
  if (mpi_.rank() != 0) return;
  write_final();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  write_summary(seconds);
  outputs_.commit();
  print_table(seconds);
}

}  // namespace

void run_entropy(const EntropyInputs& in, const dist::MpiSession& mpi) {
  EntropyRun run(in.model, in.data, in.entropy, in.compute, in.runtime, in.config_ini, mpi);
  run.run();
}

}  // namespace vitslim::entropy
