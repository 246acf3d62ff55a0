// Implements the plan's front and choice (see front.h).
#include "plan/front.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/options.h"

namespace vitslim::plan {

std::string Candidate::key() const { return cat("remove=", join_list(blocks), ";r=", tome_r); }

std::string Candidate::label() const {
  std::string text = blocks.empty() ? "unpruned" : cat("remove {", join_list(blocks), "}");
  if (!blocks.empty() && criterion != "nose") text += cat(" (", criterion, ")");
  if (tome_r > 0) text += cat(", ToMe r=", tome_r);
  return text;
}

namespace {

const Timing* timing_on(const Candidate& c, const std::string& runtime) {
  const auto it = c.timings.find(runtime);
  return it == c.timings.end() ? nullptr : &it->second;
}

// Higher is more accurate: probe top-1 first (probed beats unprobed), then the lower |TE|.
bool more_accurate(const Candidate& a, const Candidate& b) {
  const double pa = a.probe_top1.value_or(-1), pb = b.probe_top1.value_or(-1);
  if (pa != pb) return pa > pb;
  return std::fabs(a.te) < std::fabs(b.te);
}

// Transfer entropy measures what removing attention costs, not what merging tokens costs: a
// candidate with ToMe is judged only by its probe.
bool judged(const Candidate& c) { return c.tome_r == 0 || c.probe_top1.has_value(); }

bool meets_speed(const Timing& t, const Target& target) {
  if (target.speedup) return t.speedup() >= *target.speedup;
  if (target.latency_ms) return t.ms <= *target.latency_ms;
  return true;
}

std::string speed_text(const Timing& t) { return cat(fmt(t.speedup(), 3), "x (", fmt(t.ms, 4), " ms per batch)"); }

std::string target_text(const Target& target) {
  if (target.speedup) return cat(fmt(*target.speedup, 3), "x");
  return cat(fmt(*target.latency_ms, 4), " ms per batch");
}

}  // namespace

std::vector<size_t> pareto_front(const std::vector<Candidate>& candidates, const std::string& runtime) {
  std::vector<size_t> front;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Timing* ti = timing_on(candidates[i], runtime);
    if (!ti) continue;
    bool dominated = false;
    for (size_t j = 0; j < candidates.size() && !dominated; ++j) {
      const Timing* tj = timing_on(candidates[j], runtime);
      if (j == i || !tj) continue;
      // Accuracy before probes: |TE| for the attention removed, and more merging is never better.
      const double ei = std::fabs(candidates[i].te), ej = std::fabs(candidates[j].te);
      const int64_t ri = candidates[i].tome_r, rj = candidates[j].tome_r;
      const bool no_worse = tj->speedup() >= ti->speedup() && ej <= ei && rj <= ri;
      const bool better = tj->speedup() > ti->speedup() || ej < ei || rj < ri;
      // Equal on both: the earlier candidate stays (one of a tie).
      dominated = no_worse && (better || j < i);
    }
    if (!dominated) front.push_back(i);
  }
  std::sort(front.begin(), front.end(), [&](size_t a, size_t b) {
    return timing_on(candidates[a], runtime)->speedup() > timing_on(candidates[b], runtime)->speedup();
  });
  return front;
}

namespace {

std::optional<double> drop_of(const Candidate& c, std::optional<double> unpruned_top1) {
  if (!c.probe_top1 || !unpruned_top1) return std::nullopt;
  return *unpruned_top1 - *c.probe_top1;
}

Choice choose_for_speed(const std::vector<Candidate>& cs, const std::vector<size_t>& front, const std::string& runtime,
                        const Target& target, std::optional<double> unpruned_top1) {
  Choice out;
  std::vector<size_t> fast;  // meeting the speed target
  for (size_t i : front) {
    if (judged(cs[i]) && meets_speed(*timing_on(cs[i], runtime), target)) fast.push_back(i);
  }
  if (fast.empty()) {
    out.closest = front.front();  // the fastest
    for (size_t i : front) {
      if (judged(cs[i])) {
        out.closest = i;
        break;
      }
    }
    out.reason = cat("no candidate reaches ", target_text(target), " on ", runtime, ": the fastest, ",
                     cs[*out.closest].label(), ", runs at ", speed_text(*timing_on(cs[*out.closest], runtime)));
    return out;
  }
  std::vector<size_t> ok;
  for (size_t i : fast) {
    const auto drop = drop_of(cs[i], unpruned_top1);
    if (!target.max_drop || (drop && *drop <= *target.max_drop)) ok.push_back(i);
  }
  const auto best = [&](const std::vector<size_t>& from) {
    return *std::min_element(from.begin(), from.end(), [&](size_t a, size_t b) { return more_accurate(cs[a], cs[b]); });
  };
  if (ok.empty()) {
    out.closest = best(fast);
    const auto drop = drop_of(cs[*out.closest], unpruned_top1);
    out.reason =
        cat(fast.size(), " candidate(s) reach ", target_text(target), " on ", runtime, ", but none within --max-drop ",
            fmt(*target.max_drop, 3), ": the most accurate, ", cs[*out.closest].label(), ", ",
            drop ? cat("loses ", fmt(*drop, 3), " points") : std::string("was not probed"));
    return out;
  }
  out.chosen = best(ok);
  const Candidate& c = cs[*out.chosen];
  out.reason = cat("the most accurate of ", ok.size(), " candidate(s) on the front reaching ", target_text(target),
                   target.max_drop ? cat(" within ", fmt(*target.max_drop, 3), " points") : std::string(), ": ",
                   c.label(), " at ", speed_text(*timing_on(c, runtime)));
  return out;
}

Choice choose_for_drop(const std::vector<Candidate>& cs, const std::vector<size_t>& front, const std::string& runtime,
                       double max_drop, std::optional<double> unpruned_top1) {
  Choice out;
  for (size_t i : front) {  // fastest first
    const auto drop = drop_of(cs[i], unpruned_top1);
    if (drop && *drop <= max_drop) {
      out.chosen = i;
      out.reason = cat("the fastest candidate on the front within ", fmt(max_drop, 3), " points: ", cs[i].label(),
                       " at ", speed_text(*timing_on(cs[i], runtime)), ", loses ", fmt(*drop, 3), " points");
      return out;
    }
  }
  out.reason = cat("no probed candidate on ", runtime, " is within ", fmt(max_drop, 3), " points");
  return out;
}

}  // namespace

Choice choose(const std::vector<Candidate>& candidates, const std::vector<size_t>& front, const std::string& runtime,
              const Target& target, std::optional<double> unpruned_top1) {
  if (front.empty()) throw Error(cat("plan: no candidate was timed on ", runtime));
  if (target.speedup || target.latency_ms) return choose_for_speed(candidates, front, runtime, target, unpruned_top1);
  if (!target.max_drop) throw Error("plan: no target (--target-speedup, --target-latency-ms or --max-drop)");
  if (!unpruned_top1) throw Error("plan: --max-drop needs probes (--probe-steps > 0)");
  return choose_for_drop(candidates, front, runtime, *target.max_drop, unpruned_top1);
}

}  // namespace vitslim::plan
