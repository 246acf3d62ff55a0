// Implements the ToMe settings, their resolution per block and the token schedule (see tome.h).
#include "model/tome.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace vitslim::model {
namespace {

constexpr double kDecreasingInflect = -0.5;  // ToMe's decreasing schedule: 1.5 r down to 0.5 r

// ToMe's schedule over `blocks` blocks: r (1 - inflect) down to r (1 + inflect), truncated.
std::vector<int64_t> decreasing(int64_t r, int64_t blocks) {
  const auto first = static_cast<int64_t>(static_cast<double>(r) * (1.0 - kDecreasingInflect));
  const int64_t last = 2 * r - first;
  if (blocks == 1) return {r};
  const double step = static_cast<double>(last - first) / static_cast<double>(blocks - 1);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < blocks; ++i) {
    out.push_back(static_cast<int64_t>(static_cast<double>(first) + step * static_cast<double>(i)));
  }
  return out;
}

}  // namespace

bool TokenMerging::active() const {
  return std::any_of(r.begin(), r.end(), [](int64_t v) { return v > 0; });
}

int64_t TokenMerging::r_at(int64_t block, bool has_attention) const {
  if (block < 0 || block >= static_cast<int64_t>(r.size())) return 0;
  return has_attention || mlp_blocks ? r[static_cast<size_t>(block)] : 0;
}

bool TokenMerging::operator==(const TokenMerging& o) const {
  if (!active() || !o.active()) return active() == o.active();
  return r == o.r && prop_attn == o.prop_attn && mlp_blocks == o.mlp_blocks;
}

std::string TokenMerging::describe() const {
  if (!active()) return "off";
  return cat("r=", join_list(r), prop_attn ? " prop_attn" : "", mlp_blocks ? " mlp_blocks" : "");
}

std::string tome_to_text(const TokenMerging& tm) {
  return cat("r=", join_list(tm.r), ";prop_attn=", tm.prop_attn ? 1 : 0, ";mlp_blocks=", tm.mlp_blocks ? 1 : 0);
}

TokenMerging tome_from_text(const std::string& text, const std::string& what) {
  TokenMerging tm;
  bool have_r = false;
  std::stringstream parts(text);
  std::string part;
  while (std::getline(parts, part, ';')) {
    const auto eq = part.find('=');
    const std::string key = part.substr(0, eq), value = eq == std::string::npos ? "" : part.substr(eq + 1);
    if (key == "r") {
      tm.r = parse_int_list(value, what + ": r");
      have_r = true;
    } else if (key == "prop_attn") {
      tm.prop_attn = parse_bool(value, what + ": prop_attn");
    } else if (key == "mlp_blocks") {
      tm.mlp_blocks = parse_bool(value, what + ": mlp_blocks");
    } else {
      throw Error(cat(what, ": unknown token-merging field '", key, "' in '", text, "'"));
    }
  }
  if (!have_r) throw Error(cat(what, ": token merging without r in '", text, "'"));
  for (int64_t v : tm.r) {
    if (v < 0) throw Error(cat(what, ": negative r ", v, " in '", text, "'"));
  }
  return tm;
}

void TomeRequest::declare(Options& o, const std::string& tuned_by, bool job_declares_r) {
  o.group("tome", "Token merging (ToMe) on the blocks that keep their attention");
  if (tuned_by.empty()) {
    o.add("tome-r", r,
          "tokens merged per block: one value (see --tome-schedule) or one per block from --tome-start; "
          "0 turns merging off (overrides a model file's recorded merging)",
          at_least(0));
    o.add("tome-start", start, "first block that merges", at_least(0));
  } else if (!job_declares_r) {
    for (const char* flag : {"tome-r", "tome-start"}) {
      o.add_refused(flag, cat("not used: ", tuned_by, " chooses it"),
                    cat("--", flag, ": ", tuned_by, " chooses r and the start block itself"));
    }
  }
  o.add_enum("tome-schedule", schedule, "how one --tome-r value spreads over the blocks", kTomeScheduleNames);
  o.add_switch("tome-prop-attn", prop_attn, "proportional attention (log token size added to the attention logits)");
  o.add_switch(
      "tome-mlp-blocks", mlp_blocks,
      "blocks without full attention (diluting, skipped, removed) merge too, by the similarity of their input");
}

TokenMerging resolve_tome(const TomeRequest& q, int64_t depth) {
  TokenMerging tm;
  tm.prop_attn = q.prop_attn;
  tm.mlp_blocks = q.mlp_blocks;
  if (!q.given()) return tm;
  if (q.start >= depth) throw Error(cat("--tome-start ", q.start, " is out of range (depth ", depth, ")"));
  const int64_t blocks = depth - q.start;
  std::vector<int64_t> tail;
  if (q.r.size() == 1) {
    tail = q.schedule == TomeSchedule::Decreasing ? decreasing(q.r[0], blocks)
                                                  : std::vector<int64_t>(static_cast<size_t>(blocks), q.r[0]);
  } else {
    if (static_cast<int64_t>(q.r.size()) != blocks) {
      throw Error(cat("--tome-r: a list needs one value per block from --tome-start ", q.start, " (", blocks,
                      " values), got ", q.r.size()));
    }
    if (q.schedule != TomeSchedule::Constant) {
      throw Error("--tome-schedule applies to one --tome-r value, not to a list");
    }
    tail = q.r;
  }
  tm.r.assign(static_cast<size_t>(q.start), 0);
  tm.r.insert(tm.r.end(), tail.begin(), tail.end());
  return tm;
}

int64_t max_merges(int64_t n, int64_t prefix) {
  const int64_t a = (n + 1) / 2 - (prefix + 1) / 2;  // unprotected tokens of set A
  const int64_t b = n / 2 - prefix / 2;              // unprotected tokens of set B
  return b > 0 ? std::max<int64_t>(a, 0) : 0;
}

std::vector<BlockTokens> token_schedule(int64_t tokens, int64_t prefix, const std::vector<bool>& has_attention,
                                        const TokenMerging& tm) {
  std::vector<BlockTokens> out;
  int64_t n = tokens;
  for (size_t b = 0; b < has_attention.size(); ++b) {
    const int64_t r = tm.r_at(static_cast<int64_t>(b), has_attention[b]);
    const int64_t most = max_merges(n, prefix);
    if (r > most) {
      throw Error(
          cat("--tome-r: block ", b, " would merge ", r, " tokens but only ", n, " remain there (at most ", most, ")"));
    }
    out.push_back({n, n - r});
    n -= r;
  }
  return out;
}

}  // namespace vitslim::model
