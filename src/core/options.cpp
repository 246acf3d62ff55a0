// Implements declared options (see options.h): value texts and the per-type declarations. Parsing
// and the INI dump are in option_ini.cpp.
#include "core/options.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace vitslim {

namespace {

std::string trim_blanks(const std::string& s, const char* blanks) {
  const size_t b = s.find_first_not_of(blanks);
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(blanks) - b + 1);
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) parts.push_back(trim_blanks(item, " \t"));
  return parts;
}

template <typename T>
std::string join(const std::vector<T>& values, std::string (*format)(T)) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += format(values[i]);
  }
  return out;
}
std::string format_int(int64_t v) { return std::to_string(v); }

void check_range(const Range& range, double value, const std::string& flag, const std::string& text) {
  if (!range.contains(value)) throw Error(cat("--", flag, " ", range.describe(), ", got ", text));
}

void check_element(const Range& range, double value, const std::string& flag) {
  if (!range.contains(value)) throw Error(cat("--", flag, ": ", format_double(value), " is not ", range.interval()));
}

// A string value that would break the INI form it is dumped to is refused, not escaped away.
void check_text(const std::string& value, const std::string& flag) {
  if (value.find_first_of("\n\r") != std::string::npos) {
    throw Error(cat("--", flag, ": a value may not contain a line break"));
  }
}

std::optional<std::string> some(std::string text) { return std::optional<std::string>(std::move(text)); }

// Samples for round-trip tests: values near the default that exercise exact printing.
std::vector<std::string> number_samples(double value) {
  return {format_double(std::nextafter(value, 1e300)),
          format_double(value + 1),
          format_double(value * 2 + 0.1),
          format_double(std::nextafter(value, -1e300)),
          format_double(value - 1),
          "1",
          "0",
          "0.5"};
}
std::vector<std::string> int_samples(int64_t value) {
  return {std::to_string(value + 1), std::to_string(value * 2 + 1), std::to_string(value - 1), "1", "2", "3"};
}

// "; positive", "; in [0, 1]", ... for help texts (nothing for any value).
std::string range_note(const Range& range) {
  return std::isinf(range.lo) && std::isinf(range.hi) ? "" : "; " + range.interval();
}

// Help of a list option: its default and the range of each element, where there are any.
std::string list_help(const std::string& help, const std::string& default_text, const Range& range) {
  std::vector<std::string> notes;
  if (!default_text.empty()) notes.push_back("default " + default_text);
  if (!range_note(range).empty()) notes.push_back("each " + range.interval());
  if (notes.empty()) return help;
  std::string out = help + " (";
  for (size_t i = 0; i < notes.size(); ++i) out += (i ? "; " : "") + notes[i];
  return out + ")";
}

template <typename T>
void add_integer(Options& options, const std::string& flag, T& field, const std::string& help, Range range) {
  Option o;
  o.flag = flag;
  o.help = cat(help, " (default ", field, range_note(range), ")");
  o.parse = [&field, flag, range](const std::string& v) {
    const int64_t x = parse_int(v, "--" + flag);
    check_range(range, static_cast<double>(x), flag, v);
    field = static_cast<T>(x);
  };
  o.text = [&field]() { return some(std::to_string(field)); };
  o.samples = [&field]() { return int_samples(static_cast<int64_t>(field)); };
  options.add_custom(std::move(o));
}

}  // namespace

bool Range::contains(double v) const {
  if (std::isnan(v)) return false;
  const bool above = lo_open ? v > lo : v >= lo;
  const bool below = hi_open ? v < hi : v <= hi;
  return above && below;
}

std::string Range::interval() const {
  const bool no_lo = std::isinf(lo), no_hi = std::isinf(hi);
  if (no_lo && no_hi) return "a finite number";
  if (no_hi) return lo == 0 && lo_open ? "positive" : cat(lo_open ? "> " : ">= ", format_double(lo));
  if (no_lo) return cat(hi_open ? "< " : "<= ", format_double(hi));
  return cat("in ", lo_open ? "(" : "[", format_double(lo), ", ", format_double(hi), hi_open ? ")" : "]");
}

std::string Range::describe() const { return "must be " + interval(); }

std::string list_choices(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return out;
}

std::string format_double(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

double parse_double(const std::string& text, const std::string& what) {
  char* end = nullptr;
  const std::string t = trim_blanks(text, " \t");
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !std::isfinite(v)) {
    throw Error(cat(what, ": '", text, "' is not a finite number"));
  }
  return v;
}

int64_t parse_int(const std::string& text, const std::string& what) {
  const std::string t = trim_blanks(text, " \t");
  int64_t v = 0;
  const auto result = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || result.ec != std::errc() || result.ptr != t.data() + t.size()) {
    throw Error(cat(what, ": '", text, "' is not an integer"));
  }
  return v;
}

bool parse_bool(const std::string& text, const std::string& what) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  throw Error(cat(what, ": '", text, "' is not true or false"));
}

namespace {

// Comma-separated values; `kind` says what each must be.
template <typename T>
std::vector<T> parse_list(const std::string& text, const std::string& what,
                          T (*parse)(const std::string&, const std::string&), const char* kind) {
  std::vector<T> values;
  if (text.empty()) return values;
  for (const auto& part : split_commas(text)) {
    try {
      values.push_back(parse(part, what));
    } catch (const Error&) {
      throw Error(cat(what, ": '", part, "' is not ", kind, " (in '", text, "')"));
    }
  }
  return values;
}

}  // namespace

std::vector<double> parse_double_list(const std::string& text, const std::string& what) {
  return parse_list<double>(text, what, parse_double, "a finite number");
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what) {
  return parse_list<int64_t>(text, what, parse_int, "an integer");
}

std::string join_list(const std::vector<int64_t>& values) { return join<int64_t>(values, format_int); }
std::string join_list(const std::vector<double>& values) { return join<double>(values, format_double); }

void Options::group(const std::string& section, const std::string& title) {
  section_ = section;
  group_ = title;
}

void Options::add_custom(Option option) {
  if (find(option.flag)) throw Error(cat("option --", option.flag, " is declared twice"));
  option.section = section_;
  option.group = group_;
  options_.push_back(std::move(option));
}

const Option* Options::find(const std::string& flag) const {
  for (const Option& o : options_) {
    if (o.flag == flag) return &o;
  }
  return nullptr;
}

void Options::add(const std::string& flag, int64_t& field, const std::string& help, Range range) {
  add_integer(*this, flag, field, help, range);
}
void Options::add(const std::string& flag, int& field, const std::string& help, Range range) {
  add_integer(*this, flag, field, help, range);
}
void Options::add(const std::string& flag, uint64_t& field, const std::string& help) {
  Option o;
  o.flag = flag;
  o.help = cat(help, " (default ", field, ")");
  o.parse = [&field, flag](const std::string& v) {
    const std::string t = trim_blanks(v, " \t");
    const auto result = std::from_chars(t.data(), t.data() + t.size(), field);
    if (t.empty() || result.ec != std::errc() || result.ptr != t.data() + t.size()) {
      throw Error(cat("--", flag, ": '", v, "' is not a non-negative integer"));
    }
  };
  o.text = [&field]() { return some(std::to_string(field)); };
  o.samples = [&field]() { return std::vector<std::string>{std::to_string(field + 1), "18446744073709551615"}; };
  add_custom(std::move(o));
}

void Options::add(const std::string& flag, double& field, const std::string& help, Range range) {
  Option o;
  o.flag = flag;
  o.help = cat(help, " (default ", format_double(field), range_note(range), ")");
  o.parse = [&field, flag, range](const std::string& v) {
    const double x = parse_double(v, "--" + flag);
    check_range(range, x, flag, v);
    field = x;
  };
  o.text = [&field]() { return some(format_double(field)); };
  o.samples = [&field]() { return number_samples(field); };
  add_custom(std::move(o));
}

void Options::add(const std::string& flag, std::optional<int64_t>& field, const std::string& help, Range range) {
  Option o;
  o.flag = flag;
  o.help = range_note(range).empty() ? help : cat(help, " (", range.interval(), ")");
  o.parse = [&field, flag, range](const std::string& v) {
    const int64_t x = parse_int(v, "--" + flag);
    check_range(range, static_cast<double>(x), flag, v);
    field = x;
  };
  o.text = [&field]() { return field ? some(std::to_string(*field)) : std::nullopt; };
  o.samples = [&field]() { return int_samples(field.value_or(1)); };
  add_custom(std::move(o));
}

void Options::add(const std::string& flag, std::optional<double>& field, const std::string& help, Range range) {
  Option o;
  o.flag = flag;
  o.help = range_note(range).empty() ? help : cat(help, " (", range.interval(), ")");
  o.parse = [&field, flag, range](const std::string& v) {
    const double x = parse_double(v, "--" + flag);
    check_range(range, x, flag, v);
    field = x;
  };
  o.text = [&field]() { return field ? some(format_double(*field)) : std::nullopt; };
  o.samples = [&field]() { return number_samples(field.value_or(1)); };
  add_custom(std::move(o));
}

void Options::add_path(const std::string& flag, std::string& field, const std::string& help, PathRole role) {
  add(flag, field, help);
  options_.back().role = role;
}

void Options::add(const std::string& flag, std::string& field, const std::string& help,
                  const std::vector<std::string>& examples) {
  Option o;
  o.flag = flag;
  o.help = field.empty() ? help : cat(help, " (default ", field, ")");
  o.parse = [&field, flag](const std::string& v) {
    check_text(v, flag);
    field = v;
  };
  o.text = [&field]() { return some(field); };
  o.samples = [examples]() {
    std::vector<std::string> out = examples;
    out.insert(out.end(), {" runs/dir with spaces/\xc3\xbc-\xe2\x82\xac.out ", "\"q\\x\"", "caf\xe9/\\x41/\xff"});
    return out;
  };
  add_custom(std::move(o));
}

void Options::add_refused(const std::string& flag, const std::string& help, const std::string& message) {
  Option o;
  o.flag = flag;
  o.help = help;
  o.parse = [message](const std::string&) -> void { throw Error(message); };
  o.text = []() { return std::optional<std::string>(); };
  o.samples = []() { return std::vector<std::string>{}; };
  add_custom(std::move(o));
}

void Options::refuse(const std::string& flag, const std::string& message) {
  for (Option& o : options_) {
    if (o.flag != flag) continue;
    o.help = "not used: " + message;
    o.parse = [message](const std::string&) -> void { throw Error(message); };
    o.text = []() { return std::optional<std::string>(); };
    o.samples = []() { return std::vector<std::string>{}; };
    o.role = PathRole::None;
    return;
  }
  throw Error(cat("internal: refuse(--", flag, "): no such option declared"));
}

void Options::add(const std::string& flag, std::vector<double>& field, const std::string& help, Range range) {
  Option o;
  o.flag = flag;
  o.help = list_help(help, join_list(field), range);
  o.parse = [&field, flag, range](const std::string& v) {
    auto values = parse_double_list(v, "--" + flag);
    for (double x : values) check_element(range, x, flag);
    field = std::move(values);
  };
  o.text = [&field]() { return some(join_list(field)); };
  o.samples = [&field]() {
    std::vector<std::string> out;
    for (const std::string& s : number_samples(field.empty() ? 0.25 : field.front())) {
      out.push_back(field.size() > 1 ? s + "," + format_double(field.back()) : s);
    }
    out.push_back("0.1,0.30000000000000004");
    return out;
  };
  add_custom(std::move(o));
}

void Options::add(const std::string& flag, std::vector<int64_t>& field, const std::string& help, Range range) {
  Option o;
  o.flag = flag;
  o.help = list_help(help, join_list(field), range);
  o.parse = [&field, flag, range](const std::string& v) {
    auto values = parse_int_list(v, "--" + flag);
    for (int64_t x : values) check_element(range, static_cast<double>(x), flag);
    field = std::move(values);
  };
  o.text = [&field]() { return some(join_list(field)); };
  o.samples = []() { return std::vector<std::string>{"0,2", "1", "0,1,3"}; };
  add_custom(std::move(o));
}

void Options::add_switch(const std::string& flag, bool& field, const std::string& help) {
  Option o;
  o.flag = flag;
  o.help = cat(help, " (default ", field ? "true" : "false", ")");
  o.is_switch = true;
  o.parse = [&field, flag](const std::string& v) { field = parse_bool(v, "--" + flag); };
  o.text = [&field]() { return some(field ? "true" : "false"); };
  o.samples = [&field]() { return std::vector<std::string>{field ? "false" : "true"}; };
  add_custom(std::move(o));
}

void Options::add_switch(const std::string& flag, std::optional<bool>& field, const std::string& help) {
  Option o;
  o.flag = flag;
  o.help = help;
  o.is_switch = true;
  o.parse = [&field, flag](const std::string& v) { field = parse_bool(v, "--" + flag); };
  o.text = [&field]() { return field ? some(*field ? "true" : "false") : std::nullopt; };
  o.samples = [&field]() { return std::vector<std::string>{field.value_or(false) ? "false" : "true"}; };
  add_custom(std::move(o));
}

void Options::add_choice(const std::string& flag, std::string& field, const std::string& help,
                         const std::vector<std::string>& choices) {
  const std::string listed = list_choices(choices);
  Option o;
  o.flag = flag;
  o.help = cat(help, " (", listed, "; default ", field, ")");
  o.parse = [&field, flag, choices, listed](const std::string& v) {
    for (const auto& c : choices) {
      if (v == c) {
        field = v;
        return;
      }
    }
    throw Error(cat("--", flag, " must be ", listed, ", got '", v, "'"));
  };
  o.text = [&field]() { return some(field); };
  o.samples = [choices]() { return choices; };
  add_custom(std::move(o));
}

}  // namespace vitslim
