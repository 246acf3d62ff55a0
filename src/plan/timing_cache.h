// The plan's timing cache, <out-dir>/timings.json: per measurement context (runtime, device,
// threads, batch, model shape) and candidate, the median milliseconds per batch and the unpruned
// model's in the same timing group. Rewritten atomically after every group, so an interrupted plan
// keeps what it measured and a plan with another target on the same out-dir times nothing again.
// Speed does not depend on the weights' values: the weights are not part of the key. No torch.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "plan/front.h"

namespace vitslim::plan {

class TimingCache {
 public:
  // Reads `path` when it exists (Error naming it when it is not a timing cache).
  explicit TimingCache(std::string path);
  // "libtorch|cpu|2 threads|batch 32|<shape>": what a timing depends on besides the candidate.
  static std::string context(const std::string& runtime, const std::string& device, int threads, int64_t batch,
                             const std::string& shape);
  std::optional<Timing> find(const std::string& context, const std::string& candidate) const;
  void put(const std::string& context, const std::string& candidate, const Timing& timing);
  void save() const;  // atomically
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::map<std::string, std::map<std::string, Timing>> entries_;
};

}  // namespace vitslim::plan
