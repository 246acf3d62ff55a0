// Implements the tar member table and writer (see tar.h): 512-byte headers read with pread at
// each member's offset, checksums checked, pax and GNU long-name records applied to the member
// that follows them.
#include "data/formats/tar.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace vitslim::data {
namespace {

// Field offsets and widths of a POSIX ustar header.
constexpr size_t kNameAt = 0, kNameLen = 100;
constexpr size_t kModeAt = 100, kUidAt = 108, kGidAt = 116, kIdLen = 8;
constexpr size_t kSizeAt = 124, kSizeLen = 12;
constexpr size_t kMtimeAt = 136, kMtimeLen = 12;
constexpr size_t kSumAt = 148, kSumLen = 8;
constexpr size_t kTypeAt = 156;
constexpr size_t kMagicAt = 257, kVersionAt = 263;
constexpr size_t kPrefixAt = 345, kPrefixLen = 155;
constexpr uint64_t kBlock = kTarBlock;
constexpr uint64_t kMaxRecordBytes = uint64_t{1} << 20;  // pax / long-name records larger than this are damage
constexpr unsigned kReadOnlyMode = 0444;

using Block = std::array<unsigned char, kBlock>;
using HeaderAndData = std::array<unsigned char, 2 * kBlock>;

uint64_t round_up(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

std::string field(const Block& b, size_t at, size_t len) {
  const auto* p = reinterpret_cast<const char*>(b.data() + at);
  return std::string(p, strnlen(p, len));
}

// An octal number field (NUL/space padded), or GNU's base-256 form (top bit set). false: not a number.
bool number(const Block& b, size_t at, size_t len, uint64_t& out) {
  out = 0;
  if (b[at] & 0x80) {
    for (size_t i = 1; i < len; ++i) {
      if (out >> 56) return false;
      out = (out << 8) | b[at + i];
    }
    return (b[at] & 0x7f) == 0;
  }
  size_t i = at;
  while (i < at + len && b[i] == ' ') ++i;
  bool any = false;
  for (; i < at + len && b[i] >= '0' && b[i] <= '7'; ++i, any = true) {
    if (out >> 60) return false;
    out = out * 8 + (b[i] - '0');
  }
  for (; i < at + len; ++i) {
    if (b[i] != ' ' && b[i] != 0) return false;
  }
  return any;
}

bool checksum_ok(const Block& b) {
  uint64_t stored = 0;
  if (!number(b, kSumAt, kSumLen, stored)) return false;
  uint64_t unsigned_sum = 0;
  int64_t signed_sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    const bool in_sum = i >= kSumAt && i < kSumAt + kSumLen;
    unsigned_sum += in_sum ? ' ' : b[i];
    signed_sum += in_sum ? ' ' : static_cast<signed char>(b[i]);
  }
  return stored == unsigned_sum || static_cast<int64_t>(stored) == signed_sum;
}

bool all_zero(const Block& b) {
  return std::all_of(b.begin(), b.end(), [](unsigned char c) { return c == 0; });
}

// The member's path: ustar's prefix + "/" + name (GNU headers use the prefix bytes otherwise).
std::string header_name(const Block& b) {
  std::string name = field(b, kNameAt, kNameLen);
  const bool posix = std::memcmp(b.data() + kMagicAt, "ustar\0", 6) == 0;
  const std::string prefix = posix ? field(b, kPrefixAt, kPrefixLen) : std::string();
  return prefix.empty() ? name : prefix + "/" + name;
}

// Applies the records of a pax extended header ("<len> <key>=<value>\n" ...): path and size.
bool apply_pax(const std::string& records, std::string& path, uint64_t& size, bool& has_size) {
  size_t at = 0;
  while (at < records.size()) {
    const size_t space = records.find(' ', at);
    if (space == std::string::npos) return records.find_first_not_of('\0', at) == std::string::npos;
    uint64_t len = 0;
    for (size_t i = at; i < space; ++i) {
      if (records[i] < '0' || records[i] > '9' || len > records.size()) return false;
      len = len * 10 + static_cast<uint64_t>(records[i] - '0');
    }
    if (len <= space - at || at + len > records.size() || records[at + len - 1] != '\n') return false;
    const std::string record = records.substr(space + 1, at + len - space - 2);
    const size_t eq = record.find('=');
    if (eq == std::string::npos) return false;
    const std::string key = record.substr(0, eq), value = record.substr(eq + 1);
    if (key == "path") path = value;
    if (key == "size") {
      try {
        size = std::stoull(value);
        has_size = true;
      } catch (const std::exception&) {
        return false;
      }
    }
    at += len;
  }
  return true;
}

class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error(cat(path, ": cannot open (", std::strerror(errno), ")"));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw Error(cat(path, ": not a regular file"));
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~Reader() { ::close(fd_); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  uint64_t size() const { return size_; }
  // Bytes read at `at` (fewer at the end of the file).
  size_t read(void* out, size_t n, uint64_t at) const {
    size_t done = 0;
    while (done < n) {
      const ssize_t got = ::pread(fd_, static_cast<char*>(out) + done, n - done, static_cast<off_t>(at + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw Error(cat(path_, ": read error (", std::strerror(errno), ")"));
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace

TarListing list_tar(const std::string& path) {
  const Reader in(path);
  TarListing out;
  out.file_size = in.size();
  std::string next_path;  // from a pax or GNU long-name record, for the next member
  uint64_t next_size = 0;
  bool has_next_size = false;
  uint64_t at = 0;
  Block b{};
  HeaderAndData both{};
  auto damaged = [&](const std::string& what) {
    out.damage = cat(what, " at byte ", at, " of ", in.size());
    return out;
  };
  while (at < in.size()) {
    // The header and the block after it in one read: a small member's data comes with it.
    const size_t got = in.read(both.data(), both.size(), at);
    std::copy_n(both.begin(), kBlock, b.begin());
    if (got < kBlock) return damaged("a partial header (the file is truncated)");
    if (all_zero(b)) return out;  // end-of-archive blocks
    if (!checksum_ok(b)) return damaged("a header with a bad checksum (not a tar file, or corrupt)");
    uint64_t size = 0;
    if (!number(b, kSizeAt, kSizeLen, size)) return damaged("a header with an unreadable size");
    const char type = static_cast<char>(b[kTypeAt]);
    if (has_next_size && (type == '0' || type == '\0' || type == '7')) size = next_size;
    const uint64_t data = at + kBlock;
    if (size > in.size() || data + size > in.size()) {
      return damaged(
          cat("member ", header_name(b), " declaring ", size, " bytes past the end of the file (truncated)"));
    }
    if (type == 'x' || type == 'g' || type == 'L') {
      if (size > kMaxRecordBytes) return damaged("an oversized extended header");
      std::string records(size, '\0');
      in.read(records.data(), size, data);
      if (type == 'L') {
        next_path = records.substr(0, strnlen(records.data(), records.size()));
      } else if (type == 'x' && !apply_pax(records, next_path, next_size, has_next_size)) {
        return damaged("a malformed pax extended header");
      }
    } else {
      if (type == '0' || type == '\0' || type == '7') {
        out.members.push_back({next_path.empty() ? header_name(b) : next_path, data, size, {}});
        if (size <= kBlock) out.members.back().small.assign(reinterpret_cast<const char*>(both.data()) + kBlock, size);
      }
      next_path.clear();
      has_next_size = false;
    }
    if (data + round_up(size) > in.size()) {  // Python's tarfile: "unexpected end of data"
      return damaged(cat("member ", header_name(b), " whose last block is cut off (truncated)"));
    }
    at = data + round_up(size);
  }
  return out;  // ends without end-of-archive blocks, as Python's tarfile accepts
}

void TarWriter::write(const void* data, uint64_t size) {
  if (size > 0 && std::fwrite(data, 1, size, out_) != size) {
    throw Error(cat(what_, ": write failed (", std::strerror(errno), ")"));
  }
  written_ += size;
}

void TarWriter::header(const std::string& name, uint64_t size, char type) {
  Block b{};
  auto put = [&](size_t at, size_t len, const std::string& s) {
    std::memcpy(b.data() + at, s.data(), std::min(len, s.size()));
  };
  auto octal = [&](size_t at, size_t len, uint64_t v) {
    char text[32];
    std::snprintf(text, sizeof text, "%0*llo", static_cast<int>(len - 1), static_cast<unsigned long long>(v));
    put(at, len - 1, text);
  };
  // ustar splits a long path at a '/' into prefix (155) and name (100).
  std::string prefix, base = name;
  if (name.size() > kNameLen) {
    const size_t slash = name.rfind('/', kPrefixLen);
    if (slash != std::string::npos && name.size() - slash - 1 <= kNameLen && slash > 0) {
      prefix = name.substr(0, slash);
      base = name.substr(slash + 1);
    }
  }
  put(kNameAt, kNameLen, base);
  octal(kModeAt, kIdLen, kReadOnlyMode);
  octal(kUidAt, kIdLen, 0);
  octal(kGidAt, kIdLen, 0);
  octal(kSizeAt, kSizeLen, size);
  octal(kMtimeAt, kMtimeLen, 0);
  b[kTypeAt] = static_cast<unsigned char>(type);
  std::memcpy(b.data() + kMagicAt, "ustar\0", 6);
  std::memcpy(b.data() + kVersionAt, "00", 2);
  put(kPrefixAt, kPrefixLen, prefix);
  std::memset(b.data() + kSumAt, ' ', kSumLen);
  uint64_t sum = 0;
  for (unsigned char c : b) sum += c;
  char text[kSumLen];
  std::snprintf(text, sizeof text, "%06llo", static_cast<unsigned long long>(sum));
  std::memcpy(b.data() + kSumAt, text, 7);  // six digits, NUL, and the space already there
  write(b.data(), kBlock);
}

void TarWriter::add(const std::string& name, const void* data, uint64_t size) {
  if (name.size() > kNameLen) {
    const size_t slash = name.rfind('/', kPrefixLen);
    const bool fits = slash != std::string::npos && slash > 0 && name.size() - slash - 1 <= kNameLen;
    if (!fits) {  // a pax record carries the whole path
      std::string record = " path=" + name + "\n";
      size_t len = record.size();
      while (std::to_string(len).size() + record.size() != len) len = std::to_string(len).size() + record.size();
      record = std::to_string(len) + record;
      header("PaxHeaders/" + name.substr(0, kNameLen - std::string("PaxHeaders/").size()), record.size(), 'x');
      write(record.data(), record.size());
      const Block zero{};
      write(zero.data(), round_up(record.size()) - record.size());
    }
  }
  header(name, size, '0');
  write(data, size);
  const Block zero{};
  write(zero.data(), round_up(size) - size);
}

void TarWriter::finish() {
  const Block zero{};
  write(zero.data(), kBlock);
  write(zero.data(), kBlock);
}

}  // namespace vitslim::data
