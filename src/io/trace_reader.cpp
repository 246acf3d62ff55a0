// Implements TraceReader (see trace_reader.h) on the HDF5 C API.
#include "io/trace_reader.h"

#include <algorithm>

#include "core/error.h"
#include "io/h5_handle.h"

namespace vitslim::io {

struct TraceReader::File {
  H5Handle handle;
};

TraceReader::TraceReader(const std::string& path) : path_(path), file_(std::make_unique<File>()) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  H5Handle fapl(checked(H5Pcreate(H5P_FILE_ACCESS), cat(path, ": H5Pcreate")), H5Pclose);
  checked_status(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST),
                 cat(path, ": H5Pset_libver_bounds"));
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get());
  if (file < 0) file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw Error(cat(path, ": not a readable HDF5 file"));
  file_->handle = H5Handle(file, H5Fclose);
}

TraceReader::~TraceReader() = default;

bool TraceReader::has(const std::string& object) const {
  const hid_t file = file_->handle.get();
  // Check each path component so that a missing group is not an HDF5 error.
  size_t pos = 0;
  while ((pos = object.find('/', pos + 1)) != std::string::npos) {
    if (H5Lexists(file, object.substr(0, pos).c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return H5Lexists(file, object.c_str(), H5P_DEFAULT) > 0;
}

std::string TraceReader::attribute(const std::string& object, const std::string& key) const {
  const hid_t file = file_->handle.get();
  if (H5Aexists_by_name(file, object.c_str(), key.c_str(), H5P_DEFAULT) <= 0) return "";
  const std::string where = cat(path_, ": attribute ", key, " of ", object);
  H5Handle attr(checked(H5Aopen_by_name(file, object.c_str(), key.c_str(), H5P_DEFAULT, H5P_DEFAULT), where), H5Aclose);
  H5Handle type(checked(H5Aget_type(attr.get()), where), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) <= 0) return "";
  char* text = nullptr;  // read with the stored type (variable length, its own character set)
  checked_status(H5Aread(attr.get(), type.get(), &text), cat(where, ": cannot read"));
  std::string value = text ? text : "";
  if (text) H5free_memory(text);
  return value;
}

std::vector<double> TraceReader::read(const std::string& dataset, std::vector<int64_t>* dims) const {
  if (!has(dataset)) throw Error(cat(path_, ": dataset ", dataset, " missing"));
  const std::string where = cat(path_, ": dataset ", dataset);
  H5Handle ds(checked(H5Dopen2(file_->handle.get(), dataset.c_str(), H5P_DEFAULT),
                      cat(path_, ": cannot open dataset ", dataset)),
              H5Dclose);
  H5Handle space(checked(H5Dget_space(ds.get()), cat(where, ": no dataspace")), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) throw Error(cat(where, ": unreadable shape"));
  std::vector<hsize_t> d(static_cast<size_t>(rank));
  checked_status(H5Sget_simple_extent_dims(space.get(), d.data(), nullptr), cat(where, ": unreadable shape"));
  const hssize_t points = H5Sget_simple_extent_npoints(space.get());
  if (points < 0) throw Error(cat(where, ": unreadable size"));
  std::vector<double> values(static_cast<size_t>(points));
  if (!values.empty()) {
    checked_status(H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
                   cat(path_, ": cannot read dataset ", dataset));
  }
  if (dims) dims->assign(d.begin(), d.end());
  return values;
}

}  // namespace vitslim::io
