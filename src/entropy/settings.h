// Settings of the entropy measurement (outputs and trace points), declared once with their options.
#pragma once

#include <cstdint>
#include <string>

#include "core/options.h"
#include "core/runtime.h"

namespace vitslim {

inline constexpr double kMaxTracePoints = 10000;

struct EntropyConfig {
  std::string out = "entropy.h5";  // HDF5 trace
  std::string json;                // optional JSON summary
  int64_t trace_points = 10;       // running estimates written while the job runs
  bool bf16 = false;               // bf16 autocast of the forward passes (statistics stay float64)

  void declare(Options& o) {
    o.group("entropy", "Entropy output");
    o.add_path("out", out, "HDF5 trace", PathRole::OutputFile);
    o.add_path("json", json, "JSON summary", PathRole::OutputFile);
    o.add("trace-points", trace_points, "running estimates appended to the trace while the job runs",
          closed(1, kMaxTracePoints));
    o.add_switch("bf16", bf16, kBf16Help);
  }
  void validate() const {
    if (out.empty()) throw Error("--out: an output trace path is required");
  }
};

}  // namespace vitslim
