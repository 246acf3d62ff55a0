// Settings of the search (criterion, ratios, beam/exhaustive, candidates, estimator, prefix cache,
// outputs), declared once with their options, and the criterion and head-output estimator enums.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/runtime.h"

namespace vitslim {

// What G, the head output whose entropy NOSE measures, is: the logits or the final-norm CLS feature.
// The head output G: the logits (the pooled feature of a model without a head), or the pooled
// feature (timm's pre-logits: the class token after the final norm, or the patch-token mean);
// "cls" is the older name of "pooled".
enum class Estimator { Logits, Pooled };
inline const EnumNames<Estimator> kEstimatorNames = {
    {Estimator::Logits, "logits"}, {Estimator::Pooled, "pooled"}, {Estimator::Pooled, "cls"}};
inline const char* to_string(Estimator e) { return enum_name(kEstimatorNames, e); }

// How the removed attention layers are chosen (search/criteria.h): NOSE's transfer entropy, or a
// per-layer score whose lowest layers go (the criteria of other work, and two baselines).
enum class Criterion { Nose, Cosine, Bi, Entropy, Random, First };
inline const EnumNames<Criterion> kCriterionNames = {{Criterion::Nose, "nose"},     {Criterion::Cosine, "cosine"},
                                                     {Criterion::Bi, "bi"},         {Criterion::Entropy, "entropy"},
                                                     {Criterion::Random, "random"}, {Criterion::First, "first"}};
inline const char* to_string(Criterion c) { return enum_name(kCriterionNames, c); }

// "none", or criteria other than nose, comma-separated, each once (Error naming `flag`).
std::vector<Criterion> parse_criteria_list(const std::string& text, const std::string& flag);

struct SearchConfig {
  Criterion criterion = Criterion::Nose;
  std::vector<double> ratios = {0.25, 0.5};  // removal ratios of depth, each in (0, 1)
  int64_t beam = 1;                          // sets kept per step (1: greedy)
  bool exhaustive = false;                   // every subset of the requested sizes
  std::vector<int64_t> layers;               // candidate blocks (empty: all)
  Estimator estimator = Estimator::Logits;
  int64_t cache_mb = 1024;  // prefix-cache budget per process (0: no cache)
  bool bf16 = false;        // bf16 autocast of the forward passes (statistics stay float64)
  std::string out = "search.h5";
  std::string json;

  void declare(Options& o) {
    o.group("search", "Search (NOSE, or another criterion side by side)");
    o.add_enum("criterion", criterion,
               "nose (transfer entropy to G, greedy/beam/exhaustive); per-layer scores, lowest removed: cosine "
               "(LLM-Drop: 1 - cos(x, x + Attn(LN x))), bi (ShortGPT's block influence 1 - cos(x, Block(x)), "
               "attention removed), entropy (lowest attention-branch entropy), random (seeded by --seed), first",
               kCriterionNames);
    o.add("ratios", ratios, "removal ratios of depth; layers = round(ratio x depth), e.g. 0.4 of 12 -> 5", open(0, 1));
    o.add("beam", beam, "sets kept per step (1: greedy)", at_least(1));
    o.add_switch("exhaustive", exhaustive, "score every subset of each requested size (small depths)");
    o.add("layers", layers, "candidate blocks, comma-separated (default: all)", at_least(0));
    o.add_enum("estimator", estimator,
               "head output G: logits, or pooled (the head's input: final-norm class token, or patch mean)",
               kEstimatorNames);
    o.add("cache-mb", cache_mb, "prefix-cache budget per process in MiB (0: recompute everything)", at_least(0));
    o.add_switch("bf16", bf16, kBf16Help);
    o.add_path("out", out, "HDF5 result file; an unfinished one (<out>.partial) is resumed", PathRole::OutputFile);
    o.add_path("json", json, "JSON result (feeds vitslim train)", PathRole::OutputFile);
  }
  void validate() const;
  bool nose() const { return criterion == Criterion::Nose; }
};

}  // namespace vitslim
