// Token merging (ToMe, Bolya et al. 2023; docs/method.md section 7) as the user asks for it and as
// the model runs it: the --tome-* flags (TomeRequest), their resolution into one r per block
// (TokenMerging), the token counts every block sees (token_schedule, shared by the model's checks
// and the analytic cost), and the text form stored in weight-file metadata. No torch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/options.h"

namespace vitslim::model {

enum class TomeSchedule { Constant, Decreasing };
inline const EnumNames<TomeSchedule> kTomeScheduleNames = {{TomeSchedule::Constant, "constant"},
                                                           {TomeSchedule::Decreasing, "decreasing"}};

// Pairs the bipartite split of n tokens can merge when the first `prefix` (class, distillation,
// register tokens) never merge: the unprotected tokens of set A (even positions), given that set B
// (odd positions) keeps an unprotected token to merge into.
int64_t max_merges(int64_t n, int64_t prefix);

// Resolved: what every block merges. Empty r (or all zeros) is no merging at all.
struct TokenMerging {
  std::vector<int64_t> r;   // pairs merged by block b (after its attention, before its MLP)
  bool prop_attn = true;    // proportional attention: log(size) added to the attention logits
  bool mlp_blocks = false;  // blocks without full attention (diluting, skipped, removed) merge too, by their input

  bool active() const;
  // r of block b, whose attention is full (or not): 0 where it does not merge.
  int64_t r_at(int64_t block, bool has_attention) const;
  bool operator==(const TokenMerging& o) const;
  std::string describe() const;  // "r=0,0,8,8 prop_attn mlp_blocks" / "off"
};

// The metadata text of a TokenMerging ("r=0,0,8,8;prop_attn=1;mlp_blocks=0") and back; `what`
// names the file in errors.
std::string tome_to_text(const TokenMerging& tm);
TokenMerging tome_from_text(const std::string& text, const std::string& what);

// What the user asks (--tome-*). r empty: not asked (a model file's recorded merging applies).
struct TomeRequest {
  std::vector<int64_t> r;
  int64_t start = 0;
  TomeSchedule schedule = TomeSchedule::Constant;
  bool prop_attn = true;
  bool mlp_blocks = false;

  bool given() const { return !r.empty(); }
  // tuned_by: the job that chooses r and the start block itself ("" for none); its --tome-r and
  // --tome-start are then refused with a message naming it, or, with `job_declares_r`, left for the
  // job to declare with its own meaning (plan's grid of r).
  void declare(Options& o, const std::string& tuned_by = "", bool job_declares_r = false);
};

// One r per block of a depth-`depth` model: blocks before `start` merge nothing; from `start` on,
// one --tome-r value is constant or ToMe's decreasing schedule (1.5 r down to 0.5 r), and a list
// gives one value per block from `start`. Throws Error naming the flag.
TokenMerging resolve_tome(const TomeRequest& request, int64_t depth);

// Token counts around each block: `in` enters it (and its attention), `out` leaves its merge
// (and enters its MLP).
struct BlockTokens {
  int64_t in = 0, out = 0;
};
// tokens: entering block 0 (patches + prefix tokens); prefix: tokens that never merge;
// has_attention: per block. Throws Error naming --tome-r where a block would merge more pairs
// than its tokens allow (max_merges).
std::vector<BlockTokens> token_schedule(int64_t tokens, int64_t prefix, const std::vector<bool>& has_attention,
                                        const TokenMerging& tm);

}  // namespace vitslim::model
