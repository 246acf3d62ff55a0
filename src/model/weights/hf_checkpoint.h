// Hugging Face `transformers` checkpoints: a folder with config.json and model.safetensors,
// pytorch_model.bin, or a sharded *.index.json with its shards, for ViTModel /
// ViTForImageClassification, DeiTModel / DeiTForImageClassification(WithTeacher), Dinov2Model,
// Dinov2ForImageClassification, Dinov2WithRegistersModel (and ...ForImageClassification) and CLIP's
// vision tower (CLIPVisionModel, CLIPVisionModelWithProjection,
// or the vision half of a CLIPModel). They are read into a StateDict with timm key names (the key
// map is one table in hf_checkpoint.cpp) and the vitslim.* metadata of what only config.json says
// (heads, LayerNorm eps, activation, image size, class names), so every job reads them as it
// reads timm files. Every defect is an Error naming the file: config.json and the tensors must agree.
#pragma once

#include <optional>
#include <string>

#include "model/weights/weights.h"

namespace vitslim::model {

// A folder holding config.json: a transformers checkpoint (or timm's hub layout, whose weights
// already have timm's names).
bool is_hf_folder(const std::string& path);
// Reads a transformers folder as timm-named tensors (a timm hub folder's as they are).
StateDict read_hf_folder(const std::string& dir);
// A weights file read as stored whose keys are transformers' and that has config.json beside it (the
// model.safetensors of such a folder, named directly): the same conversion; nullopt for any other file.
std::optional<StateDict> hf_file_to_timm(StateDict& file);

}  // namespace vitslim::model
