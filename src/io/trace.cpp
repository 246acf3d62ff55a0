// Implements HDF5 traces (see trace.h) on the HDF5 C API; every hid_t is owned by an H5Handle
// (io/h5_handle.h) and every call is checked, errors naming the file and object.
#include "io/trace.h"

#include <cmath>
#include <limits>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "io/h5_handle.h"

namespace vitslim::io {
namespace {

constexpr hsize_t kSeriesChunkRows = 64;

H5Handle string_type() {
  H5Handle t(checked(H5Tcopy(H5T_C_S1), "H5Tcopy"), H5Tclose);
  checked_status(H5Tset_size(t.get(), H5T_VARIABLE), "H5Tset_size");
  checked_status(H5Tset_cset(t.get(), H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

void write_string_attribute(hid_t object, const std::string& key, const std::string& value, const std::string& where) {
  H5Handle type = string_type();
  H5Handle space(checked(H5Screate(H5S_SCALAR), "H5Screate"), H5Sclose);
  H5Handle attr(checked(H5Acreate2(object, key.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                        cat(where, ": cannot create attribute ", key)),
                H5Aclose);
  const char* text = value.c_str();
  checked_status(H5Awrite(attr.get(), type.get(), &text), cat(where, ": cannot write attribute ", key));
}

}  // namespace

struct TraceFile::Impl {
  std::string partial;
  std::unique_ptr<AtomicFile> atomic;
  H5Handle file;
  struct Series {
    H5Handle dataset;
    int64_t width;
    hsize_t rows = 0;
  };
  std::unordered_map<std::string, Series> series;
  std::unordered_map<std::string, H5Handle> arrays;
  bool swmr = false;

  // A float64 dataset (intermediate groups created) with its description attribute.
  H5Handle create_dataset(const std::string& path, const std::string& name, hid_t space, hid_t dcpl,
                          const std::string& description) {
    H5Handle lcpl(checked(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate"), H5Pclose);
    checked_status(H5Pset_create_intermediate_group(lcpl.get(), 1), "H5Pset_create_intermediate_group");
    H5Handle ds(checked(H5Dcreate2(file.get(), name.c_str(), H5T_NATIVE_DOUBLE, space, lcpl.get(), dcpl, H5P_DEFAULT),
                        cat("trace ", path, ": cannot create dataset ", name)),
                H5Dclose);
    write_string_attribute(ds.get(), "description", description, cat("trace ", path, " ", name));
    return ds;
  }
};

TraceFile::TraceFile(const std::string& path, const std::map<std::string, std::string>& root_attributes,
                     bool keep_partial_on_error)
    : impl_(std::make_unique<Impl>()), path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by us, with context
  impl_->atomic = std::make_unique<AtomicFile>(path, keep_partial_on_error);
  impl_->partial = impl_->atomic->partial_path();
  H5Handle fapl(checked(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate"), H5Pclose);
  checked_status(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST), "H5Pset_libver_bounds");
  impl_->file = H5Handle(checked(H5Fcreate(impl_->partial.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()),
                                 cat("trace ", path, ": cannot create ", impl_->partial)),
                         H5Fclose);
  for (const auto& [key, value] : root_attributes) {
    write_string_attribute(impl_->file.get(), key, value, cat("trace ", path));
  }
}

TraceFile::~TraceFile() = default;  // handles close; an uncommitted AtomicFile removes the partial

void TraceFile::create_series(const std::string& name, int64_t width, const std::string& description) {
  if (impl_->swmr) throw Error(cat("trace ", path_, ": series ", name, " created after start_swmr()"));
  const int rank = width > 0 ? 2 : 1;
  hsize_t dims[2] = {0, static_cast<hsize_t>(width)};
  hsize_t max_dims[2] = {H5S_UNLIMITED, static_cast<hsize_t>(width)};
  hsize_t chunk[2] = {kSeriesChunkRows, static_cast<hsize_t>(std::max<int64_t>(width, 1))};
  H5Handle space(checked(H5Screate_simple(rank, dims, max_dims), "H5Screate_simple"), H5Sclose);
  H5Handle dcpl(checked(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"), H5Pclose);
  checked_status(H5Pset_chunk(dcpl.get(), rank, chunk), "H5Pset_chunk");
  impl_->series[name] =
      Impl::Series{impl_->create_dataset(path_, name, space.get(), dcpl.get(), description), width, 0};
}

void TraceFile::create_array(const std::string& name, const std::vector<int64_t>& dims,
                             const std::string& description) {
  if (impl_->swmr) throw Error(cat("trace ", path_, ": array ", name, " created after start_swmr()"));
  std::vector<hsize_t> d(dims.begin(), dims.end());
  H5Handle space(checked(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), "H5Screate_simple"),
                 H5Sclose);
  H5Handle dcpl(checked(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"), H5Pclose);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  checked_status(H5Pset_fill_value(dcpl.get(), H5T_NATIVE_DOUBLE, &nan), "H5Pset_fill_value");
  impl_->arrays[name] = impl_->create_dataset(path_, name, space.get(), dcpl.get(), description);
}

void TraceFile::set_attribute(const std::string& object, const std::string& key, const std::string& value) {
  if (impl_->swmr) throw Error(cat("trace ", path_, ": attribute ", key, " set after start_swmr()"));
  H5Handle obj(
      checked(H5Oopen(impl_->file.get(), object.c_str(), H5P_DEFAULT), cat("trace ", path_, ": no object ", object)),
      H5Oclose);
  write_string_attribute(obj.get(), key, value, cat("trace ", path_, " ", object));
}

void TraceFile::start_swmr() {
  checked_status(H5Fstart_swmr_write(impl_->file.get()), cat("trace ", path_, ": cannot start SWMR writing"));
  impl_->swmr = true;
}

void TraceFile::append(const std::string& name, const std::vector<double>& row) {
  auto it = impl_->series.find(name);
  if (it == impl_->series.end()) throw Error(cat("trace ", path_, ": no series ", name));
  auto& s = it->second;
  const hsize_t width = static_cast<hsize_t>(std::max<int64_t>(s.width, 1));
  if (row.size() != width) throw Error(cat("trace ", path_, ": row of ", row.size(), " values for ", name));
  const int rank = s.width > 0 ? 2 : 1;
  hsize_t new_dims[2] = {s.rows + 1, width};
  checked_status(H5Dset_extent(s.dataset.get(), new_dims), cat("trace ", path_, ": cannot extend ", name));
  H5Handle file_space(checked(H5Dget_space(s.dataset.get()), "H5Dget_space"), H5Sclose);
  hsize_t start[2] = {s.rows, 0};
  hsize_t count[2] = {1, width};
  checked_status(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
                 "H5Sselect_hyperslab");
  H5Handle mem_space(checked(H5Screate_simple(rank, count, nullptr), "H5Screate_simple"), H5Sclose);
  checked_status(
      H5Dwrite(s.dataset.get(), H5T_NATIVE_DOUBLE, mem_space.get(), file_space.get(), H5P_DEFAULT, row.data()),
      cat("trace ", path_, ": cannot write ", name));
  s.rows += 1;
}

void TraceFile::write(const std::string& name, const std::vector<double>& values) {
  auto it = impl_->arrays.find(name);
  if (it == impl_->arrays.end()) throw Error(cat("trace ", path_, ": no array ", name));
  H5Handle space(checked(H5Dget_space(it->second.get()), "H5Dget_space"), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n != static_cast<hssize_t>(values.size())) {
    throw Error(cat("trace ", path_, ": ", values.size(), " values for array ", name, " of ", n));
  }
  checked_status(H5Dwrite(it->second.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
                 cat("trace ", path_, ": cannot write ", name));
}

void TraceFile::flush() {
  checked_status(H5Fflush(impl_->file.get(), H5F_SCOPE_GLOBAL), cat("trace ", path_, ": flush failed"));
}

std::unique_ptr<AtomicFile> TraceFile::close() {
  if (!impl_->atomic) throw Error(cat("trace ", path_, ": already closed"));
  flush();
  impl_->series.clear();
  impl_->arrays.clear();
  impl_->file.reset();
  return std::move(impl_->atomic);
}

void TraceFile::commit() { close()->commit(); }

}  // namespace vitslim::io
