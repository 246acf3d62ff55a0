// A restricted reader for the pickles inside torch.save checkpoints. A pickle is a program; this
// reader never runs anything from the file: it interprets the opcodes that state-dict pickles
// use (protocols 2-5) into plain values - None, bool, int, float, str, bytes, list, tuple, dict
// (OrderedDict too) and tensors rebuilt from their storages - and turns every other global
// (argparse.Namespace, numpy scalars, ...) into an Opaque value that is refused only if used.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace vitslim::model {

struct PickleNode;
using PickleValue = std::shared_ptr<PickleNode>;

struct PickleNode {
  enum class Kind { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, Tensor, Global, Storage, Opaque };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;                                          // String, Bytes, Global/Opaque name, Storage key
  std::vector<PickleValue> items;                         // List, Tuple
  std::vector<std::pair<PickleValue, PickleValue>> dict;  // Dict, in insertion order
  at::Tensor tensor;                                      // Tensor
  int64_t storage_dtype = -1;                             // Storage: c10::ScalarType as int
  int64_t storage_numel = 0;
  int depth = 0;  // nesting depth of containers (bounded by the reader)

  const char* kind_name() const;
};

// Returns the bytes of storage `key` ("data/<key>" in the archive).
using StorageReader = std::function<std::pair<const uint8_t*, size_t>(const std::string& key)>;

// Interprets `size` bytes of pickle; `source` names the file in errors.
PickleValue unpickle(const uint8_t* data, size_t size, const StorageReader& storages, const std::string& source);

}  // namespace vitslim::model
