// Implements the restricted pickle reader (see pickle.h). The machine keeps a value stack, a mark
// stack and a memo; GLOBAL only ever yields a name from the allowlist, REDUCE/BUILD/NEWOBJ only
// ever construct the few known torch/collections types, other allowed objects become Opaque.
#include "model/weights/pickle.h"

#include <ATen/TensorGeometry.h>

#include <set>
#include <unordered_set>

#include "model/weights/pickle_machine.h"

namespace vitslim::model {
namespace pickle_detail {
namespace {

// The globals a torch.save state dict or a DeiT/timm training checkpoint names (torch.load's
// weights_only allowlist, plus argparse.Namespace and numpy values). The storage classes are
// in storage_types().
bool allowed_global(const std::string& name) {
  static const std::set<std::string> kAllowed = {
      "collections.OrderedDict",
      "builtins.dict",
      "builtins.set",
      "builtins.frozenset",
      "builtins.bytearray",
      "builtins.complex",
      "_codecs.encode",
      "torch._utils._rebuild_tensor",
      "torch._utils._rebuild_tensor_v2",
      "torch._utils._rebuild_parameter",
      "torch._utils._rebuild_parameter_with_state",
      "torch.Size",
      "torch.device",
      "argparse.Namespace",
      "numpy.dtype",
      "numpy.ndarray",
      "numpy.core.multiarray.scalar",
      "numpy.core.multiarray._reconstruct",
      "numpy._core.multiarray.scalar",
      "numpy._core.multiarray._reconstruct",
  };
  static const std::set<std::string> kTorchDtypes = {
      "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
  };
  if (kAllowed.count(name) || storage_types().count(name)) return true;
  if (name.rfind("numpy.dtypes.", 0) == 0 && name.size() > 5 && name.compare(name.size() - 5, 5, "DType") == 0)
    return true;  // numpy 2's dtype classes: numpy.dtypes.Float64DType, ...
  return name.rfind("torch.", 0) == 0 && kTorchDtypes.count(name.substr(6));
}

// "['model']['x'][3]": how the value is reached from the root.
std::string step_text(const PickleValue& key) {
  if (key->kind == Kind::String) return cat("['", key->s, "']");
  if (key->kind == Kind::Int) return cat("[", key->i, "]");
  return cat("[<", key->kind_name(), ">]");
}

// Where `target` sits under `root` (breadth first, each node once), or "" when it is not in the tree.
std::string path_to(const PickleValue& root, const PickleNode* target) {
  std::vector<std::pair<const PickleNode*, std::string>> queue = {{root.get(), ""}};
  std::unordered_set<const PickleNode*> seen = {root.get()};
  for (size_t next = 0; next < queue.size(); ++next) {
    const auto [node, path] = queue[next];
    if (node == target) return path.empty() ? "the top level" : path;
    auto visit = [&](const PickleValue& child, const std::string& step) {
      if (seen.insert(child.get()).second) queue.emplace_back(child.get(), path + step);
    };
    for (size_t k = 0; k < node->items.size(); ++k) visit(node->items[k], cat("[", k, "]"));
    for (const auto& [key, value] : node->dict) visit(value, step_text(key));
  }
  return "";
}

}  // namespace

PickleValue Machine::global(const std::string& name) {
  if (allowed_global(name)) return make_named(Kind::Global, name);
  auto v = make_named(Kind::Opaque, name);
  v->refused = true;
  v->offset = offset_;
  if (!first_refused_) first_refused_ = v;
  return v;
}

void Machine::refuse(const PickleValue& root) const {
  const std::string where = path_to(root, first_refused_.get());
  throw Error(cat(source_, ": refusing global '", first_refused_->s, "'",
                  where.empty() ? std::string() : " at " + where, " (pickle byte ", first_refused_->offset,
                  "): only tensors, plain values and the types of torch.save checkpoints are loaded, as "
                  "torch.load(weights_only=True) does"));
}

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
  const size_t element = c10::elementSize(dtype);
  size_t expected_bytes = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(numel), element, &expected_bytes))
    fail(cat("storage ", storage->s, " of ", numel, " elements overflows"));
  const StorageBytes bytes = storages_(storage->s, expected_bytes);
  if (!bytes || bytes->size() != expected_bytes) {
    fail(cat("storage ", storage->s, " has ", bytes ? bytes->size() : 0, " bytes, expected ", numel, " x ", element));
  }
  const auto options = at::TensorOptions().dtype(dtype);
  auto result = make(Kind::Tensor);
  if (empty) {
    int64_t span = 1;  // the largest contiguous stride must fit an int64 too
    for (int64_t size : sizes) {
      if (__builtin_mul_overflow(span, std::max<int64_t>(size, 1), &span)) fail("tensor size overflows");
    }
    result->tensor = at::empty(sizes, options);
    return result;
  }
  if (extent > numel) fail(cat("tensor view exceeds its storage ", storage->s));
  auto* data = const_cast<uint8_t*>(bytes->data());
  if (offset == 0 && elements == numel && at::geometry_is_contiguous(sizes, strides)) {
    // The tensor is its whole storage: it keeps the record's bytes (the usual case, no copy).
    result->tensor = at::from_blob(
        data, sizes, strides, [bytes](void*) {}, options);
    return result;
  }
  auto flat = at::from_blob(data, {numel}, options);
  result->tensor = flat.as_strided(sizes, strides, offset).clone(at::MemoryFormat::Contiguous);
  return result;
}

PickleValue Machine::reduce(const PickleValue& callable, const PickleValue& args) {
  if (callable->refused) return callable;
  if (callable->kind != Kind::Global) return make_named(Kind::Opaque, callable->s);
  const std::string& name = callable->s;
  const std::vector<PickleValue> empty;
  const auto& a = args->kind == Kind::Tuple ? args->items : empty;
  if (name == "collections.OrderedDict" || name == "builtins.dict") {
    auto d = make(Kind::Dict);
    if (!a.empty() && a[0]->kind == Kind::List) {
      std::vector<PickleValue> kv;
      for (const auto& pair : a[0]->items) {
        if (pair->kind == Kind::Tuple && pair->items.size() == 2) {
          kv.push_back(pair->items[0]);
          kv.push_back(pair->items[1]);
        }
      }
      set_items(d, kv);
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
      if (first_refused_) refuse(stack_.back());
      return stack_.back();
    }
    if (control_op(op) || number_op(op) || text_op(op) || container_op(op) || memo_op(op) || object_op(op)) continue;
    fail(cat("opcode 0x", std::hex, static_cast<int>(op), " is not allowed in a checkpoint"));
  }
}

}  // namespace pickle_detail

// Children are moved onto a work list instead of being destroyed inside this call; a child whose
// last owner is the list hands its own children over before it dies, so the depth of C++ calls
// stays one whatever the depth of the tree.
PickleNode::~PickleNode() {
  std::vector<PickleValue> pending;
  auto take_children = [&pending](PickleNode& node) {
    for (auto& item : node.items) pending.push_back(std::move(item));
    for (auto& [key, value] : node.dict) {
      pending.push_back(std::move(key));
      pending.push_back(std::move(value));
    }
    node.items.clear();
    node.dict.clear();
  };
  take_children(*this);
  while (!pending.empty()) {
    PickleValue child = std::move(pending.back());
    pending.pop_back();
    if (child && child.use_count() == 1) take_children(*child);
  }
}

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
  try {
    return machine.run();
  } catch (const c10::Error& e) {  // whatever LibTorch refuses still names the file
    throw Error(cat(source, ": unreadable tensor (", first_line(e.what_without_backtrace()), ")"));
  }
}

}  // namespace vitslim::model
