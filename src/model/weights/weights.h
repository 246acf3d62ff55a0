// Weight files: reading official DeiT/timm checkpoints (.pth written by torch.save in its zip
// format, top level {"model": state_dict} or a flat state dict; .safetensors) into named tensors,
// and writing .safetensors with timm key names and string metadata. The format is recognised
// by content, not by extension. Every defect is an Error naming the file.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vitslim {
class OutputSet;
}

namespace vitslim::model {

// Metadata keys vitslim writes into .safetensors files.
inline constexpr const char* kMetaRemovedLayers = "vitslim.removed_layers";  // "0,1,3"
inline constexpr const char* kMetaNumHeads = "vitslim.num_heads";
inline constexpr const char* kMetaImgSize = "vitslim.img_size";
inline constexpr const char* kMetaResidualFolded = "vitslim.residual_folded";  // "1": removed blocks are x -> x
// Token merging the model runs with (model/tome.h tome_to_text), written when it merges.
inline constexpr const char* kMetaTokenMerging = "vitslim.token_merging";
// Variant features the tensors cannot show (core/shape.h), written by every export.
inline constexpr const char* kMetaGlobalPool = "vitslim.global_pool";  // token | avg
inline constexpr const char* kMetaActLayer = "vitslim.act_layer";      // gelu | quick_gelu
inline constexpr const char* kMetaNormEps = "vitslim.norm_eps";
inline constexpr const char* kMetaClassNames = "vitslim.class_names";  // JSON array in label order (id2label)
// JSON: how the weights were made (job, settings, source commit, test top-1, weights_hash).
inline constexpr const char* kMetaProvenance = "vitslim.provenance";

struct StateDict {
  std::string file;                                         // where it came from (for messages)
  std::vector<std::pair<std::string, at::Tensor>> tensors;  // in file order
  std::map<std::string, std::string> metadata;              // safetensors __metadata__

  const at::Tensor* find(const std::string& name) const;
  void erase(const std::string& name);
};

// A weights file (format by content), a transformers folder or a file inside one (model/weights/hf_checkpoint.h):
// timm key names.
StateDict read_weights(const std::string& path);
// One .pth/.safetensors file by content, keys as stored.
StateDict read_weight_file(const std::string& path);
StateDict read_pth(const std::string& path);
StateDict read_safetensors(const std::string& path);

// Writes atomically (temporary file, fsync, rename), or into `outputs` (committed by the caller with
// the run's other outputs) when given. Tensors are stored contiguous, in their dtype.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata, OutputSet* outputs = nullptr);

}  // namespace vitslim::model
