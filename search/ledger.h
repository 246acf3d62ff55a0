// Rank 0's record of a NOSE search: every scored (candidate set, shard) item and every finished
// candidate, appended to the HDF5 result file as it happens (docs/search.md), so that a killed
// search resumes from the items an earlier run of the same search scored. A fingerprint of what
// the scores depend on (weights, shape, calibration data, estimator) guards against mixing runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/trace.h"
#include "model/vit.h"
#include "search/coordinator.h"
#include "search/nose.h"

namespace vitslim::search {

inline constexpr const char* kSchema = "vitslim-search/1";

// What the scores depend on: weights, shape, calibration data and estimator (not the ratios or
// the search method, so a finished file serves another ratio or beam width too).
std::string fingerprint(model::VisionTransformer& model, const SearchInputs& c);

struct ItemKey {
  uint64_t mask;
  int64_t shard;
  bool operator<(const ItemKey& o) const { return mask != o.mask ? mask < o.mask : shard < o.shard; }
};

class Ledger {
 public:
  using Clock = std::chrono::steady_clock;
  Ledger(const SearchInputs& c, const std::string& print, int64_t depth, int64_t channels, int64_t shards,
         Clock::time_point start)
      : c_(c), fingerprint_(print), depth_(depth), channels_(channels), shards_(shards), start_(start) {}

  // Loads the items of an earlier run of the same search, then opens the new output.
  void open();
  const std::vector<double>* find(const ItemKey& key) const;
  void add(const ItemKey& key, std::vector<double> stats);
  void add_candidate(int64_t step, const Scored& s);
  io::TraceFile& trace() { return *trace_; }
  int64_t resumed() const { return resumed_; }

 private:
  std::string resume_source() const;
  void create_series();
  void load(const std::string& path);
  void append_item(const ItemKey& key, const std::vector<double>& stats);
  double shard_size(int64_t shard) const;

  const SearchInputs& c_;
  std::string fingerprint_;
  int64_t depth_, channels_, shards_;
  Clock::time_point start_;
  std::map<ItemKey, std::vector<double>> items_;
  std::unique_ptr<io::TraceFile> trace_;
  int64_t resumed_ = 0;
};

}  // namespace vitslim::search
