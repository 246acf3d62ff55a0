// Implements the plan settings' parsing and checks (see settings.h).
#include "plan/settings.h"

#include <algorithm>

#include "core/error.h"
#include "search/settings.h"

namespace vitslim {

const PlanRuntimeInfo& plan_runtime_info(PlanRuntime runtime) {
  for (const PlanRuntimeInfo& info : plan_runtimes()) {
    if (info.runtime == runtime) return info;
  }
  throw Error("internal: a plan runtime without a table row");
}

std::vector<PlanRuntime> PlanConfig::runtime_list() const {
  std::vector<PlanRuntime> out;
  size_t start = 0;
  while (start <= runtimes.size()) {
    const size_t comma = std::min(runtimes.find(',', start), runtimes.size());
    const std::string name = runtimes.substr(start, comma - start);
    const auto it = std::find_if(plan_runtimes().begin(), plan_runtimes().end(),
                                 [&](const PlanRuntimeInfo& i) { return name == i.name; });
    if (it == plan_runtimes().end()) {
      std::string names;
      for (const auto& i : plan_runtimes()) names += cat(names.empty() ? "" : ", ", i.name);
      throw Error(cat("--runtime: unknown runtime '", name, "' (one of ", names, ")"));
    }
    if (std::find(out.begin(), out.end(), it->runtime) != out.end()) throw Error(cat("--runtime: ", name, " twice"));
    out.push_back(it->runtime);
    start = comma + 1;
  }
  return out;
}

void PlanConfig::validate() const {
  if (target_speedup && target_latency_ms) {
    throw Error("--target-speedup and --target-latency-ms: give one speed target, not both");
  }
  if (!target_speedup && !target_latency_ms && !max_drop) {
    throw Error("plan: no target; give --target-speedup, --target-latency-ms or --max-drop");
  }
  if (max_drop && probe_steps == 0) throw Error("--max-drop needs probes: --probe-steps must be > 0");
  if (out_dir.empty()) throw Error("--out-dir is required");
  runtime_list();
  parse_criteria_list(criteria, "--criteria");
  std::vector<int64_t> sorted = tome_r;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) throw Error("--tome-r: a value twice");
}

}  // namespace vitslim
