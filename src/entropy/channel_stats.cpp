// Implements the mergeable per-channel statistics (see channel_stats.h).
#include "entropy/channel_stats.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "core/error.h"

namespace vitslim::entropy {

ChannelStats::ChannelStats(int64_t channels)
    : mean_(static_cast<size_t>(channels), 0.0), m2_(static_cast<size_t>(channels), 0.0) {}

void ChannelStats::add(const at::Tensor& rows) {
  if (rows.dim() != 2 || rows.size(1) != channels()) {
    throw Error(cat("ChannelStats::add: got shape ", rows.sizes(), ", expected [N, ", channels(), "]"));
  }
  const int64_t n = rows.size(0);
  if (n == 0) return;
  // Reduced in float64 where the rows are (the GPU), then only [2, C] comes to the host.
  auto x = rows.detach().to(at::kDouble);                                         // [N, C]
  auto batch_mean = x.mean(0);                                                    // [C]
  auto batch_m2 = (x - batch_mean).square().sum(0);                               // [C]
  const auto both = at::stack({batch_mean, batch_m2}).to(at::kCPU).contiguous();  // [2, C]
  ChannelStats batch(channels());
  batch.count_ = n;
  const double* bm = both.data_ptr<double>();
  const double* b2 = bm + channels();
  std::copy(bm, bm + channels(), batch.mean_.begin());
  std::copy(b2, b2 + channels(), batch.m2_.begin());
  merge(batch);
}

void ChannelStats::merge(const ChannelStats& other) {
  if (other.channels() != channels()) {
    throw Error(cat("ChannelStats::merge: ", other.channels(), " channels vs ", channels()));
  }
  if (other.count_ == 0) return;
  if (count_ == 0) {
    *this = other;
    return;
  }
  const double na = static_cast<double>(count_), nb = static_cast<double>(other.count_);
  const double n = na + nb;
  for (size_t c = 0; c < mean_.size(); ++c) {
    const double delta = other.mean_[c] - mean_[c];
    mean_[c] += delta * nb / n;
    m2_[c] += other.m2_[c] + delta * delta * na * nb / n;
  }
  count_ += other.count_;
}

std::vector<double> ChannelStats::variance() const {
  std::vector<double> var(mean_.size(), std::numeric_limits<double>::quiet_NaN());
  if (count_ == 0) return var;
  for (size_t c = 0; c < m2_.size(); ++c) var[c] = m2_[c] / static_cast<double>(count_);
  return var;
}

double ChannelStats::entropy() const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  double h = 0.0;
  for (double v : variance()) h += 0.5 * std::log(v);  // ln(sigma) = 0.5 ln(sigma^2)
  return h;
}

double ChannelStats::gaussian_entropy() const {
  const double per_channel = 0.5 * std::log(2.0 * M_PI * M_E);
  return entropy() + per_channel * static_cast<double>(channels());
}

int64_t ChannelStats::zero_variance_channels() const {
  int64_t zeros = 0;
  for (double v : m2_) zeros += v <= 0.0;
  return count_ ? zeros : 0;
}

std::vector<double> ChannelStats::serialize() const {
  std::vector<double> out;
  out.reserve(static_cast<size_t>(serialized_size(channels())));
  out.push_back(static_cast<double>(count_));
  out.insert(out.end(), mean_.begin(), mean_.end());
  out.insert(out.end(), m2_.begin(), m2_.end());
  return out;
}

ChannelStats ChannelStats::deserialize(const double* data, int64_t channels) {
  ChannelStats s(channels);
  s.count_ = static_cast<int64_t>(data[0]);
  std::copy(data + 1, data + 1 + channels, s.mean_.begin());
  std::copy(data + 1 + channels, data + 1 + 2 * channels, s.m2_.begin());
  return s;
}

}  // namespace vitslim::entropy
