// A restricted reader for the pickles inside torch.save checkpoints. A pickle is a program; this
// reader never runs anything from the file: it interprets the opcodes that state-dict pickles
// use (protocols 2-5) into plain values - None, bool, int, float, str, bytes, list, tuple, dict
// (OrderedDict too) and tensors rebuilt from their storages. Like torch.load(weights_only=True)
// it names only an allowlist of globals: torch's tensor and storage rebuilds, OrderedDict, the
// argparse.Namespace of DeiT/timm training checkpoints, numpy scalars, arrays and dtypes. Those
// that are not containers or tensors become Opaque values (refused if used as weights); a file
// that names any other global anywhere (os.system, ...) is refused, naming the global and the
// key it sits under. Containers nest at most kMaxPickleNesting deep, a container cannot change
// once it sits inside another (so there are no cycles), and a tree is torn down without
// recursion.
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
  int depth = 0;         // nesting depth of containers (bounded by the reader)
  bool adopted = false;  // placed inside another container: no longer changes
  bool refused = false;  // Global/Opaque: a global outside the allowlist
  size_t offset = 0;     // refused: the byte of the pickle that named it

  PickleNode() = default;
  PickleNode(const PickleNode&) = delete;
  PickleNode& operator=(const PickleNode&) = delete;
  ~PickleNode();  // iterative: a deep tree cannot overflow the stack

  const char* kind_name() const;
};

// Containers in a checkpoint nest a few levels; a deeper file is refused.
inline constexpr int kMaxPickleNesting = 256;

// Returns the bytes of storage `key` ("data/<key>" in the archive), which must hold exactly
// `bytes` bytes (the reader checks this before it allocates anything). A tensor that is its whole
// storage keeps these bytes (no copy).
using StorageBytes = std::shared_ptr<const std::vector<uint8_t>>;
using StorageReader = std::function<StorageBytes(const std::string& key, size_t bytes)>;

// Interprets `size` bytes of pickle; `source` names the file in errors.
PickleValue unpickle(const uint8_t* data, size_t size, const StorageReader& storages, const std::string& source);

}  // namespace vitslim::model
