// Shared helpers of the unit tests: where fixtures and generated test data live, temp dirs.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "core/error.h"

namespace vitslim::test {

// Committed fixtures (tests/fixtures).
inline std::string fixture(const std::string& name) { return std::string(VITSLIM_TEST_FIXTURES) + "/" + name; }

// Files written by scripts/make_test_checkpoints.py (the ctest fixture `checkpoints`).
inline std::string test_data(const std::string& name) { return std::string(VITSLIM_TEST_DATA) + "/" + name; }

// A fresh empty directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "vitslim_test_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The message of the vitslim::Error that `f` throws; "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace vitslim::test
