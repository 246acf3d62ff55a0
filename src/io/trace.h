// HDF5 traces (schema in docs/hdf5-schema.md). A TraceFile is written as "<path>.partial" and
// renamed to <path> by commit(), so a finished trace is never half-written; while the job runs
// the partial file is readable by h5py in SWMR mode (h5py.File(p, "r", libver="latest",
// swmr=True)), and after a crash it holds everything up to the last flush().
// Layout rules from HDF5's SWMR model: every group, dataset and attribute is created before
// start_swmr(); after it, series only grow along their first axis and fixed arrays are written.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vitslim {
class AtomicFile;
}

namespace vitslim::io {

class TraceFile {
 public:
  // Creates <path>.partial with root attributes (program, version, job, config, created).
  // keep_partial_on_error: a trace that is not committed stays as <path>.partial (resumable).
  TraceFile(const std::string& path, const std::map<std::string, std::string>& root_attributes,
            bool keep_partial_on_error = false);
  ~TraceFile();
  TraceFile(const TraceFile&) = delete;
  TraceFile& operator=(const TraceFile&) = delete;

  // Extendable float64 dataset of rows [n, width] (width 0: a 1-D series [n]); intermediate
  // groups are created. `units` and `description` become attributes.
  void create_series(const std::string& name, int64_t width, const std::string& description);
  // Fixed-size float64 array, NaN until written.
  void create_array(const std::string& name, const std::vector<int64_t>& dims, const std::string& description);
  // String attribute on a group or dataset (before start_swmr()).
  void set_attribute(const std::string& object, const std::string& key, const std::string& value);

  void start_swmr();
  void append(const std::string& series, const std::vector<double>& row);
  void write(const std::string& array, const std::vector<double>& values);
  void flush();
  // Closes the file and renames it into place. Without commit() the partial file is removed.
  void commit();
  // Closes the file, complete, and hands its partial file over (to an OutputSet that commits it
  // with the job's other outputs). The TraceFile is unusable afterwards.
  std::unique_ptr<AtomicFile> close();

  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

}  // namespace vitslim::io
