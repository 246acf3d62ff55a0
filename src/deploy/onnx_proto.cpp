// Implements the protobuf wire encoding of the ONNX messages (see onnx_proto.h). Field numbers
// are onnx.proto's; repeated scalars are written unpacked (onnx.proto is proto2).
#include "deploy/onnx_proto.h"

#include <cstring>
#include <string_view>

#include "core/error.h"

namespace vitslim::deploy::onnx {
namespace {

enum WireType : uint32_t { kVarint = 0, kLengthDelimited = 2, kFixed32 = 5 };

// AttributeProto.AttributeType values.
enum AttributeType : int64_t { kAttrFloat = 1, kAttrInt = 2, kAttrString = 3, kAttrInts = 7 };

// A message under construction: small fields accumulate in a buffer, tensor bytes and nested
// messages are appended as parts, so nothing large is copied.
class Message {
 public:
  void varint(uint32_t field, uint64_t value) {
    tag(field, kVarint);
    put_varint(value);
  }
  void float32(uint32_t field, float value) {
    tag(field, kFixed32);
    char bytes[sizeof(float)];
    std::memcpy(bytes, &value, sizeof bytes);  // little-endian, as protobuf wants
    buffer_.append(bytes, sizeof bytes);
  }
  void bytes(uint32_t field, std::string_view text) {
    tag(field, kLengthDelimited);
    put_varint(text.size());
    buffer_.append(text);
  }
  void external(uint32_t field, const void* data, size_t size) {
    tag(field, kLengthDelimited);
    put_varint(size);
    flush();
    parts_.emplace_back(BytePiece{data, size});
    size_ += size;
  }
  void message(uint32_t field, Message&& child) {
    child.flush();
    tag(field, kLengthDelimited);
    put_varint(child.size_);
    flush();
    for (auto& part : child.parts_) parts_.push_back(std::move(part));
    size_ += child.size_;
  }
  uint64_t size() const { return size_ + buffer_.size(); }

  void finish(Encoded& out) {
    flush();
    for (auto& part : parts_) {
      if (auto* text = std::get_if<std::string>(&part)) {
        out.storage.push_back(std::move(*text));
        out.pieces.push_back({out.storage.back().data(), out.storage.back().size()});
      } else {
        out.pieces.push_back(std::get<BytePiece>(part));
      }
    }
    out.size = size_;
  }

 private:
  void tag(uint32_t field, WireType type) { put_varint((uint64_t{field} << 3) | type); }
  void put_varint(uint64_t v) {
    constexpr uint64_t kLow7 = 0x7f, kMore = 0x80;
    while (v > kLow7) {
      buffer_.push_back(static_cast<char>((v & kLow7) | kMore));
      v >>= 7;
    }
    buffer_.push_back(static_cast<char>(v));
  }
  void flush() {
    if (buffer_.empty()) return;
    size_ += buffer_.size();
    parts_.emplace_back(std::move(buffer_));
    buffer_.clear();
  }

  std::string buffer_;
  std::vector<std::variant<std::string, BytePiece>> parts_;
  uint64_t size_ = 0;  // bytes in parts_
};

Message attribute(const Attribute& a) {
  Message m;  // AttributeProto
  m.bytes(1, a.name);
  if (const auto* i = std::get_if<int64_t>(&a.value)) {
    m.varint(3, static_cast<uint64_t>(*i));
    m.varint(20, kAttrInt);
  } else if (const auto* f = std::get_if<float>(&a.value)) {
    m.float32(2, *f);
    m.varint(20, kAttrFloat);
  } else if (const auto* ints = std::get_if<std::vector<int64_t>>(&a.value)) {
    for (int64_t v : *ints) m.varint(8, static_cast<uint64_t>(v));
    m.varint(20, kAttrInts);
  } else {
    m.bytes(4, std::get<std::string>(a.value));
    m.varint(20, kAttrString);
  }
  return m;
}

Message node(const Node& n) {
  Message m;  // NodeProto
  for (const auto& in : n.inputs) m.bytes(1, in);
  for (const auto& out : n.outputs) m.bytes(2, out);
  if (!n.name.empty()) m.bytes(3, n.name);
  m.bytes(4, n.op_type);
  for (const auto& a : n.attributes) m.message(5, attribute(a));
  return m;
}

Message tensor(const Initializer& t) {
  Message m;  // TensorProto
  for (int64_t d : t.dims) m.varint(1, static_cast<uint64_t>(d));
  m.varint(2, static_cast<uint64_t>(t.type));
  m.bytes(8, t.name);
  if (t.data) {
    m.external(9, t.data, t.bytes);
  } else {
    m.bytes(9, t.owned);
  }
  return m;
}

Message value_info(const ValueInfo& v) {
  Message shape;  // TensorShapeProto
  for (const auto& d : v.dims) {
    Message dim;  // TensorShapeProto.Dimension
    if (const auto* value = std::get_if<int64_t>(&d)) {
      dim.varint(1, static_cast<uint64_t>(*value));
    } else {
      dim.bytes(2, std::get<std::string>(d));
    }
    shape.message(1, std::move(dim));
  }
  Message tensor_type;  // TypeProto.Tensor
  tensor_type.varint(1, static_cast<uint64_t>(v.type));
  tensor_type.message(2, std::move(shape));
  Message type;  // TypeProto
  type.message(1, std::move(tensor_type));
  Message m;  // ValueInfoProto
  m.bytes(1, v.name);
  m.message(2, std::move(type));
  return m;
}

Message graph(const Model& model) {
  Message g;  // GraphProto
  for (const auto& n : model.nodes) g.message(1, node(n));
  g.bytes(2, model.graph_name);
  for (const auto& t : model.initializers) g.message(5, tensor(t));
  for (const auto& v : model.inputs) g.message(11, value_info(v));
  for (const auto& v : model.outputs) g.message(12, value_info(v));
  return g;
}

}  // namespace

Encoded encode(const Model& model) {
  Message m;  // ModelProto
  m.varint(1, static_cast<uint64_t>(model.ir_version));
  m.bytes(2, model.producer_name);
  m.bytes(3, model.producer_version);
  m.message(7, graph(model));
  Message opset;  // OperatorSetIdProto, the default domain
  opset.bytes(1, "");
  opset.varint(2, static_cast<uint64_t>(model.opset));
  m.message(8, std::move(opset));
  for (const auto& [key, value] : model.metadata) {
    Message entry;  // StringStringEntryProto
    entry.bytes(1, key);
    entry.bytes(2, value);
    m.message(14, std::move(entry));
  }
  if (m.size() > kMaxProtoBytes) {
    throw Error(cat("ONNX export: the model needs ", m.size(), " bytes, over protobuf's 2 GiB limit for one file"));
  }
  Encoded out;
  m.finish(out);
  return out;
}

}  // namespace vitslim::deploy::onnx
