// The plan's decision logic, free of torch: candidates (removed attention layers, token merging r)
// with their measured speed per runtime, transfer entropy and probe top-1; the Pareto front of
// (speed-up, |TE|, r); and the choice for a target (docs/method.md section 9). Unit-tested with
// injected timings.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vitslim::plan {

// One runtime's measurement of a candidate: milliseconds per batch, and the unpruned model's in
// the same timing group (the speed-up is their ratio, both timed in one run).
struct Timing {
  double ms = 0;
  double unpruned_ms = 0;
  double speedup() const { return unpruned_ms / ms; }
};

struct Candidate {
  std::string criterion = "nose";         // who picked the blocks ("none" for the unpruned model)
  std::vector<int64_t> blocks;            // attention removed, ascending
  int64_t tome_r = 0;                     // tokens merged per block (0: none)
  double te = 0;                          // H(G | full) - H(G | blocks skipped); 0 for the unpruned model
  int64_t params = 0, macs = 0;           // analytic, per image
  std::map<std::string, Timing> timings;  // by runtime name
  std::optional<double> probe_top1;       // percent, after the probe fine-tune
  bool on_front = false;                  // on some runtime's front

  std::string key() const;    // "remove=0,1,3;r=4" / "remove=;r=0": what its speed depends on
  std::string label() const;  // "remove {0,1,3}, ToMe r=4" / "unpruned"
};

struct Target {
  std::optional<double> speedup, latency_ms, max_drop;
};

// Indices of the candidates no other beats in speed-up (higher) and in accuracy as known before the
// probes: |TE| (lower) and token merging r (lower: TE does not see merging), on `runtime`, fastest
// first. Candidates without a timing there take no part.
std::vector<size_t> pareto_front(const std::vector<Candidate>& candidates, const std::string& runtime);

struct Choice {
  std::optional<size_t> chosen;   // index into the candidates; none: the target is not met
  std::optional<size_t> closest;  // when not met: the candidate nearest to meeting it
  std::string reason;             // one sentence: why this one, or why none
};

// The choice on `runtime` among the front (`front`: pareto_front's indices):
//  - a speed or latency target: the most accurate candidate meeting it (probe top-1, or the lowest
//    |TE| without probes), within --max-drop when given (then only probed candidates qualify);
//    a candidate with token merging qualifies only with a probe (TE does not see what merging costs);
//  - --max-drop alone: the fastest probed candidate within it.
// `unpruned_top1`: the unpruned model's probe (needed for --max-drop).
Choice choose(const std::vector<Candidate>& candidates, const std::vector<size_t>& front, const std::string& runtime,
              const Target& target, std::optional<double> unpruned_top1);

}  // namespace vitslim::plan
