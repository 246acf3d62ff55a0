// A NOSE search's answer and its file format: per requested ratio the layers chosen, their
// transfer entropy and the head entropy with them skipped (Selection, SearchResult), written into
// and read back from `vitslim search --json` files (the "full_entropy" and "selections" keys; the
// coordinator adds what the run did), and the `--remove-layers FILE@RATIO` lookup. Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace vitslim::search {

// One requested ratio's answer.
struct Selection {
  double ratio = 0;
  int64_t count = 0;            // round(ratio x depth) layers
  std::vector<int64_t> layers;  // ascending
  double te = 0;                // H(G | full) - H(G | layers skipped)
  double entropy = 0;           // H(G | layers skipped)
};
struct SearchResult {
  double full_entropy = 0;            // H(G | full model)
  std::vector<Selection> selections;  // per --ratios entry, in its order
};

// The result's keys of a search JSON file ("full_entropy", "selections").
void to_json(nlohmann::json& j, const SearchResult& result);
// Reads them back; throws Error naming `what` (the file or flag) when they are missing or malformed.
SearchResult search_result_from_json(const nlohmann::json& j, const std::string& what);
// Reads a `vitslim search --json` file; throws Error naming `what` and the path.
SearchResult read_search_result(const std::string& path, const std::string& what);

// The order a search recorded in its JSON file: the layers chosen at each count ("steps": best, te),
// the criterion, and the sizes of the model it ran on ("model"), for `vitslim plan`.
struct SearchStep {
  std::vector<int64_t> layers;
  double te = 0;
};
struct SearchOrder {
  std::string criterion;
  std::map<std::string, int64_t> model;  // img_size, patch_size, in_chans, embed_dim, depth, ...
  std::vector<SearchStep> steps;
};
// Throws Error naming `what` and the path when the file is unreadable or not a search result.
SearchOrder read_search_order(const std::string& path, const std::string& what);

// "FILE@RATIO": the layers the search result FILE selected for RATIO. Throws Error naming the file.
std::vector<int64_t> layers_from_search(const std::string& spec);

}  // namespace vitslim::search
