// A reader for the zip archives of torch.save (and any zip of stored or deflated members, zip64
// included), written for hostile files: every size in the central directory is checked against
// the file before anything is allocated, a deflated member may not claim more than deflate's
// largest ratio, names must be unique and match their local headers, and the CRC-32 of every
// member read is verified, so a flipped byte is an error and not a silently changed weight.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace vitslim::model {

class ZipReader {
 public:
  // Reads the directory of `path`; errors start with `source` (e.g. "weights f.pth").
  ZipReader(const std::string& path, std::string source);

  struct Member {
    uint64_t data_offset = 0;  // of the (compressed) bytes in the file
    uint64_t compressed = 0;
    uint64_t size = 0;  // uncompressed
    uint32_t crc = 0;
    uint16_t method = 0;  // 0 stored, 8 deflate
  };

  bool has(const std::string& name) const { return members_.count(name) != 0; }
  const std::map<std::string, Member>& members() const { return members_; }
  // The member's bytes, CRC-checked. Refused before allocating when it does not hold exactly
  // `expected` bytes / more than `limit` bytes.
  std::vector<uint8_t> read_exact(const std::string& name, uint64_t expected);
  std::vector<uint8_t> read_at_most(const std::string& name, uint64_t limit);

 private:
  [[noreturn]] void fail(const std::string& what) const;
  std::vector<uint8_t> read_bytes(uint64_t offset, uint64_t n);
  void read_directory();
  void add_member(const uint8_t* entry, size_t available, size_t& consumed);
  const Member& find(const std::string& name) const;
  std::vector<uint8_t> extract(const std::string& name, const Member& m);

  std::string source_;
  std::ifstream file_;
  uint64_t file_size_ = 0;
  std::map<std::string, Member> members_;
};

}  // namespace vitslim::model
