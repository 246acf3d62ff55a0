// Implements the search result's file format (see result.h).
#include "search/result.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_text.h"
#include "core/options.h"
#include "core/text_file.h"

namespace vitslim::search {

void to_json(nlohmann::json& j, const SearchResult& result) {
  nlohmann::json selections = nlohmann::json::array();
  for (const Selection& s : result.selections) {
    selections.push_back(
        {{"ratio", s.ratio}, {"count", s.count}, {"layers", s.layers}, {"te", s.te}, {"entropy", s.entropy}});
  }
  j = {{"full_entropy", result.full_entropy}, {"selections", selections}};
}

SearchResult search_result_from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object() || !j.contains("selections")) throw Error(cat(what, ": not a `vitslim search --json` result"));
  SearchResult out;
  try {
    out.full_entropy = j.at("full_entropy").get<double>();
    for (const nlohmann::json& s : j.at("selections")) {
      out.selections.push_back({s.at("ratio").get<double>(), s.at("count").get<int64_t>(),
                                s.at("layers").get<std::vector<int64_t>>(), s.at("te").get<double>(),
                                s.at("entropy").get<double>()});
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(what, ": malformed search result (", e.what(), ")"));
  }
  return out;
}

namespace {

nlohmann::json read_result(const std::string& path, const std::string& what) {
  const nlohmann::json j = parse_json_text(read_text_file(path, what), cat(what, " ", path));
  if (!j.is_object() || j.value("job", "") != "search" || !j.contains("selections")) {
    throw Error(cat(what, " ", path, ": not a `vitslim search --json` result"));
  }
  return j;
}

}  // namespace

SearchResult read_search_result(const std::string& path, const std::string& what) {
  return search_result_from_json(read_result(path, what), cat(what, " ", path));
}

SearchOrder read_search_order(const std::string& path, const std::string& what) {
  const nlohmann::json j = read_result(path, what);
  if (!j.contains("steps") || !j.contains("model"))
    throw Error(cat(what, " ", path, ": not a `vitslim search --json` result"));
  SearchOrder order;
  try {
    order.criterion = j.value("criterion", "");
    for (const auto& [key, value] : j.at("model").items()) {
      if (value.is_number_integer()) order.model[key] = value.get<int64_t>();
    }
    for (const nlohmann::json& step : j.at("steps")) {
      order.steps.push_back({step.at("best").get<std::vector<int64_t>>(), step.at("te").get<double>()});
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(what, " ", path, ": malformed search result (", e.what(), ")"));
  }
  return order;
}

std::vector<int64_t> layers_from_search(const std::string& spec) {
  const size_t at = spec.rfind('@');
  const std::string path = spec.substr(0, at);
  const auto ratios = parse_double_list(spec.substr(at + 1), "--remove-layers FILE@RATIO");
  if (ratios.size() != 1) throw Error(cat("--remove-layers ", spec, ": expected FILE@RATIO, e.g. search.json@0.5"));
  const double ratio = ratios[0];
  const nlohmann::json j = read_result(path, "--remove-layers");
  std::string known;
  try {
    for (const auto& sel : j["selections"]) {
      const double r = sel.at("ratio").get<double>();
      if (std::fabs(r - ratio) < 1e-9) return sel.at("layers").get<std::vector<int64_t>>();
      known += cat(known.empty() ? "" : ", ", r);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("--remove-layers ", path, ": malformed selections (", e.what(), ")"));
  }
  throw Error(cat("--remove-layers ", path, ": no selection for ratio ", ratio, " (has ", known, ")"));
}

}  // namespace vitslim::search
