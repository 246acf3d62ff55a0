// Implements read_pth (see weights.h): the zip archive is read by model/weights/zip_reader.h (sizes
// checked before allocation, CRCs verified; torch's own loader is not used), data.pkl is
// interpreted by the restricted reader of pickle.h, and the state dict is found at the top level
// or under "model" / "state_dict" / "model_ema".
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string_view>
#include <unordered_map>

#include "core/error.h"
#include "model/weights/pickle.h"
#include "model/weights/weights.h"
#include "model/weights/zip_reader.h"

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

// The directory inside the archive that holds data.pkl ("archive/" since torch 1.6; older files
// use the file's stem).
std::string record_prefix(const ZipReader& zip, const std::string& path) {
  constexpr std::string_view kPickle = "/data.pkl";
  std::string prefix;
  for (const auto& [name, member] : zip.members()) {
    if (name.size() <= kPickle.size() || name.compare(name.size() - kPickle.size(), kPickle.size(), kPickle) != 0)
      continue;
    std::string dir = name.substr(0, name.size() - kPickle.size() + 1);
    if (dir.find('/') != dir.size() - 1) continue;
    if (!prefix.empty()) throw Error(cat("weights ", path, ": two data.pkl records (", prefix, ", ", dir, ")"));
    prefix = dir;
  }
  if (prefix.empty()) throw Error(cat("weights ", path, ": no data.pkl record (not a torch.save archive)"));
  return prefix;
}

// The archive's data.pkl, read by the restricted reader; storages come from data/<key> records,
// each read once, with the size its tensors declare.
PickleValue read_archive_pickle(const std::string& path) {
  constexpr uint64_t kMaxPickleBytes = uint64_t{1} << 30;  // the pickle of a state dict is small
  constexpr uint64_t kMaxByteOrderBytes = 16;
  const std::string source = "weights " + path;
  ZipReader zip(path, source);
  const std::string prefix = record_prefix(zip, path);
  if (zip.has(prefix + "byteorder")) {
    auto bytes = zip.read_at_most(prefix + "byteorder", kMaxByteOrderBytes);
    std::string order(bytes.begin(), bytes.end());
    if (order != "little") throw Error(cat(source, ": byte order '", order, "' is not supported"));
  }
  const auto pickle = zip.read_at_most(prefix + "data.pkl", kMaxPickleBytes);
  std::unordered_map<std::string, StorageBytes> records;
  StorageReader storages = [&](const std::string& key, size_t bytes) -> StorageBytes {
    auto it = records.find(key);
    if (it == records.end()) {
      const std::string name = prefix + "data/" + key;
      if (!zip.has(name)) throw Error(cat(source, ": storage record ", name, " is missing"));
      it = records.emplace(key, std::make_shared<const std::vector<uint8_t>>(zip.read_exact(name, bytes))).first;
    }
    return it->second;
  };
  return unpickle(pickle.data(), pickle.size(), storages, source);
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
