// The ONNX file format, written without a protobuf library: the few ONNX messages a ViT graph
// needs (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto,
// metadata) as plain structs, and their protobuf wire encoding (field numbers from onnx.proto).
// Tensor bytes are referenced, not copied, and the encoded file is a list of byte pieces, so a
// 350 MB DeiT-B is written without holding a second copy. Torch-free.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/atomic_file.h"

namespace vitslim::deploy::onnx {

// TensorProto.DataType values.
enum class DataType : int32_t { Float = 1, Int64 = 7 };

struct Attribute {
  std::string name;
  std::variant<int64_t, float, std::vector<int64_t>, std::string> value;
};

struct Node {
  std::string op_type;
  std::vector<std::string> inputs, outputs;
  std::vector<Attribute> attributes;
  std::string name;
};

// A constant of the graph. `data` points at `bytes` bytes that must outlive serialization
// (owned: when the tensor was made for the graph, it keeps the bytes here).
struct Initializer {
  std::string name;
  DataType type = DataType::Float;
  std::vector<int64_t> dims;
  const void* data = nullptr;
  size_t bytes = 0;
  std::string owned;
};

// A graph input or output: element type and shape, a dimension given by value or by name
// (a symbolic dimension such as "batch").
struct ValueInfo {
  std::string name;
  DataType type = DataType::Float;
  std::vector<std::variant<int64_t, std::string>> dims;
};

struct Model {
  int64_t ir_version = 8;  // IR 8 goes with opset 17
  int64_t opset = 17;
  std::string producer_name, producer_version, graph_name;
  std::vector<Node> nodes;
  std::vector<Initializer> initializers;
  std::vector<ValueInfo> inputs, outputs;
  std::vector<std::pair<std::string, std::string>> metadata;
};

// Protobuf caps a message at 2 GiB; larger graphs would need ONNX external data.
inline constexpr uint64_t kMaxProtoBytes = (uint64_t{1} << 31) - 1;

// The encoded model as pieces to write one after the other (core/atomic_file.h); small pieces
// are owned by `storage`, tensor bytes stay where they are. Throws Error above kMaxProtoBytes.
struct Encoded {
  std::deque<std::string> storage;  // deque: the pieces point into its strings
  std::vector<BytePiece> pieces;
  uint64_t size = 0;
};
Encoded encode(const Model& model);

}  // namespace vitslim::deploy::onnx
