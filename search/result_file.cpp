// Implements reading search results back (see result_file.h).
#include "search/result_file.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_text.h"
#include "core/options.h"

namespace vitslim::search {

namespace {

nlohmann::json read_result(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(cat("--remove-layers ", path, ": cannot open search result"));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const nlohmann::json j = parse_json_text(text, cat("--remove-layers ", path));
  if (!j.is_object() || j.value("job", "") != "search" || !j.contains("selections")) {
    throw Error(cat("--remove-layers ", path, ": not a `vitslim search --json` result"));
  }
  return j;
}

}  // namespace

std::vector<int64_t> layers_from_search(const std::string& spec) {
  const size_t at = spec.rfind('@');
  const std::string path = spec.substr(0, at);
  const auto ratios = parse_double_list(spec.substr(at + 1), "--remove-layers FILE@RATIO");
  if (ratios.size() != 1) throw Error(cat("--remove-layers ", spec, ": expected FILE@RATIO, e.g. search.json@0.5"));
  const double ratio = ratios[0];
  const nlohmann::json j = read_result(path);
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
