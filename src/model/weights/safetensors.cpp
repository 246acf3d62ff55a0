// Implements .safetensors reading and writing, StateDict helpers and format dispatch
// (see weights.h). Format: u64 little-endian header length, JSON header
// {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the raw data.
#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/utf8.h"
#include "model/weights/hf_checkpoint.h"
#include "model/weights/weights.h"

namespace vitslim::model {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the format's own limit
constexpr size_t kHeaderAlign = 8;

const std::map<std::string, c10::ScalarType>& dtypes() {
  static const std::map<std::string, c10::ScalarType> kTypes = {
      {"F64", c10::kDouble}, {"F32", c10::kFloat}, {"F16", c10::kHalf}, {"BF16", c10::kBFloat16}, {"I64", c10::kLong},
      {"I32", c10::kInt},    {"I16", c10::kShort}, {"I8", c10::kChar},  {"U8", c10::kByte},       {"BOOL", c10::kBool},
  };
  return kTypes;
}

std::string dtype_name(c10::ScalarType t) {
  for (const auto& [name, type] : dtypes()) {
    if (type == t) return name;
  }
  throw Error(cat("safetensors: dtype ", c10::toString(t), " cannot be stored"));
}

}  // namespace

const at::Tensor* StateDict::find(const std::string& name) const {
  for (const auto& [k, v] : tensors) {
    if (k == name) return &v;
  }
  return nullptr;
}

void StateDict::erase(const std::string& name) {
  for (auto it = tensors.begin(); it != tensors.end(); ++it) {
    if (it->first == name) {
      tensors.erase(it);
      return;
    }
  }
}

namespace {

Error corrupt(const std::string& path, const std::string& what) {
  return Error(cat("weights ", path, ": corrupt safetensors file: ", what));
}

// One tensor entry of the header ({"dtype", "shape", "data_offsets"}), copied out of `data`.
at::Tensor read_entry(const std::string& path, const std::string& name, const nlohmann::json& info,
                      const std::vector<char>& data, uint64_t& offset) {
  auto dt = dtypes().find(info.at("dtype").get<std::string>());
  if (dt == dtypes().end()) throw corrupt(path, cat("tensor '", name, "' has unsupported dtype ", info.at("dtype")));
  std::vector<int64_t> shape = info.at("shape").get<std::vector<int64_t>>();
  auto offsets = info.at("data_offsets").get<std::vector<uint64_t>>();
  if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data.size()) {
    throw corrupt(path, cat("tensor '", name, "' has data offsets outside the file"));
  }
  // numel, and the largest stride (the product of the sizes, a 0 counting as 1), must fit an int64.
  uint64_t numel = 1, nbytes = 0;
  int64_t span = 1;
  for (int64_t d : shape) {
    if (d < 0) throw corrupt(path, cat("tensor '", name, "' has a negative dimension"));
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel) ||
        __builtin_mul_overflow(span, std::max<int64_t>(d, 1), &span)) {
      throw corrupt(path, cat("tensor '", name, "' is too large"));
    }
  }
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(c10::elementSize(dt->second)), &nbytes) ||
      nbytes != offsets[1] - offsets[0]) {
    throw corrupt(path, cat("tensor '", name, "' byte size does not match its shape"));
  }
  auto t = at::empty(shape, at::TensorOptions().dtype(dt->second));
  if (numel) std::memcpy(t.data_ptr(), data.data() + offsets[0], offsets[1] - offsets[0]);
  offset = offsets[0];
  return t;
}

void read_metadata(const std::string& path, const nlohmann::json& meta, StateDict& sd) {
  if (!meta.is_object()) throw corrupt(path, "__metadata__ is not an object");
  for (auto m = meta.begin(); m != meta.end(); ++m) {
    if (!m.value().is_string()) throw corrupt(path, cat("metadata '", m.key(), "' is not a string"));
    sd.metadata[m.key()] = m.value().get<std::string>();
  }
}

// As the safetensors library validates: the tensors' data, in offset order, tile the data section
// exactly (no overlap, which would let two tensors share bytes, no gap, nothing after the last).
// `sd.tensors` is in offset order; `begin` maps each name to its first byte.
void check_data_layout(const std::string& path, const StateDict& sd, const std::map<std::string, uint64_t>& begin,
                       uint64_t data_bytes) {
  uint64_t end = 0;
  std::string previous;
  for (const auto& [name, t] : sd.tensors) {
    const uint64_t first = begin.at(name), bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    if (first < end) {
      throw corrupt(path, cat("tensor '", name, "' starts at data byte ", first, ", inside tensor '", previous,
                              "' (which ends at byte ", end, "): overlapping data, invalid offsets"));
    }
    if (first > end) {
      throw corrupt(path, cat("tensor '", name, "' starts at data byte ", first,
                              " but the data before it ends at byte ", end, ": a gap, invalid offsets"));
    }
    end = first + bytes;
    previous = name;
  }
  if (end != data_bytes) {
    throw corrupt(path, cat(data_bytes - end, " bytes after the last tensor's data: invalid offsets"));
  }
}

// The JSON header, and the data after it.
nlohmann::json read_header(const std::string& path, std::ifstream& in, uint64_t file_size, std::vector<char>& data) {
  uint64_t header_size = 0;
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(&header_size), 8))
    throw corrupt(path, "shorter than its header");
  if (header_size > kMaxHeaderBytes || header_size > file_size - 8) throw corrupt(path, "header length out of range");
  std::string header(header_size, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_size))) throw corrupt(path, "truncated header");
  nlohmann::json j;
  std::set<std::string> names;
  std::string twice;  // a name given twice (JSON keeps the last copy silently; safetensors refuses it)
  const auto note_names = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && !names.insert(parsed.get<std::string>()).second &&
        twice.empty()) {
      twice = parsed.get<std::string>();
    }
    return true;
  };
  try {
    j = nlohmann::json::parse(header, note_names);
  } catch (const nlohmann::json::exception& e) {
    throw corrupt(path, cat("header is not JSON (", e.what(), ")"));
  }
  if (!j.is_object()) throw corrupt(path, "header is not a JSON object");
  if (!twice.empty()) throw corrupt(path, cat("'", twice, "' is named twice in the header"));
  data.resize(file_size - 8 - header_size);
  if (!data.empty() && !in.read(data.data(), static_cast<std::streamsize>(data.size()))) {
    throw corrupt(path, "truncated data");
  }
  return j;
}

}  // namespace

StateDict read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(cat("weights ", path, ": cannot open file"));
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  std::vector<char> data;
  const nlohmann::json j = read_header(path, in, file_size, data);
  StateDict sd;
  sd.file = path;
  std::map<std::string, uint64_t> position;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      read_metadata(path, it.value(), sd);
      continue;
    }
    try {
      sd.tensors.emplace_back(it.key(), read_entry(path, it.key(), it.value(), data, position[it.key()]));
    } catch (const nlohmann::json::exception& e) {
      throw corrupt(path, cat("entry '", it.key(), "' is malformed (", e.what(), ")"));
    } catch (const c10::Error& e) {  // anything LibTorch refuses still names the file and the entry
      throw corrupt(path, cat("entry '", it.key(), "': ", first_line(e.what_without_backtrace())));
    }
  }
  // Keep file order (the JSON object is sorted by name).
  std::stable_sort(sd.tensors.begin(), sd.tensors.end(),
                   [&](const auto& a, const auto& b) { return position[a.first] < position[b.first]; });
  check_data_layout(path, sd, position, data.size());
  return sd;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata, OutputSet* outputs) {
  nlohmann::json header = nlohmann::json::object();
  for (const auto& [key, value] : metadata) {
    // Other safetensors readers accept only UTF-8 headers (vitslim's own metadata always is).
    if (!valid_utf8(key) || !valid_utf8(value))
      throw Error(cat("safetensors ", path, ": metadata '", key, "' is not UTF-8 text"));
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (header.contains(name)) throw Error(cat("safetensors ", path, ": duplicate tensor name '", name, "'"));
    auto c = t.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[name] = {
        {"dtype", dtype_name(c.scalar_type())}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(c);
  }
  std::string text = header.dump();
  text.append((kHeaderAlign - text.size() % kHeaderAlign) % kHeaderAlign, ' ');
  const uint64_t header_size = text.size();  // little-endian host
  std::vector<BytePiece> pieces = {{&header_size, sizeof(header_size)}, {text.data(), text.size()}};
  for (const auto& c : contiguous) pieces.push_back({c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size()});
  if (outputs) {
    outputs->write(path, pieces);
  } else {
    write_pieces_atomic(path, pieces);
  }
}

StateDict read_weights(const std::string& path) {
  if (is_hf_folder(path)) return read_hf_folder(path);
  StateDict file = read_weight_file(path);
  if (auto converted = hf_file_to_timm(file)) return std::move(*converted);
  return file;
}

StateDict read_weight_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error(cat("weights ", path, ": is a directory, not a file (nor a transformers folder with config.json)"));
  std::ifstream probe(path, std::ios::binary);
  if (!probe) throw Error(cat("weights ", path, ": cannot open file (missing or unreadable)"));
  // safetensors: an 8-byte little-endian header length, then the JSON header's '{'. Checked
  // first: a header length whose low byte is 0x80 looks like a pickle's protocol opcode.
  constexpr std::streamsize kProbe = 9;
  char magic[kProbe] = {};
  probe.read(magic, kProbe);
  const std::streamsize got = probe.gcount();
  if (got == kProbe && magic[kProbe - 1] == '{') return read_safetensors(path);
  if (got >= 4 && (std::memcmp(magic, "PK\x03\x04", 4) == 0 || static_cast<unsigned char>(magic[0]) == 0x80)) {
    return read_pth(path);
  }
  if (got < 4) throw Error(cat("weights ", path, ": file is empty or truncated"));
  return read_safetensors(path);
}

}  // namespace vitslim::model
