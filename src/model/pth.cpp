// Implements read_pth (see weights.h): the zip archive is opened with LibTorch's
// PyTorchStreamReader (archive access only; torch's own unpickler is not used), data.pkl is
// interpreted by the restricted reader of pickle.h, and the state dict is found at the top level
// or under "model" / "state_dict" / "model_ema".
#include <caffe2/serialize/inline_container.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "core/error.h"
#include "model/pickle.h"
#include "model/weights.h"

namespace vitslim::model {
namespace {

using Kind = PickleNode::Kind;

bool is_state_dict(const PickleValue& v) {
  if (v->kind != Kind::Dict || v->dict.empty()) return false;
  for (const auto& [k, val] : v->dict) {
    if (k->kind != Kind::String) return false;
  }
  return true;
}

bool has_tensor_values(const PickleValue& v) {
  for (const auto& entry : v->dict) {
    if (entry.second->kind == Kind::Tensor) return true;
  }
  return false;
}

// A zip archive of torch.save, not the legacy format or something else.
void check_magic(const std::string& path) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe) throw Error(cat("weights ", path, ": cannot open file"));
  char magic[4] = {0, 0, 0, 0};
  probe.read(magic, 4);
  if (probe.gcount() == 4 && static_cast<unsigned char>(magic[0]) == 0x80) {
    throw Error(cat("weights ", path, ": legacy (pre-1.6) torch.save format is not supported; ",
                    "re-save it with torch.save(..., _use_new_zipfile_serialization=True)"));
  }
  if (probe.gcount() < 4 || std::memcmp(magic, "PK\x03\x04", 4) != 0) {
    throw Error(cat("weights ", path, ": not a torch.save zip archive nor a safetensors file"));
  }
}

// The archive's data.pkl, read by the restricted reader; storages come from data/<key> records.
PickleValue read_archive_pickle(const std::string& path) {
  std::unordered_map<std::string, std::pair<at::DataPtr, size_t>> records;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (reader.hasRecord("byteorder")) {
      auto [ptr, n] = reader.getRecord("byteorder");
      std::string order(static_cast<const char*>(ptr.get()), n);
      if (order != "little") throw Error(cat("weights ", path, ": byte order '", order, "' is not supported"));
    }
    auto [pkl, pkl_size] = reader.getRecord("data.pkl");
    StorageReader storages = [&](const std::string& key) -> std::pair<const uint8_t*, size_t> {
      auto it = records.find(key);
      if (it == records.end()) {
        std::string name = "data/" + key;
        if (!reader.hasRecord(name)) throw Error(cat("weights ", path, ": storage record ", name, " is missing"));
        auto record = reader.getRecord(name);
        it = records.emplace(key, std::make_pair(std::move(std::get<0>(record)), std::get<1>(record))).first;
      }
      return {static_cast<const uint8_t*>(it->second.first.get()), it->second.second};
    };
    return unpickle(static_cast<const uint8_t*>(pkl.get()), pkl_size, storages, "weights " + path);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    throw Error(cat("weights ", path, ": corrupt or truncated archive (", msg.substr(0, msg.find('\n')), ")"));
  }
}

// The state dict: the root, or the one under 'model', 'state_dict' or 'model_ema' (official DeiT files).
PickleValue find_state_dict(const PickleValue& root, const std::string& path) {
  PickleValue dict = root;
  if (root->kind == Kind::Dict && !has_tensor_values(root)) {
    for (const char* key : {"model", "state_dict", "model_ema"}) {
      for (const auto& [k, v] : root->dict) {
        if (k->kind == Kind::String && k->s == key && is_state_dict(v)) {
          dict = v;
          break;
        }
      }
      if (dict != root) break;
    }
  }
  if (!is_state_dict(dict)) {
    throw Error(cat("weights ", path, ": no state dict found (expected a dict of tensors, or one under 'model')"));
  }
  return dict;
}

}  // namespace

StateDict read_pth(const std::string& path) {
  check_magic(path);
  const PickleValue dict = find_state_dict(read_archive_pickle(path), path);
  StateDict sd;
  sd.file = path;
  for (const auto& [k, v] : dict->dict) {
    if (v->kind != Kind::Tensor) {
      throw Error(cat("weights ", path, ": entry '", k->s, "' is not a tensor but ", v->kind_name(),
                      (v->kind == Kind::Opaque ? " (" + v->s + ", refused)" : std::string())));
    }
    sd.tensors.emplace_back(k->s, v->tensor);
  }
  return sd;
}

}  // namespace vitslim::model
