// Implements the predict job (see predict.h).
#include "deploy/predict.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "core/atomic_file.h"
#include "core/cuda_device.h"
#include "core/error.h"
#include "core/log.h"
#include "data/formats/dataset.h"
#include "data/formats/folder.h"
#include "data/loading/batch.h"
#include "data/open.h"
#include "dist/gpu_select.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "model/presets.h"
#include "model/weights/weights.h"

namespace vitslim::deploy {
namespace {

// A gathered row per batch slot: [status, dataset index, label, logits (K), features (C when asked)].
constexpr double kAbsent = 0, kRead = 1, kUnreadable = 2;  // the row's status
constexpr int64_t kRowHeader = 3;

struct Layout {
  int64_t classes = 0, features = 0;
  int64_t width() const { return kRowHeader + classes + features; }
};

// What rank 0 collects, in input order (readable images only).
struct Collected {
  std::vector<int64_t> index, label;
  std::vector<float> logits, features;  // [N, K], [N, C] row-major
  int64_t unreadable = 0;
};

// This rank's rows of one round: `chunk` (possibly empty) padded to `slots` rows.
std::vector<double> predict_chunk(model::VisionTransformer& vit, const data::Dataset& dataset,
                                  const std::vector<int64_t>& chunk, const Normalisation& norm, const Layout& layout,
                                  int64_t slots, bool bf16) {
  std::vector<double> rows(static_cast<size_t>(slots * layout.width()), 0.0);
  if (chunk.empty()) return rows;
  std::vector<uint8_t> readable;
  auto batch = data::load_batch_in_order(dataset, chunk, norm.mean, norm.std, vit->shape(), readable);
  torch::Tensor pooled, logits;  // [B, C], [B, K]
  {
    c10::InferenceMode inference;
    model::Bf16Autocast autocast(vit->device().type(), bf16);
    auto out = vit->forward_outputs(cuda::to_device(batch.images, vit->device()));
    pooled = out.pooled;
    logits = out.logits;
  }
  const auto host_logits = logits.to(torch::kCPU, torch::kDouble).contiguous();
  const auto host_pooled = pooled.to(torch::kCPU, torch::kDouble).contiguous();
  for (size_t b = 0; b < chunk.size(); ++b) {
    double* row = rows.data() + static_cast<int64_t>(b) * layout.width();
    row[0] = readable[b] ? kRead : kUnreadable;
    row[1] = static_cast<double>(chunk[b]);
    row[2] = static_cast<double>(batch.labels[static_cast<int64_t>(b)].item<int64_t>());
    std::copy_n(host_logits[static_cast<int64_t>(b)].data_ptr<double>(), layout.classes, row + kRowHeader);
    if (layout.features > 0) {
      std::copy_n(host_pooled[static_cast<int64_t>(b)].data_ptr<double>(), layout.features,
                  row + kRowHeader + layout.classes);
    }
  }
  return rows;
}

void collect(const std::vector<double>& rows, const Layout& layout, Collected& out) {
  for (size_t at = 0; at < rows.size(); at += static_cast<size_t>(layout.width())) {
    const double* row = rows.data() + at;
    if (row[0] == kAbsent) continue;
    if (row[0] == kUnreadable) {
      ++out.unreadable;
      continue;
    }
    out.index.push_back(static_cast<int64_t>(row[1]));
    out.label.push_back(static_cast<int64_t>(row[2]));
    out.logits.insert(out.logits.end(), row + kRowHeader, row + kRowHeader + layout.classes);
    out.features.insert(out.features.end(), row + kRowHeader + layout.classes, row + layout.width());
  }
}

// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char ch : text) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return quoted + "\"";
}

std::string predictions_csv(const data::Dataset& dataset, const Collected& c, int64_t classes, int64_t topk,
                            const std::vector<std::string>& names) {
  const int64_t n = static_cast<int64_t>(c.index.size());
  const int64_t k = std::min(topk, classes);
  std::string text = "file,label";
  for (int64_t j = 1; j <= k; ++j) text += cat(",class_", j, ",prob_", j);
  text += "\n";
  if (n == 0) return text;
  auto logits = torch::from_blob(const_cast<float*>(c.logits.data()), {n, classes}, torch::kFloat);  // [N, K]
  auto [probs, top] = torch::softmax(logits, 1).topk(k, 1);                                          // [N, k]
  const auto p = probs.accessor<float, 2>();
  const auto t = top.accessor<int64_t, 2>();
  auto class_text = [&](int64_t cls) {  // a dataset label may lie beyond the model's classes
    const bool named = cls >= 0 && cls < static_cast<int64_t>(names.size());
    return named ? csv_field(names[static_cast<size_t>(cls)]) : std::to_string(cls);
  };
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = c.label[static_cast<size_t>(i)];
    text += csv_field(dataset.item_name(c.index[static_cast<size_t>(i)]));
    text += ',';
    if (label >= 0) text += class_text(label);
    for (int64_t j = 0; j < k; ++j) {
      char prob[32];
      std::snprintf(prob, sizeof prob, ",%.6f", p[i][j]);
      text += ',';
      text += class_text(t[i][j]);
      text += prob;
    }
    text += "\n";
  }
  return text;
}

void write_rows(const std::string& path, const std::string& key, const std::vector<float>& values, int64_t width,
                const Collected& c, OutputSet& outputs) {
  const int64_t n = static_cast<int64_t>(c.index.size());
  auto rows = torch::from_blob(const_cast<float*>(values.data()), {n, width}, torch::kFloat).clone();  // [N, width]
  auto index = torch::tensor(c.index, torch::kLong);                                                   // [N]
  model::write_safetensors(
      path, {{key, rows}, {"index", index}},
      {{"format", "pt"}, {"vitslim.rows", "input order; index: the image's position in the input"}}, &outputs);
}

void check_outputs(const PredictConfig& p) {
  check_new_output(p.out, "--out", p.force);
  if (!p.save_logits.empty()) check_new_output(p.save_logits, "--save-logits", p.force);
  if (!p.save_features.empty()) check_new_output(p.save_features, "--save-features", p.force);
}

std::unique_ptr<data::Dataset> open_input(const DataConfig& data, const PredictConfig& p, const ModelShape& shape,
                                          uint64_t seed, Normalisation& norm, const dist::MpiSession& mpi) {
  if (p.images.empty() && p.image_list.empty()) {
    auto dataset = data::open_dataset(data, shape, seed, dist::root_share(mpi));
    norm = data::normalisation(data, *dataset);
    return dataset;
  }
  auto dataset = data::open_image_files(data, p.images, p.image_list);
  DataConfig photos = data;  // files are normalised like an image folder unless --mean/--std say otherwise
  photos.dataset = data::DataKind::Folder;
  norm = data::normalisation(photos, *dataset);
  if (norm.mean.size() != 1 && static_cast<int64_t>(norm.mean.size()) != shape.in_chans) {
    throw Error(cat("predict: the model takes ", shape.in_chans, " channel(s) and --mean/--std give ", norm.mean.size(),
                    " values (image files default to ImageNet's); pass the model's --mean and --std"));
  }
  return dataset;
}

// --class-index, else the names the weights carry (a transformers id2label), else none.
std::vector<std::string> class_names(const DataConfig& data, const model::VisionTransformer& vit) {
  const int64_t classes = vit->shape().num_classes;
  if (data.class_index.empty()) return vit->class_names();
  auto names = data::read_class_index(data.class_index);
  if (static_cast<int64_t>(names.size()) != classes) {
    throw Error(cat("--class-index ", data.class_index, " names ", names.size(), " classes; the model has ", classes));
  }
  return names;
}

}  // namespace

void run_predict(const PredictInputs& in, const dist::MpiSession& mpi) {
  ModelRequest request = in.model;
  const DataConfig& data = in.data;
  const PredictConfig& p = in.predict;
  const ComputeConfig& compute = in.compute;
  const RuntimeConfig& runtime = in.runtime;
  const auto started = std::chrono::steady_clock::now();
  check_outputs(p);
  model::use_default_preset(request);
  const c10::Device device = dist::open_device(compute, mpi);
  model::VisionTransformer vit = model::build_model(request, runtime.seed);
  vit->to(device);
  vit->eval();
  const ModelShape& shape = vit->shape();
  if (shape.num_classes == 0) {
    throw Error(
        cat("predict: the model has no head (a backbone) and so no classes to rank; fine-tune one with "
            "--num-classes K --reset-head, or compute features with entropy/search"));
  }
  const auto names = class_names(data, vit);
  Normalisation norm;
  auto dataset = open_input(data, p, shape, runtime.seed, norm, mpi);
  dist::agree_across_ranks(mpi, "data", dataset->size_summary());
  if (dataset->num_classes() > 0 && dataset->num_classes() != shape.num_classes) {
    log_warn(cat(dataset->name(), " has ", dataset->num_classes(), " classes, the model ", shape.num_classes));
  }
  const int64_t total = p.limit > 0 ? std::min(p.limit, dataset->size()) : dataset->size();
  const Layout layout{shape.num_classes, p.save_features.empty() ? 0 : shape.pooled_dim()};
  log_info(cat("predict: ", shape.describe(), ", removed attention ", vit->removed_blocks().size(), " blocks; ",
               dataset->name(), ", ", total, " images over ", mpi.world_size(), " rank(s)", p.bf16 ? ", bf16" : ""));
  model::warn_if_bf16_emulated(vit->device().type(), p.bf16);

  const int64_t B = data.batch_size, W = mpi.world_size(), per_round = B * W;
  Collected collected;
  model::Bf16Autocast pass(vit->device().type(), p.bf16);  // the weights cast to bf16 once (model/autocast.h)
  for (int64_t start = 0; start < total; start += per_round) {
    std::vector<int64_t> chunk;
    for (int64_t i = start + mpi.rank() * B; i < std::min(total, start + (mpi.rank() + 1) * B); ++i) chunk.push_back(i);
    const auto rows = mpi.gather(predict_chunk(vit, *dataset, chunk, norm, layout, B, p.bf16));
    if (mpi.rank() == 0) collect(rows, layout, collected);
  }
  dataset->bad_images().summarise(dataset->name(), "they have no row in the outputs");
  if (mpi.rank() != 0) return;
  if (collected.index.empty())
    throw Error(cat("predict: none of the ", total, " images of ", dataset->name(), " could be read"));

  OutputSet outputs;  // the CSV, logits and features appear together, or none of them
  outputs.write(p.out, predictions_csv(*dataset, collected, shape.num_classes, p.topk, names));
  if (!p.save_logits.empty()) write_rows(p.save_logits, "logits", collected.logits, layout.classes, collected, outputs);
  if (!p.save_features.empty())
    write_rows(p.save_features, "features", collected.features, layout.features, collected, outputs);
  outputs.commit();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("predict: %zu images -> %s%s (%.1f s)\n", collected.index.size(), p.out.c_str(),
              collected.unreadable ? cat(", ", collected.unreadable, " unreadable skipped").c_str() : "", seconds);
}

}  // namespace vitslim::deploy
