// Implements TraceReader (see trace_reader.h) on the HDF5 C API.
#include "io/trace_reader.h"

#include <hdf5.h>

#include "core/error.h"

namespace vitslim::io {

TraceReader::TraceReader(const std::string& path) : path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
  if (file_ < 0) file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  H5Pclose(fapl);
  if (file_ < 0) throw Error(cat(path, ": not a readable HDF5 file"));
}

TraceReader::~TraceReader() {
  if (file_ >= 0) H5Fclose(file_);
}

bool TraceReader::has(const std::string& object) const {
  // Check each path component so that a missing group is not an HDF5 error.
  size_t pos = 0;
  while ((pos = object.find('/', pos + 1)) != std::string::npos) {
    if (H5Lexists(file_, object.substr(0, pos).c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return H5Lexists(file_, object.c_str(), H5P_DEFAULT) > 0;
}

std::string TraceReader::attribute(const std::string& object, const std::string& key) const {
  if (H5Aexists_by_name(file_, object.c_str(), key.c_str(), H5P_DEFAULT) <= 0) return "";
  hid_t attr = H5Aopen_by_name(file_, object.c_str(), key.c_str(), H5P_DEFAULT, H5P_DEFAULT);
  hid_t type = H5Aget_type(attr);
  std::string value;
  if (H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) > 0) {
    char* text = nullptr;  // read with the stored type (variable length, its own character set)
    if (H5Aread(attr, type, &text) >= 0 && text) {
      value = text;
      H5free_memory(text);
    }
  }
  H5Tclose(type);
  H5Aclose(attr);
  return value;
}

std::vector<double> TraceReader::read(const std::string& dataset, std::vector<int64_t>* dims) const {
  if (!has(dataset)) throw Error(cat(path_, ": dataset ", dataset, " missing"));
  hid_t ds = H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT);
  if (ds < 0) throw Error(cat(path_, ": cannot open dataset ", dataset));
  hid_t space = H5Dget_space(ds);
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> d(static_cast<size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space, d.data(), nullptr);
  std::vector<double> values(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
  herr_t rc = values.empty() ? 0 : H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Sclose(space);
  H5Dclose(ds);
  if (rc < 0) throw Error(cat(path_, ": cannot read dataset ", dataset));
  if (dims) dims->assign(d.begin(), d.end());
  return values;
}

}  // namespace vitslim::io
