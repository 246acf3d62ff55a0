// Implements the zip reader (see zip_reader.h): the end-of-central-directory record (zip64 when
// the classic fields overflow), the central directory with its zip64 extra fields, each member's
// local header, then stored or raw-deflate data through zlib with the CRC-32 checked.
#include "model/weights/zip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace vitslim::model {
namespace {

constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kEnd64Signature = 0x06064b50;
constexpr uint32_t kEnd64LocatorSignature = 0x07064b50;
constexpr uint32_t kCentralSignature = 0x02014b50;
constexpr uint32_t kLocalSignature = 0x04034b50;
constexpr size_t kEndBytes = 22;
constexpr size_t kEnd64Bytes = 56;
constexpr size_t kEnd64LocatorBytes = 20;
constexpr size_t kCentralBytes = 46;
constexpr size_t kLocalBytes = 30;
constexpr size_t kMaxComment = 0xFFFF;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kEncryptedFlag = 0x0001;
constexpr uint16_t kStored = 0;
constexpr uint16_t kDeflated = 8;
constexpr uint64_t kMaxDeflateRatio = 1032;  // deflate cannot expand 1 byte into more than this
constexpr uint32_t kMask32 = 0xFFFFFFFF;
constexpr uint16_t kMask16 = 0xFFFF;
constexpr size_t kInflateChunk = size_t{1} << 20;

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) { return uint32_t{le16(p)} | (uint32_t{le16(p + 2)} << 16); }
uint64_t le64(const uint8_t* p) { return uint64_t{le32(p)} | (uint64_t{le32(p + 4)} << 32); }

uint32_t crc_of(const std::vector<uint8_t>& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const uint8_t* p = bytes.data();
  for (size_t left = bytes.size(); left > 0;) {
    const auto n = static_cast<uInt>(std::min<size_t>(left, std::numeric_limits<uInt>::max()));
    crc = crc32(crc, p, n);
    p += n;
    left -= n;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

ZipReader::ZipReader(const std::string& path, std::string source)
    : source_(std::move(source)), file_(path, std::ios::binary | std::ios::ate) {
  if (!file_) throw Error(cat(source_, ": cannot open file"));
  const std::streamoff end = file_.tellg();
  if (end < 0) fail("cannot read the file size");
  file_size_ = static_cast<uint64_t>(end);
  read_directory();
}

void ZipReader::fail(const std::string& what) const {
  throw Error(cat(source_, ": corrupt or truncated archive (", what, ")"));
}

std::vector<uint8_t> ZipReader::read_bytes(uint64_t offset, uint64_t n) {
  if (offset > file_size_ || n > file_size_ - offset) fail(cat(n, " bytes at ", offset, " lie beyond the file's end"));
  std::vector<uint8_t> out(static_cast<size_t>(n));
  file_.clear();
  file_.seekg(static_cast<std::streamoff>(offset));
  if (!file_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n))) fail("read error");
  return out;
}

void ZipReader::read_directory() {
  // The end record: the last signature within the final 22 + 64 KiB bytes.
  const uint64_t tail_size = std::min<uint64_t>(file_size_, kEndBytes + kMaxComment);
  if (tail_size < kEndBytes) fail("too short for a zip archive");
  const auto tail = read_bytes(file_size_ - tail_size, tail_size);
  size_t at = tail.size() - kEndBytes + 1;
  do {
    --at;
  } while (at > 0 && le32(&tail[at]) != kEndSignature);
  if (le32(&tail[at]) != kEndSignature) fail("no end-of-directory record");
  const uint8_t* e = &tail[at];
  if (at + kEndBytes + le16(e + 20) > tail.size()) fail("end record's comment runs past the file");
  uint64_t entries = le16(e + 10), cd_size = le32(e + 12), cd_offset = le32(e + 16);
  if (entries == kMask16 || cd_size == kMask32 || cd_offset == kMask32) {  // zip64
    if (at < kEnd64LocatorBytes || le32(&tail[at - kEnd64LocatorBytes]) != kEnd64LocatorSignature)
      fail("zip64 fields without a zip64 locator");
    const auto record = read_bytes(le64(&tail[at - kEnd64LocatorBytes + 8]), kEnd64Bytes);
    if (le32(record.data()) != kEnd64Signature) fail("bad zip64 end record");
    entries = le64(&record[32]);
    cd_size = le64(&record[40]);
    cd_offset = le64(&record[48]);
  }
  if (entries > cd_size / kCentralBytes) fail(cat(entries, " entries cannot fit a ", cd_size, "-byte directory"));
  const auto directory = read_bytes(cd_offset, cd_size);
  size_t pos = 0;
  for (uint64_t k = 0; k < entries; ++k) {
    size_t consumed = 0;
    add_member(directory.data() + pos, directory.size() - pos, consumed);
    pos += consumed;
  }
}

void ZipReader::add_member(const uint8_t* c, size_t available, size_t& consumed) {
  if (available < kCentralBytes || le32(c) != kCentralSignature) fail("bad central directory entry");
  const uint16_t flags = le16(c + 8), method = le16(c + 10);
  const size_t name_len = le16(c + 28), extra_len = le16(c + 30), comment_len = le16(c + 32);
  consumed = kCentralBytes + name_len + extra_len + comment_len;
  if (consumed > available) fail("central directory entry runs past the directory");
  std::string name(reinterpret_cast<const char*>(c + kCentralBytes), name_len);
  if (flags & kEncryptedFlag) fail(cat("member ", name, " is encrypted"));
  if (method != kStored && method != kDeflated) fail(cat("member ", name, " uses compression method ", method));
  Member m;
  m.method = method;
  m.crc = le32(c + 16);
  m.compressed = le32(c + 20);
  m.size = le32(c + 24);
  uint64_t local = le32(c + 42);
  // The zip64 extra field holds, in this order, whichever of the three overflowed.
  const uint8_t* x = c + kCentralBytes + name_len;
  for (size_t off = 0; off + 4 <= extra_len;) {
    const uint16_t id = le16(x + off), len = le16(x + off + 2);
    if (off + 4 + len > extra_len) fail(cat("member ", name, " has a bad extra field"));
    if (id == kZip64ExtraId) {
      size_t q = off + 4;
      for (uint64_t* field : {&m.size, &m.compressed, &local}) {
        if (*field != kMask32) continue;
        if (q + 8 > off + 4 + len) fail(cat("member ", name, " has a short zip64 field"));
        *field = le64(x + q);
        q += 8;
      }
    }
    off += 4 + len;
  }
  const auto header = read_bytes(local, kLocalBytes);
  if (le32(header.data()) != kLocalSignature) fail(cat("member ", name, " has no local header"));
  const uint64_t data = local + kLocalBytes + le16(&header[26]) + le16(&header[28]);
  if (read_bytes(local + kLocalBytes, le16(&header[26])) != std::vector<uint8_t>(name.begin(), name.end()))
    fail(cat("member ", name, ": local header names another file"));
  if (data > file_size_ || m.compressed > file_size_ - data) fail(cat("member ", name, " runs past the file's end"));
  if (method == kStored && m.compressed != m.size) fail(cat("stored member ", name, " has two sizes"));
  if (method == kDeflated && m.size / kMaxDeflateRatio > m.compressed)
    fail(cat("member ", name, " claims ", m.size, " bytes from ", m.compressed, " (more than deflate can hold)"));
  m.data_offset = data;
  if (!members_.emplace(std::move(name), m).second) fail("two members with one name");
}

const ZipReader::Member& ZipReader::find(const std::string& name) const {
  auto it = members_.find(name);
  if (it == members_.end()) throw Error(cat(source_, ": record ", name, " is missing"));
  return it->second;
}

std::vector<uint8_t> ZipReader::read_exact(const std::string& name, uint64_t expected) {
  const Member& m = find(name);
  if (m.size != expected)
    throw Error(cat(source_, ": record ", name, " holds ", m.size, " bytes, expected ", expected));
  return extract(name, m);
}

std::vector<uint8_t> ZipReader::read_at_most(const std::string& name, uint64_t limit) {
  const Member& m = find(name);
  if (m.size > limit) throw Error(cat(source_, ": record ", name, " holds ", m.size, " bytes, more than ", limit));
  return extract(name, m);
}

std::vector<uint8_t> ZipReader::extract(const std::string& name, const Member& m) {
  std::vector<uint8_t> out;
  if (m.method == kStored) {
    out = read_bytes(m.data_offset, m.size);
  } else {
    out.resize(static_cast<size_t>(m.size));
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) fail("zlib cannot start");
    struct End {
      z_stream* z;
      ~End() { inflateEnd(z); }
    } end{&z};
    size_t produced = 0;
    int status = Z_OK;
    for (uint64_t done = 0; done < m.compressed && status != Z_STREAM_END;) {
      const uint64_t n = std::min<uint64_t>(kInflateChunk, m.compressed - done);
      auto in = read_bytes(m.data_offset + done, n);
      done += n;
      z.next_in = in.data();
      z.avail_in = static_cast<uInt>(n);
      while (z.avail_in > 0 && status != Z_STREAM_END) {
        // One spare byte beyond the declared size: a member that inflates to more is caught.
        uint8_t spare = 0;
        const bool full = produced == out.size();
        z.next_out = full ? &spare : out.data() + produced;
        z.avail_out = full ? 1 : static_cast<uInt>(std::min<size_t>(out.size() - produced, kInflateChunk));
        const uInt before = z.avail_out;
        status = inflate(&z, Z_NO_FLUSH);
        if (status != Z_OK && status != Z_STREAM_END) fail(cat("member ", name, ": bad deflate data"));
        if (full && z.avail_out != before) fail(cat("member ", name, " inflates to more than its ", m.size, " bytes"));
        produced += before - z.avail_out;
      }
    }
    if (status != Z_STREAM_END || produced != out.size())
      fail(cat("member ", name, " inflates to ", produced, " bytes, not ", m.size));
  }
  if (crc_of(out) != m.crc) fail(cat("CRC-32 of ", name, " does not match: the file is damaged"));
  return out;
}

}  // namespace vitslim::model
