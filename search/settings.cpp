// Implements the cross-field checks of the search settings and the criteria list (see settings.h).
#include "search/settings.h"

#include <algorithm>
#include <set>

namespace vitslim {

std::vector<Criterion> parse_criteria_list(const std::string& text, const std::string& flag) {
  std::vector<Criterion> out;
  if (text == "none") return out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const Criterion c = parse_enum(kCriterionNames, text.substr(start, comma - start), flag);
    if (c == Criterion::Nose) throw Error(cat(flag, ": nose is always run; list the others"));
    if (std::find(out.begin(), out.end(), c) != out.end()) throw Error(cat(flag, ": ", to_string(c), " twice"));
    out.push_back(c);
    start = comma + 1;
  }
  return out;
}

void SearchConfig::validate() const {
  if (out.empty()) throw Error("--out: an output file is required");
  if (ratios.empty()) throw Error("--ratios: at least one ratio is required");
  if (exhaustive && beam != 1) throw Error("--exhaustive and --beam exclude each other");
  if (!nose() && (exhaustive || beam != 1)) {
    throw Error(
        cat("--criterion ", to_string(criterion), " ranks layers by a score: --beam and --exhaustive are NOSE's"));
  }
  std::set<int64_t> unique;
  for (int64_t l : layers) {
    if (!unique.insert(l).second) throw Error(cat("--layers: block ", l, " given twice"));
  }
}

}  // namespace vitslim
