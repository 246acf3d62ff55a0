// Command-line and INI parsing for `vitslim <job> [options]` (Boost.Program_options lives only in
// options.cpp). parse_options() returns a validated Config or a request to print help/config.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

namespace vitslim {

struct ParsedCommand {
  Config config;
  bool help = false;         // --help: print `help_text` and exit 0
  bool dump_config = false;  // --dump-config: print config_to_ini(config) and exit 0
  std::string help_text;
};

// The jobs this build provides, in the order `vitslim --help` lists them.
const std::vector<std::pair<std::string, std::string>>& job_list();

// "FILE@RATIO": the layers a `vitslim search --json` result selected for RATIO.
std::vector<int64_t> layers_from_search(const std::string& spec);

// argv[1] is the job name. Throws vitslim::Error with one line naming the bad flag or file.
ParsedCommand parse_options(int argc, const char* const argv[]);

}  // namespace vitslim
