// The seed mixers every random stream of vitslim starts from, the portable seeded shuffle, and the
// per-sample random stream of the augmentations: a counter-based generator seeded from
// (seed, epoch, sample position), so every draw is the same on every platform, whatever thread
// or worker count produces the sample. Uniform, integer and normal draws are written out here
// (not <random>'s distributions, whose algorithms differ between standard libraries).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace vitslim {

// Seeded randomness that is the same on every platform and standard library: SplitMix64's step.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
// Mixes several values into one well-spread 64-bit seed (the seed of a stream named by seed, salt,
// epoch, rank, position...).
inline uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  return splitmix64(splitmix64(splitmix64(splitmix64(a) ^ b) ^ c) ^ d);
}

// Uniform integer in [0, bound) from the SplitMix64 stream `state` (advanced), without modulo bias:
// draws above the largest multiple of bound are rejected.
uint64_t uniform_below(uint64_t& state, uint64_t bound);
// The first `count` entries of a Fisher-Yates shuffle of [0, n): a uniform random ordered subset
// (count == n: a full permutation), the same on every platform (rng.cpp).
std::vector<int64_t> shuffled_prefix(int64_t n, int64_t count, uint64_t seed);

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return state_ = splitmix64(state_); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [lo, hi] (both included, like Python's random.randint).
  int64_t randint(int64_t lo, int64_t hi) {
    const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    return lo + static_cast<int64_t>(next() % span);
  }
  bool bernoulli(double p) { return uniform() < p; }
  // Standard normal (Box-Muller; the second value is not kept, so draws stay one per call).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

 private:
  uint64_t state_;
};

}  // namespace vitslim
