// Implements refuse_colliding_paths (see options.h): every path option's value is resolved
// (weakly_canonical: symlinks of the existing part followed), existing files are also compared by
// device and inode, and an output that meets an input or another output is an error naming both;
// a path that names a FIFO, socket or device, or a symlink loop, is refused before anything opens it.
#include <sys/stat.h>

#include <cerrno>

#include <filesystem>
#include <optional>

#include "core/options.h"

namespace vitslim {
namespace fs = std::filesystem;
namespace {

struct NamedPath {
  std::string flag;  // "--weights", "--config"
  std::string text;  // as given
  fs::path resolved;
  std::optional<std::pair<dev_t, ino_t>> inode;  // when it exists
  PathRole role;
  mode_t mode = 0;    // when it exists (stat: symlinks followed)
  bool loop = false;  // a symlink chain that never ends (ELOOP)
};

// "a FIFO" etc. for a file that is neither a regular file nor a directory, else nullptr.
const char* special_kind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return nullptr;
}

NamedPath resolve(const std::string& flag, const std::string& text, PathRole role) {
  NamedPath p{flag, text, canonical_path(text), std::nullopt, role, 0};
  struct stat st {};
  if (::stat(text.c_str(), &st) == 0) {
    p.inode = std::make_pair(st.st_dev, st.st_ino);
    p.mode = st.st_mode;
  } else {
    p.loop = errno == ELOOP;
  }
  return p;
}

bool same(const NamedPath& a, const NamedPath& b) {
  if (a.inode && b.inode) return *a.inode == *b.inode;
  return a.resolved == b.resolved;
}

bool is_output(PathRole r) { return r == PathRole::OutputFile || r == PathRole::OutputDir; }

}  // namespace

fs::path canonical_path(const std::string& text) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(text, ec), ec);
  if (ec) p = fs::absolute(text, ec).lexically_normal();
  return p;
}

bool path_inside(const fs::path& inner, const fs::path& dir) {
  auto d = dir.begin(), i = inner.begin();
  for (; d != dir.end(); ++d, ++i) {
    if (i == inner.end() || *d != *i) return false;
  }
  return i != inner.end();
}

void refuse_colliding_paths(const Options& options, const std::vector<std::string>& config_files) {
  std::vector<NamedPath> paths;
  for (const auto& file : config_files) paths.push_back(resolve("--config", file, PathRole::InputFile));
  for (const Option& o : options.all()) {
    if (o.role == PathRole::None) continue;
    const auto value = o.text();
    if (value && !value->empty()) paths.push_back(resolve("--" + o.flag, *value, o.role));
  }
  for (const NamedPath& p : paths) {
    if (p.loop) throw Error(cat(p.flag, " ", p.text, ": a symlink loop (too many levels of symbolic links)"));
    if (const char* kind = p.inode ? special_kind(p.mode) : nullptr) {
      throw Error(cat(p.flag, " ", p.text, ": is ", kind, ", not a file",
                      p.role == PathRole::OutputDir ? " or folder" : "",
                      is_output(p.role) ? "; it would block or never end" : " or folder; reading it would block"));
    }
  }
  for (size_t a = 0; a < paths.size(); ++a) {
    for (size_t b = 0; b < paths.size(); ++b) {
      const NamedPath &out = paths[a], &other = paths[b];
      if (a == b || !is_output(out.role)) continue;
      const bool other_out = is_output(other.role);
      if (other_out && b < a) continue;  // each pair of outputs once
      if (same(out, other)) {
        throw Error(cat(
            out.flag, " ", out.text, " is the same ", other_out ? "path" : "file", " as ", other.flag, " ", other.text,
            other_out ? ": two outputs would overwrite each other" : ": the output would destroy an input"));
      }
      if (out.role == PathRole::OutputDir && other.role == PathRole::InputFile &&
          path_inside(other.resolved, out.resolved)) {
        throw Error(cat(other.flag, " ", other.text, " lies inside ", out.flag, " ", out.text,
                        ": the job's outputs could overwrite its input; copy it elsewhere or choose another ",
                        out.flag));
      }
    }
  }
}

}  // namespace vitslim
