// Declared options: each option is declared once, next to the settings field it fills, with its
// flag, help, range or choices; the field's value at declaration is the default. From these
// declarations come the Boost.Program_options description (--help), the parsing of command-line
// and INI values, the range checks and the INI dump (--dump-config), so that no option is listed
// twice. Enums declare a name table once (EnumNames) that gives both parse and to_string.
// Boost lives only in option_ini.cpp: this header is cheap to include from every layer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace vitslim {

// The accepted interval of a numeric option (each element of a list option).
struct Range {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
  bool contains(double v) const;
  std::string describe() const;  // "must be positive", "must be in [0, 1)", ...
  std::string interval() const;  // "in (0, 1)", "positive", ">= 1", ...
};
inline Range positive() { return {0, Range().hi, true, false}; }
inline Range at_least(double lo) { return {lo, Range().hi, false, false}; }
inline Range closed(double lo, double hi) { return {lo, hi, false, false}; }
inline Range half_open(double lo, double hi) { return {lo, hi, false, true}; }  // [lo, hi)
inline Range open(double lo, double hi) { return {lo, hi, true, true}; }        // (lo, hi)

// Name table of an enum: one entry per value, in the order help lists them.
template <typename E>
using EnumNames = std::vector<std::pair<E, const char*>>;

// "a, b or c": how help and errors list choices.
std::string list_choices(const std::vector<std::string>& names);
template <typename E>
std::string enum_choices(const EnumNames<E>& names) {
  std::vector<std::string> listed;
  for (const auto& [value, name] : names) listed.emplace_back(name);
  return list_choices(listed);
}
template <typename E>
E parse_enum(const EnumNames<E>& names, const std::string& text, const std::string& what) {
  for (const auto& [value, name] : names) {
    if (text == name) return value;
  }
  throw Error(cat(what, " must be ", enum_choices(names), ", got '", text, "'"));
}
template <typename E>
const char* enum_name(const EnumNames<E>& names, E value) {
  for (const auto& [v, name] : names) {
    if (v == value) return name;
  }
  return "?";
}

// Value texts shared by parsing and dumping (doubles in the shortest form that reads back
// exactly; lists comma-separated). `what` names the flag in errors.
std::string format_double(double value);
double parse_double(const std::string& text, const std::string& what);
int64_t parse_int(const std::string& text, const std::string& what);
bool parse_bool(const std::string& text, const std::string& what);
std::vector<double> parse_double_list(const std::string& text, const std::string& what);
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what);
std::string join_list(const std::vector<int64_t>& values);
std::string join_list(const std::vector<double>& values);

// What a path option names, so that a job refuses an output that is one of its inputs or
// another of its outputs (see refuse_colliding_paths).
enum class PathRole { None, InputFile, InputDir, OutputFile, OutputDir };

// One declared option.
struct Option {
  std::string flag;  // long name without "--"; also the INI key
  std::string help;
  std::string section;                                // INI section name (for readability; keys alone identify options)
  std::string group;                                  // the help section title it is listed under
  bool is_switch = false;                             // boolean: `--flag` alone means true
  std::function<void(const std::string&)> parse;      // reads a value into the field (throws Error)
  std::function<std::optional<std::string>()> text;   // the field as INI text; nullopt: unset
  std::function<std::vector<std::string>()> samples;  // other valid-looking values (round-trip tests);
                                                      // none: a refused flag (add_refused)
  PathRole role = PathRole::None;
};

// The options of one job, in declaration order, grouped under section titles.
class Options {
 public:
  // Following declarations are listed under this title in --help and under [section] in the INI dump.
  void group(const std::string& section, const std::string& title);

  void add(const std::string& flag, int64_t& field, const std::string& help, Range range = {});
  void add(const std::string& flag, int& field, const std::string& help, Range range = {});
  void add(const std::string& flag, uint64_t& field, const std::string& help);
  void add(const std::string& flag, double& field, const std::string& help, Range range = {});
  void add(const std::string& flag, std::optional<int64_t>& field, const std::string& help, Range range = {});
  void add(const std::string& flag, std::optional<double>& field, const std::string& help, Range range = {});
  // `examples`: valid values other than the default (help shows none; round-trip tests use them).
  void add(const std::string& flag, std::string& field, const std::string& help,
           const std::vector<std::string>& examples = {});
  void add(const std::string& flag, std::vector<double>& field, const std::string& help, Range range = {});
  void add(const std::string& flag, std::vector<int64_t>& field, const std::string& help, Range range = {});
  // A path the job reads or writes (a string option with a role).
  void add_path(const std::string& flag, std::string& field, const std::string& help, PathRole role);
  // A boolean switch: `--flag`, `--flag=true|false`, INI `flag = true|false`.
  void add_switch(const std::string& flag, bool& field, const std::string& help);
  // A switch that may stay unset (then something else decides: a preset, a weights file).
  void add_switch(const std::string& flag, std::optional<bool>& field, const std::string& help);
  // A string from a fixed set of choices.
  void add_choice(const std::string& flag, std::string& field, const std::string& help,
                  const std::vector<std::string>& choices);
  template <typename E>
  void add_enum(const std::string& flag, E& field, const std::string& help, const EnumNames<E>& names);
  template <typename E>
  void add_enum(const std::string& flag, std::optional<E>& field, const std::string& help, const EnumNames<E>& names);
  // A flag this job keeps only to refuse with `message` (a flag other jobs take).
  void add_refused(const std::string& flag, const std::string& help, const std::string& message);
  // Turns an option a shared declaration made (a part's declare()) into a refused one, for a job
  // that would not use it: giving it is an error with `message`, never silently ignored.
  void refuse(const std::string& flag, const std::string& message);
  // Anything else: the caller says how to read and write the field.
  void add_custom(Option option);

  const std::vector<Option>& all() const { return options_; }
  const Option* find(const std::string& flag) const;

 private:
  std::string section_ = "options", group_ = "Options";
  std::vector<Option> options_;
};

template <typename E>
void Options::add_enum(const std::string& flag, E& field, const std::string& help, const EnumNames<E>& names) {
  Option o;
  o.flag = flag;
  o.help = help + " (" + enum_choices(names) + "; default " + enum_name(names, field) + ")";
  o.parse = [&field, names, flag](const std::string& v) { field = parse_enum(names, v, "--" + flag); };
  o.text = [&field, names]() { return std::optional<std::string>(enum_name(names, field)); };
  o.samples = [names]() {
    std::vector<std::string> out;
    for (const auto& [value, name] : names) out.emplace_back(name);
    return out;
  };
  add_custom(std::move(o));
}

template <typename E>
void Options::add_enum(const std::string& flag, std::optional<E>& field, const std::string& help,
                       const EnumNames<E>& names) {
  Option o;
  o.flag = flag;
  o.help = help + " (" + enum_choices(names) + ")";
  o.parse = [&field, names, flag](const std::string& v) { field = parse_enum(names, v, "--" + flag); };
  o.text = [&field, names]() {
    return field ? std::optional<std::string>(enum_name(names, *field)) : std::optional<std::string>();
  };
  o.samples = [names]() {
    std::vector<std::string> out;
    for (const auto& [value, name] : names) out.emplace_back(name);
    return out;
  };
  add_custom(std::move(o));
}

// Result of reading a job's options: what the user asked the executable to do.
struct OptionRequest {
  bool help = false;         // --help: print help_text
  bool dump_config = false;  // --dump-config: print the resolved configuration
  std::string help_text;
  std::string config_file;  // --config FILE, if given
};

// Parses `args` (argv after the job name; `--config FILE` adds an INI file whose keys are flag
// names, command line wins) into the declared fields, checking each value's range. Throws Error
// with one line naming the flag or file. Adds --config, --dump-config and --help itself.
OptionRequest parse_declared(const std::string& job, const Options& options, const std::vector<std::string>& args);

// `text` made absolute with the symlinks of its existing part resolved (std::filesystem's
// weakly_canonical; lexically normalised where that fails), so that two spellings of one file
// compare equal.
std::filesystem::path canonical_path(const std::string& text);
// Whether `inner` lies strictly below the directory `dir` (both from canonical_path).
bool path_inside(const std::filesystem::path& inner, const std::filesystem::path& dir);

// Refuses (Error naming both flags) an output path that resolves to an input (`inputs`: the
// --config files; and every InputFile/InputDir option), lies inside an output directory while
// being an input, or resolves to another output. Paths are compared canonically (symlinks
// resolved) and, for files that exist, by device and inode (hard links). Also refuses any path
// option naming a FIFO, socket or device (opening one would block or read without end) or a
// symlink loop.
void refuse_colliding_paths(const Options& options, const std::vector<std::string>& config_files);

// The declared fields as INI text: a `[section]` line per group, `flag = value` lines (unset
// optional fields left out); values that need it are double-quoted with \" and \\ escapes, so
// the text reads back exactly.
std::string options_to_ini(const std::string& job, const Options& options);

}  // namespace vitslim
