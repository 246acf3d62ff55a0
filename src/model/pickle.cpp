// Implements the restricted pickle reader (see pickle.h). The machine keeps a value stack, a mark
// stack and a memo; GLOBAL only ever yields a name, REDUCE/BUILD/NEWOBJ only ever construct the
// few known torch/collections types, everything else becomes Opaque.
#include "model/pickle.h"

#include <ATen/ATen.h>

#include <cstring>
#include <map>
#include <unordered_map>

#include "core/error.h"

namespace vitslim::model {
namespace {

using Kind = PickleNode::Kind;

constexpr int kMaxNesting = 256;  // checkpoints nest a few levels; deeper is an attack

PickleValue make(Kind kind) {
  auto v = std::make_shared<PickleNode>();
  v->kind = kind;
  return v;
}

PickleValue make_int(int64_t i) {
  auto v = make(Kind::Int);
  v->i = i;
  return v;
}

PickleValue make_named(Kind kind, std::string name) {
  auto v = make(kind);
  v->s = std::move(name);
  return v;
}

// Storage classes torch.save names, with their element type.
const std::map<std::string, c10::ScalarType>& storage_types() {
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
  // Containers record how deeply they nest, so that a crafted file cannot build a chain whose
  // destruction would overflow the stack.
  void nest(PickleValue& container, const PickleValue& child) {
    container->depth = std::max(container->depth, child->depth + 1);
    if (container->depth > kMaxNesting) fail(cat("containers nested deeper than ", kMaxNesting));
  }
  void set_items(PickleValue& target, const std::vector<PickleValue>& kv) {
    if (target->kind == Kind::Opaque) return;  // e.g. state of an ignored object
    if (target->kind != Kind::Dict) fail(cat("SETITEM on a ", target->kind_name()));
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
    target->items.insert(target->items.end(), values.begin(), values.end());
    for (const auto& v : values) nest(target, v);
  }
  PickleValue persistent_load(const PickleValue& pid);
  PickleValue reduce(const PickleValue& callable, const PickleValue& args);
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
};

PickleValue Machine::persistent_load(const PickleValue& pid) {
  // ('storage', <storage class global>, key, location, numel)
  if (pid->kind != Kind::Tuple || pid->items.size() < 5 || pid->items[0]->kind != Kind::String ||
      pid->items[0]->s != "storage") {
    fail("persistent id is not a torch storage reference");
  }
  const PickleValue& type = pid->items[1];
  auto it = storage_types().find(type->s);
  if (type->kind != Kind::Global || it == storage_types().end()) {
    fail(cat("unsupported storage type '", type->s, "'"));
  }
  auto storage = make_named(Kind::Storage, pid->items[2]->s);
  if (pid->items[2]->kind != Kind::String) fail("storage key is not a string");
  storage->storage_dtype = static_cast<int64_t>(it->second);
  storage->storage_numel = as_int(pid->items[4], "storage size");
  return storage;
}

PickleValue Machine::rebuild_tensor(const std::vector<PickleValue>& args) {
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  if (args.size() < 4) fail("tensor rebuild with too few arguments");
  const PickleValue& storage = args[0];
  if (storage->kind != Kind::Storage) fail(cat("tensor storage is a ", storage->kind_name()));
  const int64_t offset = as_int(args[1], "storage offset");
  const auto sizes = as_ints(args[2], "tensor size");
  const auto strides = as_ints(args[3], "tensor stride");
  if (sizes.size() != strides.size()) fail("tensor size and stride differ in length");
  const auto dtype = static_cast<c10::ScalarType>(storage->storage_dtype);
  const int64_t numel = storage->storage_numel;
  if (offset < 0 || numel < 0) fail("negative storage offset or size");
  // Overflow-checked: extent = offset + 1 + sum (size - 1) * stride; elements = prod sizes.
  int64_t extent = 0, elements = 1;
  bool empty = false, overflow = __builtin_add_overflow(offset, 1, &extent);
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] < 0 || strides[d] < 0) fail("negative tensor size or stride");
    if (sizes[d] == 0) empty = true;
    int64_t span = 0;
    overflow |= __builtin_mul_overflow(std::max<int64_t>(sizes[d] - 1, 0), strides[d], &span);
    overflow |= __builtin_add_overflow(extent, span, &extent);
    overflow |= __builtin_mul_overflow(elements, sizes[d], &elements);
  }
  if (overflow) fail("tensor size overflows");
  if (!empty && elements > numel)
    fail(cat("tensor of ", elements, " elements is larger than its storage ", storage->s));
  auto [bytes, nbytes] = storages_(storage->s);
  const size_t element = c10::elementSize(dtype);
  size_t expected_bytes = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(numel), element, &expected_bytes) || nbytes != expected_bytes) {
    fail(cat("storage ", storage->s, " has ", nbytes, " bytes, expected ", numel, " x ", element));
  }
  auto result = make(Kind::Tensor);
  if (empty) {
    result->tensor = at::empty(sizes, at::TensorOptions().dtype(dtype));
    return result;
  }
  if (extent > numel) fail(cat("tensor view exceeds its storage ", storage->s));
  auto flat = at::from_blob(const_cast<uint8_t*>(bytes), {numel}, at::TensorOptions().dtype(dtype));
  result->tensor = flat.as_strided(sizes, strides, offset).clone(at::MemoryFormat::Contiguous);
  return result;
}

PickleValue Machine::reduce(const PickleValue& callable, const PickleValue& args) {
  if (callable->kind != Kind::Global) return make_named(Kind::Opaque, callable->s);
  const std::string& name = callable->s;
  const std::vector<PickleValue> empty;
  const auto& a = args->kind == Kind::Tuple ? args->items : empty;
  if (name == "collections.OrderedDict" || name == "builtins.dict") {
    auto d = make(Kind::Dict);
    if (!a.empty() && a[0]->kind == Kind::List) {
      for (const auto& pair : a[0]->items) {
        if (pair->kind == Kind::Tuple && pair->items.size() == 2) d->dict.emplace_back(pair->items[0], pair->items[1]);
      }
    }
    return d;
  }
  if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
    return rebuild_tensor(a);
  }
  if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
    if (a.empty() || a[0]->kind != Kind::Tensor) fail("parameter rebuild without a tensor");
    return a[0];
  }
  return make_named(Kind::Opaque, name);  // anything else: a value we refuse if it is used
}

PickleValue Machine::run() {
  while (true) {
    offset_ = static_cast<size_t>(p_ - begin_);
    const uint8_t op = *take(1);
    switch (op) {
      case 0x80:
        take(1);
        break;  // PROTO
      case 0x95:
        take(8);
        break;     // FRAME (protocol 4+): length only
      case '.': {  // STOP
        if (stack_.size() != 1 || !marks_.empty()) fail("stack not balanced at STOP");
        return stack_.back();
      }
      case '(':
        marks_.push_back(stack_.size());
        break;  // MARK
      case '0':
        pop();
        break;  // POP
      case '1':
        pop_to_mark();
        break;  // POP_MARK
      case '2':
        stack_.push_back(top());
        break;  // DUP
      case 'N':
        stack_.push_back(make(Kind::None));
        break;
      case 0x88:
      case 0x89: {  // NEWTRUE / NEWFALSE
        auto v = make(Kind::Bool);
        v->b = op == 0x88;
        stack_.push_back(v);
        break;
      }
      case 'J':
        stack_.push_back(make_int(read_le<int32_t>()));
        break;  // BININT
      case 'K':
        stack_.push_back(make_int(read_le<uint8_t>()));
        break;  // BININT1
      case 'M':
        stack_.push_back(make_int(read_le<uint16_t>()));
        break;      // BININT2
      case 0x8a: {  // LONG1
        const size_t n = read_le<uint8_t>();
        if (n > 8) fail("integer wider than 64 bits");
        const uint8_t* bytes = take(n);
        uint64_t u = 0;
        for (size_t k = 0; k < n; ++k) u |= static_cast<uint64_t>(bytes[k]) << (8 * k);
        if (n > 0 && n < 8 && (bytes[n - 1] & 0x80)) u |= ~uint64_t{0} << (8 * n);  // sign-extend
        stack_.push_back(make_int(static_cast<int64_t>(u)));
        break;
      }
      case 'I': {  // INT (text)
        std::string line = read_line();
        if (line == "00" || line == "01") {
          auto v = make(Kind::Bool);
          v->b = line == "01";
          stack_.push_back(v);
        } else {
          char* endp = nullptr;
          long long v = std::strtoll(line.c_str(), &endp, 10);
          if (*endp) fail("bad INT");
          stack_.push_back(make_int(v));
        }
        break;
      }
      case 'G': {  // BINFLOAT (big-endian)
        const uint8_t* b = take(8);
        uint64_t u = 0;
        for (int k = 0; k < 8; ++k) u = (u << 8) | b[k];
        auto v = make(Kind::Float);
        std::memcpy(&v->f, &u, 8);
        stack_.push_back(v);
        break;
      }
      case 'X':
        stack_.push_back(make_named(Kind::String, read_string(read_le<uint32_t>())));
        break;
      case 0x8c:
        stack_.push_back(make_named(Kind::String, read_string(read_le<uint8_t>())));
        break;
      case 0x8d:
        stack_.push_back(make_named(Kind::String, read_string(read_le<uint64_t>())));
        break;
      case 'T':
        stack_.push_back(make_named(Kind::String, read_string(read_le<uint32_t>())));
        break;
      case 'U':
        stack_.push_back(make_named(Kind::String, read_string(read_le<uint8_t>())));
        break;
      case 'B':
        stack_.push_back(make_named(Kind::Bytes, read_string(read_le<uint32_t>())));
        break;
      case 'C':
        stack_.push_back(make_named(Kind::Bytes, read_string(read_le<uint8_t>())));
        break;
      case 0x8e:
        stack_.push_back(make_named(Kind::Bytes, read_string(read_le<uint64_t>())));
        break;
      case '}':
        stack_.push_back(make(Kind::Dict));
        break;
      case ']':
        stack_.push_back(make(Kind::List));
        break;
      case ')':
        stack_.push_back(make(Kind::Tuple));
        break;
      case 0x8f:
        stack_.push_back(make(Kind::Opaque));
        break;  // EMPTY_SET
      case 't':
      case 'l':
      case 'd': {  // TUPLE / LIST / DICT from mark
        auto items = pop_to_mark();
        if (op == 'd') {
          auto d = make(Kind::Dict);
          set_items(d, items);
          stack_.push_back(d);
        } else {
          auto v = make(op == 't' ? Kind::Tuple : Kind::List);
          for (const auto& item : items) nest(v, item);
          v->items = std::move(items);
          stack_.push_back(v);
        }
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        const size_t n = op - 0x84;
        auto v = make(Kind::Tuple);
        v->items.resize(n);
        for (size_t k = n; k-- > 0;) {
          v->items[k] = pop();
          nest(v, v->items[k]);
        }
        stack_.push_back(v);
        break;
      }
      case 'q':
        memo_put(read_le<uint8_t>());
        break;  // BINPUT
      case 'r':
        memo_put(read_le<uint32_t>());
        break;  // LONG_BINPUT
      case 0x94:
        memo_put(memo_.size());
        break;  // MEMOIZE
      case 'h':
        stack_.push_back(memo_get(read_le<uint8_t>()));
        break;  // BINGET
      case 'j':
        stack_.push_back(memo_get(read_le<uint32_t>()));
        break;     // LONG_BINGET
      case 'c': {  // GLOBAL
        std::string module = read_line();
        std::string name = read_line();
        stack_.push_back(make_named(Kind::Global, module + "." + name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        auto name = pop();
        auto module = pop();
        if (name->kind != Kind::String || module->kind != Kind::String) fail("STACK_GLOBAL needs strings");
        stack_.push_back(make_named(Kind::Global, module->s + "." + name->s));
        break;
      }
      case 'Q': {  // BINPERSID
        auto pid = pop();
        stack_.push_back(persistent_load(pid));
        break;
      }
      case 'R': {  // REDUCE
        auto args = pop();
        auto callable = pop();
        stack_.push_back(reduce(callable, args));
        break;
      }
      case 0x81: {  // NEWOBJ
        pop();
        auto cls = pop();
        stack_.push_back(make_named(Kind::Opaque, cls->s));
        break;
      }
      case 'b':
        pop();
        break;     // BUILD: object state (OrderedDict._metadata, ...) is not needed
      case 's': {  // SETITEM
        auto value = pop();
        auto key = pop();
        set_items(top(), {key, value});
        break;
      }
      case 'u': {  // SETITEMS
        auto items = pop_to_mark();
        set_items(top(), items);
        break;
      }
      case 'a': {  // APPEND
        auto value = pop();
        append_items(top(), {value});
        break;
      }
      case 'e': {  // APPENDS
        auto items = pop_to_mark();
        append_items(top(), items);
        break;
      }
      default:
        fail(cat("opcode 0x", std::hex, static_cast<int>(op), " is not allowed in a checkpoint"));
    }
  }
}

}  // namespace

const char* PickleNode::kind_name() const {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::Bytes:
      return "bytes";
    case Kind::List:
      return "list";
    case Kind::Tuple:
      return "tuple";
    case Kind::Dict:
      return "dict";
    case Kind::Tensor:
      return "tensor";
    case Kind::Global:
      return "global";
    case Kind::Storage:
      return "storage";
    case Kind::Opaque:
      return "unsupported object";
  }
  return "?";
}

PickleValue unpickle(const uint8_t* data, size_t size, const StorageReader& storages, const std::string& source) {
  Machine machine(data, size, storages, source);
  return machine.run();
}

}  // namespace vitslim::model
