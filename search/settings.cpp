// Implements the cross-field checks of the search settings (see settings.h).
#include "search/settings.h"

#include <set>

namespace vitslim {

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
