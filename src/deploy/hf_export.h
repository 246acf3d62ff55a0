// `vitslim export --format hf`: a model as a Hugging Face transformers folder (config.json,
// model.safetensors and, where no stock class expresses the model, modeling_vitslim.py for
// trust_remote_code). An unpruned model a stock class computes exactly is written for that class
// with transformers' key names, no remote code: ViTForImageClassification / ViTModel,
// DeiTForImageClassificationWithTeacher, Dinov2Model, Dinov2WithRegistersModel (and their
// ...ForImageClassification), CLIPVisionModel and CLIPVisionModelWithProjection. Every other model (removed attention
// blocks, folded residuals, the other variants) goes to the template's VitslimVisionTransformer, whose parameters keep
// timm's names.
#pragma once

#include <map>
#include <string>

#include "core/atomic_file.h"
#include "model/vit.h"

namespace vitslim::deploy {

// The files of the folder `dir` (which must exist) written into `outputs`; returns the
// architecture written ("ViTForImageClassification", "VitslimVisionTransformer", ...).
std::string write_hf_folder(model::VisionTransformer& model, const std::map<std::string, std::string>& metadata,
                            const std::string& dir, OutputSet& outputs);

// Whether write_hf_folder writes a file of this name (config.json, model.safetensors, modeling_vitslim.py).
bool hf_folder_file(const std::string& name);

// modeling_vitslim.py, built in from src/deploy/hf_template/.
const char* hf_modeling_template();

}  // namespace vitslim::deploy
