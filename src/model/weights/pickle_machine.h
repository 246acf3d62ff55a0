// The pickle machine behind model/weights/pickle.h, shared by its two source files: pickle.cpp (the
// objects: globals, REDUCE, storages, tensors) and pickle_ops.cpp (the opcode groups). Internal to
// the model layer: include pickle.h instead.
#pragma once

#include <ATen/ATen.h>

#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "model/weights/pickle.h"

namespace vitslim::model::pickle_detail {

using Kind = PickleNode::Kind;

inline PickleValue make(Kind kind) {
  auto v = std::make_shared<PickleNode>();
  v->kind = kind;
  return v;
}

inline PickleValue make_int(int64_t i) {
  auto v = make(Kind::Int);
  v->i = i;
  return v;
}

inline PickleValue make_named(Kind kind, std::string name) {
  auto v = make(kind);
  v->s = std::move(name);
  return v;
}

// Storage classes torch.save names, with their element type.
inline const std::map<std::string, c10::ScalarType>& storage_types() {
  static const std::map<std::string, c10::ScalarType> kTypes = {
      {"torch.FloatStorage", c10::kFloat}, {"torch.DoubleStorage", c10::kDouble},
      {"torch.HalfStorage", c10::kHalf},   {"torch.BFloat16Storage", c10::kBFloat16},
      {"torch.LongStorage", c10::kLong},   {"torch.IntStorage", c10::kInt},
      {"torch.ShortStorage", c10::kShort}, {"torch.CharStorage", c10::kChar},
      {"torch.ByteStorage", c10::kByte},   {"torch.BoolStorage", c10::kBool},
  };
  return kTypes;
}

class Machine {
 public:
  Machine(const uint8_t* data, size_t size, const StorageReader& storages, const std::string& source)
      : p_(data), end_(data + size), begin_(data), storages_(storages), source_(source) {}

  PickleValue run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(cat(source_, ": unreadable pickle at byte ", offset_, ": ", what));
  }
  const uint8_t* take(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) fail("unexpected end of data (truncated file?)");
    const uint8_t* at = p_;
    p_ += n;
    return at;
  }
  template <typename T>
  T read_le() {
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));  // little-endian host (x86_64, aarch64)
    return v;
  }
  std::string read_line() {
    const uint8_t* start = p_;
    while (p_ < end_ && *p_ != '\n') ++p_;
    if (p_ >= end_) fail("unterminated text line");
    std::string s(reinterpret_cast<const char*>(start), p_ - start);
    ++p_;
    return s;
  }
  std::string read_string(size_t n) {
    const uint8_t* at = take(n);
    return std::string(reinterpret_cast<const char*>(at), n);
  }
  PickleValue pop() {
    if (stack_.size() <= mark_floor()) fail("stack underflow");
    PickleValue v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PickleValue& top() {
    if (stack_.size() <= mark_floor()) fail("stack underflow");
    return stack_.back();
  }
  size_t mark_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<PickleValue> pop_to_mark() {
    if (marks_.empty()) fail("missing MARK");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PickleValue> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void memo_put(uint64_t index) { memo_[index] = top(); }
  PickleValue memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail(cat("memo entry ", index, " missing"));
    return it->second;
  }
  // Every path that puts a value inside a container goes through nest(): the container records
  // how deeply it nests (bounded), and the child is sealed, so a depth once checked stays true
  // and no container can come to hold itself.
  void nest(PickleValue& container, const PickleValue& child) {
    if (container == child) fail(cat("a ", container->kind_name(), " that contains itself"));
    child->adopted = true;
    container->depth = std::max(container->depth, child->depth + 1);
    if (container->depth > kMaxPickleNesting) fail(cat("containers nested deeper than ", kMaxPickleNesting));
  }
  void check_open(const PickleValue& target, const char* op) {
    if (target->adopted) fail(cat(op, " on a ", target->kind_name(), " already inside another container"));
  }
  void set_items(PickleValue& target, const std::vector<PickleValue>& kv) {
    if (target->kind == Kind::Opaque) return;  // e.g. state of an ignored object
    if (target->kind != Kind::Dict) fail(cat("SETITEM on a ", target->kind_name()));
    check_open(target, "SETITEM");
    if (kv.size() % 2) fail("odd number of dict items");
    for (size_t j = 0; j < kv.size(); j += 2) {
      bool replaced = false;
      if (kv[j]->kind == Kind::String) {
        for (auto& entry : target->dict) {
          if (entry.first->kind == Kind::String && entry.first->s == kv[j]->s) {
            entry.second = kv[j + 1];
            replaced = true;
          }
        }
      }
      if (!replaced) target->dict.emplace_back(kv[j], kv[j + 1]);
      nest(target, kv[j]);
      nest(target, kv[j + 1]);
    }
  }
  void append_items(PickleValue& target, const std::vector<PickleValue>& values) {
    if (target->kind == Kind::Opaque) return;
    if (target->kind != Kind::List) fail(cat("APPEND on a ", target->kind_name()));
    check_open(target, "APPEND");
    target->items.insert(target->items.end(), values.begin(), values.end());
    for (const auto& v : values) nest(target, v);
  }
  bool control_op(uint8_t op);
  bool number_op(uint8_t op);
  bool text_op(uint8_t op);
  bool container_op(uint8_t op);
  bool fill_op(uint8_t op);
  bool memo_op(uint8_t op);
  bool object_op(uint8_t op);
  int64_t read_long1();
  PickleValue read_text_int();
  PickleValue read_binfloat();
  PickleValue container_from_mark(uint8_t op);
  PickleValue small_tuple(size_t n);
  PickleValue persistent_load(const PickleValue& pid);
  PickleValue global(const std::string& name);
  PickleValue reduce(const PickleValue& callable, const PickleValue& args);
  [[noreturn]] void refuse(const PickleValue& root) const;
  PickleValue rebuild_tensor(const std::vector<PickleValue>& args);
  int64_t as_int(const PickleValue& v, const char* what) {
    if (v->kind == Kind::Int) return v->i;
    if (v->kind == Kind::Bool) return v->b;
    fail(cat(what, " is a ", v->kind_name(), ", expected int"));
  }
  std::vector<int64_t> as_ints(const PickleValue& v, const char* what) {
    if (v->kind != Kind::Tuple && v->kind != Kind::List) fail(cat(what, " is not a tuple"));
    std::vector<int64_t> out;
    for (const auto& item : v->items) out.push_back(as_int(item, what));
    return out;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* begin_;
  size_t offset_ = 0;
  const StorageReader& storages_;
  const std::string& source_;
  std::vector<PickleValue> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue> memo_;
  PickleValue first_refused_;  // the first global outside the allowlist, if any
};

}  // namespace vitslim::model::pickle_detail
