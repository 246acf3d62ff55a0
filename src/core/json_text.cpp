// Implements json_text / parse_json_text (see json_text.h). The writer hands UTF-8 documents to
// nlohmann's dump() and serializes the others itself, in the same layout. The reader maps each
// lone \udcXX escape to U+10FFXX (private use), which nlohmann accepts, and the strings it parsed
// back to bytes; so json_text also escapes the bytes of a real U+10FF80..U+10FFFF.
#include "core/json_text.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/text_file.h"
#include "core/utf8.h"

namespace vitslim {
namespace {

using nlohmann::json;

constexpr uint32_t kReservedFirst = 0x10FF80;  // U+10FF80 + b stands for the raw byte 0x80 + b
constexpr uint32_t kReservedBase = 0x10FF00;
constexpr unsigned kEscapedFirst = 0xDC80, kEscapedLast = 0xDCFF;
constexpr unsigned kHighSurrogateFirst = 0xD800, kHighSurrogateLast = 0xDBFF;
constexpr size_t kUnicodeEscape = 6;  // \uXXXX

// Whether s holds a byte json_text must escape.
bool needs_escapes(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t n = utf8_sequence(s, i, &cp);
    if (n == 0 || cp >= kReservedFirst) return true;
    i += n;
  }
  return false;
}

bool tree_needs_escapes(const json& v) {
  if (v.is_string()) return needs_escapes(v.get_ref<const std::string&>());
  if (v.is_object()) {
    for (const auto& [key, item] : v.items()) {
      if (needs_escapes(key) || tree_needs_escapes(item)) return true;
    }
  }
  if (v.is_array()) {
    for (const auto& item : v) {
      if (tree_needs_escapes(item)) return true;
    }
  }
  return false;
}

void append_escape(std::string& out, unsigned value) {
  char buf[kUnicodeEscape + 1];
  std::snprintf(buf, sizeof(buf), "\\u%04x", value);
  out += buf;
}

// A JSON string literal as nlohmann writes it, plus \udcXX for the bytes UTF-8 cannot carry.
void append_string(std::string& out, const std::string& s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_sequence(s, i, &cp);
    if (n == 0 || cp >= kReservedFirst) {
      const size_t bytes = n == 0 ? 1 : n;
      for (size_t k = 0; k < bytes; ++k)
        append_escape(out, kEscapedFirst - 0x80 + static_cast<unsigned char>(s[i + k]));
      i += bytes;
      continue;
    }
    const char c = s[i];
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          append_escape(out, static_cast<unsigned char>(c));
        } else {
          out.append(s, i, n);
        }
    }
    i += n;
  }
  out += '"';
}

void append_value(std::string& out, const json& v, int indent, int level) {
  const bool pretty = indent >= 0;
  auto newline = [&](int depth) {
    if (!pretty) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * depth), ' ');
  };
  if (v.is_object() || v.is_array()) {
    const bool object = v.is_object();
    if (v.empty()) {
      out += object ? "{}" : "[]";
      return;
    }
    out += object ? '{' : '[';
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) out += ',';
      first = false;
      newline(level + 1);
      if (object) {
        append_string(out, it.key());
        out += pretty ? ": " : ":";
      }
      append_value(out, it.value(), indent, level + 1);
    }
    newline(level);
    out += object ? '}' : ']';
  } else if (v.is_string()) {
    append_string(out, v.get_ref<const std::string&>());
  } else {
    out += v.dump();
  }
}

unsigned hex4(const std::string& t, size_t at) {
  unsigned v = 0;
  for (size_t k = 0; k < 4; ++k) {
    const char c = at + k < t.size() ? t[at + k] : 'x';
    const int d = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
    if (d < 0) return ~0u;
    v = v * 16 + static_cast<unsigned>(d);
  }
  return v;
}

// Lone \udcXX escapes (not after a high surrogate) -> \udbff\udfXX, i.e. U+10FFXX.
std::string map_byte_escapes(const std::string& t) {
  std::string out;
  out.reserve(t.size());
  bool in_string = false, after_high = false;
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (!in_string) {
      in_string = c == '"';
      out += c;
      continue;
    }
    if (c == '"') {
      in_string = after_high = false;
      out += c;
    } else if (c == '\\' && i + 1 < t.size()) {
      const unsigned u = t[i + 1] == 'u' ? hex4(t, i + 2) : ~0u;
      if (u >= kEscapedFirst && u <= kEscapedLast && !after_high) {
        out += "\\udbff";
        append_escape(out, u + (0xDF00 - 0xDC00));
      } else {
        out.append(t, i, u == ~0u ? 2 : kUnicodeEscape);
      }
      after_high = u >= kHighSurrogateFirst && u <= kHighSurrogateLast;
      i += u == ~0u ? 1 : kUnicodeEscape - 1;
    } else {
      after_high = false;
      out += c;
    }
  }
  return out;
}

// U+10FF80..U+10FFFF in a parsed string -> the byte it stands for.
std::string restore_bytes(const std::string& s) {
  if (!needs_escapes(s)) return s;
  std::string out;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t n = utf8_sequence(s, i, &cp);
    if (n && cp >= kReservedFirst) {
      out += static_cast<char>(cp - kReservedBase);
    } else {
      out.append(s, i, n ? n : 1);
    }
    i += n ? n : 1;
  }
  return out;
}

json restore_tree(const json& v) {
  if (v.is_string()) return restore_bytes(v.get_ref<const std::string&>());
  if (v.is_object()) {
    json out = json::object();
    for (const auto& [key, item] : v.items()) out[restore_bytes(key)] = restore_tree(item);
    return out;
  }
  if (v.is_array()) {
    json out = json::array();
    for (const auto& item : v) out.push_back(restore_tree(item));
    return out;
  }
  return v;
}

}  // namespace

std::string json_text(const json& value, int indent) {
  if (!tree_needs_escapes(value)) return value.dump(indent);
  std::string out;
  append_value(out, value, indent, 0);
  return out;
}

json parse_json_text(const std::string& text, const std::string& what) {
  try {
    return restore_tree(json::parse(map_byte_escapes(text)));
  } catch (const json::exception& e) {
    throw Error(cat(what, ": malformed JSON (", e.what(), ")"));
  }
}

nlohmann::json read_job_json(const std::string& path, const std::string& job, const std::string& what) {
  nlohmann::json j = parse_json_text(read_text_file(path, what), cat(what, " ", path));
  if (!j.is_object() || !j.contains("job") || !j.at("job").is_string() || j.at("job").get<std::string>() != job)
    throw Error(cat(what, " ", path, ": not a result file of `vitslim ", job, "`"));
  return j;
}

}  // namespace vitslim
