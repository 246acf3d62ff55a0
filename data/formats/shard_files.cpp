// Which shard files a --data-path names (see shards.h): brace expansion ({000..099}, {a,b}),
// shell globs, list files and folders of train-*.tar / val-*.tar.
#include <glob.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/error.h"
#include "data/formats/folder.h"
#include "data/formats/shards.h"

namespace vitslim::data {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxExpansion = 1000000;

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() < 19 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The ends of a brace range {a..b}: integers, or single letters as bash's; false otherwise.
bool range_ends(const std::string& inner, std::string& a, std::string& b) {
  const size_t dots = inner.find("..");
  if (dots == std::string::npos) return false;
  a = inner.substr(0, dots);
  b = inner.substr(dots + 2);
  const auto letter = [](const std::string& s) {
    return s.size() == 1 && std::isalpha(static_cast<unsigned char>(s[0]));
  };
  return (all_digits(a) && all_digits(b)) || (letter(a) && letter(b));
}

bool top_level_comma(const std::string& inner) {
  int depth = 0;
  for (const char c : inner) {
    if (c == '{') ++depth;
    if (c == '}') --depth;
    if (c == ',' && depth == 0) return true;
  }
  return false;
}

// The `{...}` group that brace expansion applies to first: a top-level brace holding a comma or
// a range; others ({}, {x}, {a..xyz}) stay literal. npos when there is none.
size_t first_group(const std::string& p, size_t& close) {
  std::string a, b;
  for (size_t open = p.find('{'); open != std::string::npos; open = p.find('{', open + 1)) {
    int depth = 0;
    for (size_t i = open; i < p.size(); ++i) {
      if (p[i] == '{') ++depth;
      if (p[i] == '}' && --depth == 0) {
        close = i;
        const std::string inner = p.substr(open + 1, i - open - 1);
        if (top_level_comma(inner) || range_ends(inner, a, b)) return open;
        break;
      }
    }
  }
  return std::string::npos;
}

// {a..b} as integers (zero-padded when an end has a leading zero) or letters.
std::vector<std::string> range(const std::string& a, const std::string& b) {
  std::vector<std::string> out;
  if (!all_digits(a)) {
    for (char c = a[0];; c = static_cast<char>(c + (b[0] >= a[0] ? 1 : -1))) {
      out.emplace_back(1, c);
      if (c == b[0]) break;
    }
    return out;
  }
  const int64_t lo = std::stoll(a), hi = std::stoll(b);
  const bool pad = (a.size() > 1 && a[0] == '0') || (b.size() > 1 && b[0] == '0');
  const int width = pad ? static_cast<int>(std::max(a.size(), b.size())) : 0;
  if (static_cast<uint64_t>(std::abs(hi - lo)) >= kMaxExpansion)
    throw Error(cat("brace range {", a, "..", b, "} is too long"));
  for (int64_t v = lo;; v += hi >= lo ? 1 : -1) {
    char text[32];
    std::snprintf(text, sizeof text, "%0*lld", width, static_cast<long long>(v));
    out.push_back(text);
    if (v == hi) break;
  }
  return out;
}

std::vector<std::string> alternatives(const std::string& inner) {
  std::string a, b;
  if (!top_level_comma(inner) && range_ends(inner, a, b)) return range(a, b);
  std::vector<std::string> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= inner.size(); ++i) {
    if (i == inner.size() || (inner[i] == ',' && depth == 0)) {
      out.push_back(inner.substr(start, i - start));
      start = i + 1;
    } else if (inner[i] == '{') {
      ++depth;
    } else if (inner[i] == '}') {
      --depth;
    }
  }
  return out;
}

void expand_into(const std::string& p, std::vector<std::string>& out) {
  size_t close = 0;
  const size_t open = first_group(p, close);
  if (open == std::string::npos) {
    if (out.size() >= kMaxExpansion) throw Error(cat("brace pattern names more than ", kMaxExpansion, " files"));
    out.push_back(p);
    return;
  }
  for (const auto& alt : alternatives(p.substr(open + 1, close - open - 1))) {
    expand_into(p.substr(0, open) + alt + p.substr(close + 1), out);
  }
}

bool has_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

std::vector<std::string> glob_files(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  return out;  // sorted by glob
}

bool ends_with(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

std::vector<std::string> split_folder_shards(const std::string& dir, const std::string& split) {
  const std::vector<std::string> prefixes =
      split == "train" ? std::vector<std::string>{"train-"} : std::vector<std::string>{"val-", "test-"};
  for (const auto& prefix : prefixes) {
    std::vector<std::string> files;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind(prefix, 0) == 0 && ends_with(name, ".tar")) files.push_back(it->path().string());
    }
    if (ec) throw Error(cat("--data-path ", dir, ": cannot list (", ec.message(), ")"));
    std::sort(files.begin(), files.end());
    if (!files.empty()) return files;
  }
  throw Error(cat("--data-path ", dir, ": no ", prefixes.front(), "*.tar shards (a folder of shards holds ",
                  "train-*.tar and val-*.tar; or give a pattern such as 'DIR/train-{000000..000127}.tar')"));
}

}  // namespace

std::vector<std::string> brace_expand(const std::string& pattern) {
  std::vector<std::string> out;
  expand_into(pattern, out);
  return out;
}

ShardFiles shard_files(const std::string& path, const std::string& split) {
  ShardFiles out;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    out.files = split_folder_shards(path, split);
    return out;
  }
  std::vector<std::string> named;
  const bool list = fs::is_regular_file(path, ec) && !ends_with(path, ".tar");
  if (list) {
    named = read_path_list(path, "--data-path", true);
  } else {
    for (const auto& p : brace_expand(path)) {
      if (!has_glob(p)) {
        named.push_back(p);
        continue;
      }
      for (auto& f : glob_files(p)) named.push_back(std::move(f));
    }
  }
  for (const auto& f : named) {
    if (fs::is_regular_file(f, ec)) {
      out.files.push_back(f);
    } else {
      out.problems.push_back(cat("shard ", f, ": missing or not a file"));
    }
  }
  if (out.files.empty()) {
    throw Error(cat("--data-path ", path, ": ", list ? "the list names no existing shard" : "matches no shard file",
                    named.empty() ? std::string() : cat(" (", named.size(), " named, the first ", named.front(), ")")));
  }
  return out;
}

}  // namespace vitslim::data
