// Reading vitslim HDF5 traces back (resuming a search from its own file). Opens in SWMR-read
// mode, which also reads a file whose writer was killed (its "open for write" flag is set). Every
// HDF5 identifier is owned (io/h5_handle.h) and every call checked; errors name the file and object.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vitslim::io {

class TraceReader {
 public:
  explicit TraceReader(const std::string& path);  // throws Error when not an HDF5 file
  ~TraceReader();
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  bool has(const std::string& object) const;
  // String attribute of an object ("/" for the root); empty when absent.
  std::string attribute(const std::string& object, const std::string& key) const;
  // Whole float64 dataset, row-major; dims receives its shape.
  std::vector<double> read(const std::string& dataset, std::vector<int64_t>* dims = nullptr) const;

 private:
  struct File;  // the open file's H5Handle (hdf5.h stays out of this header)
  std::string path_;
  std::unique_ptr<File> file_;
};

}  // namespace vitslim::io
