// Reading a `vitslim search --json` result back: the layers it selected for a removal ratio
// (what `--remove-layers FILE@RATIO` and the pipeline use).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vitslim::search {

// "FILE@RATIO": the layers the search result FILE selected for RATIO. Throws Error naming the file.
std::vector<int64_t> layers_from_search(const std::string& spec);

}  // namespace vitslim::search
