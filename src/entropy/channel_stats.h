// Streaming per-channel statistics in float64 for the Gaussian entropy estimate of method.md
// section 2. add() takes a batch of rows [N, C] (two-pass moments of the batch in float64, then
// Chan et al.'s parallel update), merge() combines shards, so any split of the data gives the
// one-pass result up to float64 rounding. Entropy: H = sum_c ln(sigma_c), population sigma.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace vitslim::entropy {

class ChannelStats {
 public:
  ChannelStats() = default;
  explicit ChannelStats(int64_t channels);

  void add(const at::Tensor& rows);  // [N, C], any floating dtype/device
  void merge(const ChannelStats& other);

  int64_t channels() const { return static_cast<int64_t>(mean_.size()); }
  int64_t count() const { return count_; }
  const std::vector<double>& mean() const { return mean_; }
  std::vector<double> variance() const;  // population variance M2 / n
  // sum_c ln(sigma_c) (the reference code's quantity; -inf if a channel is constant).
  double entropy() const;
  // Full differential entropy of the Gaussian: sum_c 0.5 ln(2 pi e sigma_c^2).
  double gaussian_entropy() const;
  int64_t zero_variance_channels() const;

  // Flat [count, mean[C], m2[C]] for MPI transport, and back.
  std::vector<double> serialize() const;
  static ChannelStats deserialize(const double* data, int64_t channels);
  static int64_t serialized_size(int64_t channels) { return 1 + 2 * channels; }

 private:
  int64_t count_ = 0;
  std::vector<double> mean_, m2_;
};

}  // namespace vitslim::entropy
