// Implements reading declared options (see options.h): the Boost.Program_options description,
// command lines and `--config` INI files (keys are flag names, the command line wins), and the
// INI dump that reads back exactly.
#include <boost/program_options.hpp>
#include <fstream>
#include <sstream>

#include "core/options.h"
#include "core/text_file.h"
#include "core/utf8.h"

namespace vitslim {
namespace po = boost::program_options;

namespace {

std::string trim_blanks(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A double-quoted value: \xHH is the byte HH (what the dump writes for bytes that are not
// UTF-8), a backslash before any other character keeps that character.
std::string unquote(const std::string& value) {
  std::string plain;
  for (size_t i = 1; i + 1 < value.size(); ++i) {
    if (value[i] == '\\' && i + 2 < value.size()) {
      const int hi = i + 4 < value.size() && value[i + 1] == 'x' ? hex_digit(value[i + 2]) : -1;
      const int lo = hi >= 0 ? hex_digit(value[i + 3]) : -1;
      if (lo >= 0) {
        plain += static_cast<char>(hi * 16 + lo);
        i += 3;
        continue;
      }
      ++i;
    }
    plain += value[i];
  }
  return plain;
}

// INI: `key = value` lines, `[section]` headers, `#`/`;` comments; a value in double quotes is
// unescaped. Returns `--key=value` arguments.
std::vector<std::string> read_ini(const std::string& path) {
  // Read before the path checks of the options it sets: read_text_file refuses FIFOs and devices.
  std::istringstream in(read_text_file(path, "--config"));
  std::vector<std::string> args;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    // A UTF-8 byte-order mark (editors on Windows write one) is not part of the first key.
    if (number == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    const std::string text = trim_blanks(line);
    if (text.empty() || text[0] == '#' || text[0] == ';') continue;
    if (text[0] == '[') {
      if (text.back() != ']') throw Error(cat("--config ", path, ":", number, ": unterminated section '", line, "'"));
      continue;
    }
    const size_t eq = text.find('=');
    if (eq == std::string::npos) {
      throw Error(cat("--config ", path, ":", number, ": expected 'key = value', got '", line, "'"));
    }
    const std::string key = trim_blanks(text.substr(0, eq));
    if (key.empty()) throw Error(cat("--config ", path, ":", number, ": no key before '=' in '", line, "'"));
    std::string value = trim_blanks(text.substr(eq + 1));
    if (key == "config") throw Error(cat("--config ", path, ":", number, ": nested config files"));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = unquote(value);
    // `--key=` with nothing after `=` is refused by Boost, so an empty value is its own token.
    if (value.empty()) {
      args.insert(args.end(), {"--" + key, ""});
    } else {
      args.push_back("--" + key + "=" + value);
    }
  }
  return args;
}

// A value as one INI line reads it back: quoted when spaces at either end or a quote would be
// lost, or when it holds bytes that are not UTF-8 (file names can), which become \xHH so that
// the dump - also stored in traces, checkpoints and JSON - is always valid UTF-8.
std::string ini_value(const std::string& value) {
  const bool plain = value == trim_blanks(value) && (value.empty() || value.front() != '"') && valid_utf8(value);
  if (plain) return value;
  std::string out = "\"";
  for (size_t i = 0; i < value.size();) {
    const size_t n = utf8_sequence(value, i);
    if (n == 0) {
      constexpr const char* kHex = "0123456789abcdef";
      const auto byte = static_cast<unsigned char>(value[i]);
      out += {'\\', 'x', kHex[byte >> 4], kHex[byte & 0xF]};
      ++i;
      continue;
    }
    if (value[i] == '"' || value[i] == '\\') out += '\\';
    out.append(value, i, n);
    i += n;
  }
  return out + "\"";
}

po::options_description describe(const Options& options) {
  po::options_description all;
  std::vector<std::pair<std::string, po::options_description>> groups;
  for (const Option& o : options.all()) {
    if (groups.empty() || groups.back().first != o.group)
      groups.emplace_back(o.group, po::options_description(o.group));
    auto* value = po::value<std::string>()->value_name(o.is_switch ? "true|false" : "arg");
    if (o.is_switch) value->implicit_value("true");
    groups.back().second.add_options()(o.flag.c_str(), value, o.help.c_str());
  }
  for (auto& [title, group] : groups) all.add(group);
  po::options_description common("Common");
  common.add_options()("config", po::value<std::string>()->value_name("FILE"),
                       "INI file with any of these options (flags win)")(
      "dump-config", "print the resolved configuration as INI and exit")("help,h", "this help");
  all.add(common);
  return all;
}

// A word that is no option's value (`--remove-layers 1 2 3`, `--images a.jpg b.jpg`, anything after
// `--`): Boost would drop it silently, so the command would run on less than the user typed.
void refuse_stray_arguments(const std::string& job, const po::parsed_options& parsed) {
  for (const po::option& o : parsed.options) {
    if (!o.string_key.empty() || o.original_tokens.empty()) continue;
    throw Error(cat("vitslim ", job, ": unexpected argument '", o.original_tokens.front(),
                    "': every option takes one value (lists are comma-separated, e.g. --remove-layers 1,2,3)"));
  }
}

}  // namespace

OptionRequest parse_declared(const std::string& job, const Options& options, const std::vector<std::string>& args) {
  const po::options_description description = describe(options);
  po::variables_map vm;
  try {
    const po::parsed_options parsed = po::command_line_parser(args).options(description).run();
    refuse_stray_arguments(job, parsed);
    po::store(parsed, vm);
    if (vm.count("config")) {
      po::store(po::command_line_parser(read_ini(vm["config"].as<std::string>())).options(description).run(), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(cat("vitslim ", job, ": ", e.what()));
  }
  OptionRequest request;
  if (vm.count("help")) {
    std::ostringstream text;
    text << "usage: vitslim " << job << " [options]\n\n" << description;
    request.help = true;
    request.help_text = text.str();
    return request;
  }
  request.dump_config = vm.count("dump-config") > 0;
  if (vm.count("config")) request.config_file = vm["config"].as<std::string>();
  for (const Option& o : options.all()) {
    if (vm.count(o.flag)) o.parse(vm[o.flag].as<std::string>());
  }
  return request;
}

std::string options_to_ini(const std::string& job, const Options& options) {
  std::ostringstream out;
  out << "# vitslim " << job << " configuration (resolved)\n";
  std::string section;
  for (const Option& o : options.all()) {
    const auto text = o.text();
    if (!text) continue;
    if (o.section != section) {
      section = o.section;
      out << "[" << section << "]\n";
    }
    out << o.flag << " = " << ini_value(*text) << "\n";
  }
  return out.str();
}

}  // namespace vitslim
