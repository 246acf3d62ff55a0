// Tar archives as WebDataset shards use them: the member table read from the headers alone (the
// data is skipped, so listing a 1 GB shard reads a few hundred KB), and a writer of POSIX ustar
// members (pax extended headers for long names), deterministic byte for byte (mode 0444, owner
// 0, mtime 0). The reader follows what Python's tarfile writes: ustar and GNU headers, pax
// extended ('x') and global ('g') headers, GNU long names ('L'); directories and links are
// skipped. A damaged archive (bad header checksum, a member running past the end of the file,
// a partial header) is reported with the members before the damage, so --bad-images skip can
// keep them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace vitslim::data {

inline constexpr int64_t kTarBlock = 512;

struct TarMember {
  std::string name;     // path inside the archive
  uint64_t offset = 0;  // of the data, from the start of the file
  uint64_t size = 0;
  std::string small;  // the data of a member of at most one block (labels, metadata): read with its header
};

struct TarListing {
  std::vector<TarMember> members;  // regular files, in archive order
  std::string damage;              // empty: the archive is whole; else what is wrong, and where
  uint64_t file_size = 0;
};

// Reads the member table of the tar file at `path`. An unreadable file is an Error; a damaged
// archive is a listing with `damage` set.
TarListing list_tar(const std::string& path);

// Appends members to an open file; finish() writes the end-of-archive blocks.
class TarWriter {
 public:
  explicit TarWriter(std::FILE* out, std::string what) : out_(out), what_(std::move(what)) {}
  void add(const std::string& name, const void* data, uint64_t size);
  void finish();
  uint64_t bytes_written() const { return written_; }

 private:
  void write(const void* data, uint64_t size);
  void header(const std::string& name, uint64_t size, char type);

  std::FILE* out_;
  std::string what_;
  uint64_t written_ = 0;
};

}  // namespace vitslim::data
