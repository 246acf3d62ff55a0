// Implements the restricted pickle reader (see pickle.h). The machine keeps a value stack, a mark
// stack and a memo; GLOBAL only ever yields a name, REDUCE/BUILD/NEWOBJ only ever construct the
// few known torch/collections types, everything else becomes Opaque.
#include "model/pickle.h"
#include "model/pickle_machine.h"

namespace vitslim::model {
namespace pickle_detail {

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
    if (op == '.') {  // STOP
      if (stack_.size() != 1 || !marks_.empty()) fail("stack not balanced at STOP");
      return stack_.back();
    }
    if (control_op(op) || number_op(op) || text_op(op) || container_op(op) || memo_op(op) || object_op(op)) continue;
    fail(cat("opcode 0x", std::hex, static_cast<int>(op), " is not allowed in a checkpoint"));
  }
}

}  // namespace pickle_detail

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
  pickle_detail::Machine machine(data, size, storages, source);
  return machine.run();
}

}  // namespace vitslim::model
