// Tests the HDF5 trace writer: content read back through the HDF5 C API, SWMR rules, and that an
// uncommitted trace leaves no file behind.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "io/trace.h"
#include "test_util.h"

using vitslim::io::TraceFile;

namespace {

std::vector<double> read_all(const std::string& file, const std::string& dataset, std::vector<hsize_t>* dims) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0);
  hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  hid_t s = H5Dget_space(d);
  int rank = H5Sget_simple_extent_ndims(s);
  dims->resize(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(s, dims->data(), nullptr);
  std::vector<double> values(static_cast<size_t>(H5Sget_simple_extent_npoints(s)));
  H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Sclose(s);
  H5Dclose(d);
  H5Fclose(f);
  return values;
}

}  // namespace

TEST(Trace, SeriesAndArraysRoundTrip) {
  vitslim::test::TempDir dir;
  const std::string path = dir.file("t.h5");
  {
    TraceFile trace(path, {{"program", "vitslim"}, {"config", "[model]\nmodel = x\n"}});
    trace.create_series("/a/rows", 3, "rows");
    trace.create_series("/a/scalar", 0, "scalars");
    trace.create_array("/a/fixed", {2, 2}, "fixed");
    trace.set_attribute("/a", "note", "hello");
    trace.start_swmr();
    EXPECT_THROW(trace.create_series("/late", 1, "too late"), vitslim::Error);
    for (int i = 0; i < 70; ++i) {  // more rows than one chunk
      trace.append("/a/rows", {1.0 * i, 2.0 * i, 3.0 * i});
      trace.append("/a/scalar", {0.5 * i});
      trace.flush();
    }
    EXPECT_THROW(trace.append("/a/rows", {1.0}), vitslim::Error);
    trace.write("/a/fixed", {1, 2, 3, 4});
    EXPECT_TRUE(std::filesystem::exists(path + ".partial"));
    EXPECT_FALSE(std::filesystem::exists(path));
    trace.commit();
  }
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  std::vector<hsize_t> dims;
  auto rows = read_all(path, "/a/rows", &dims);
  EXPECT_EQ(dims, (std::vector<hsize_t>{70, 3}));
  EXPECT_EQ(rows[69 * 3 + 2], 3.0 * 69);
  auto fixed = read_all(path, "/a/fixed", &dims);
  EXPECT_EQ(fixed, (std::vector<double>{1, 2, 3, 4}));
  read_all(path, "/a/scalar", &dims);
  EXPECT_EQ(dims, (std::vector<hsize_t>{70}));
}

TEST(Trace, UncommittedLeavesNothingAndBadPathsFail) {
  vitslim::test::TempDir dir;
  {
    TraceFile trace(dir.file("t.h5"), {});
    trace.create_array("/x", {1}, "x");
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  EXPECT_THROW(TraceFile(dir.file("missing/t.h5"), {}), vitslim::Error);
}
