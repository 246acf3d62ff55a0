// Implements reading and checking a weights file's provenance (see provenance.h).
#include "model/provenance.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "model/checkpoint.h"
#include "model/weights/weights.h"

namespace vitslim::model {

std::optional<Provenance> read_provenance(const std::string& path) {
  const StateDict dict = read_safetensors(path);
  const auto it = dict.metadata.find(kMetaProvenance);
  if (it == dict.metadata.end()) return std::nullopt;
  const nlohmann::json j = parse_json_text(it->second, cat(path, ": metadata ", kMetaProvenance));
  try {
    Provenance p;
    p.job = j.at("job").get<std::string>();
    p.version = j.at("version").get<std::string>();
    p.commit = j.at("commit").get<std::string>();
    p.dataset = j.at("dataset").get<std::string>();
    p.tensors = j.at("tensors").get<std::string>();
    p.settings = j.at("settings").get<std::string>();
    p.seed = j.at("seed").get<uint64_t>();
    p.epochs = j.at("epochs").get<int64_t>();
    p.eval_images = j.at("eval").at("images").get<int64_t>();
    p.top1 = j.at("eval").at("top1").get<double>();
    return p;
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(path, ": malformed metadata ", kMetaProvenance, " (", e.what(), ")"));
  }
}

void check_provenance(const Provenance& p, const std::string& path, VisionTransformer& model,
                      const std::string& dataset) {
  const std::string hash = weights_hash(model);
  if (hash != p.tensors) {
    throw Error(cat(path, ": the tensors hash to ", hash, " but the provenance records ", p.tensors,
                    "; the file was changed after `vitslim ", p.job, "` wrote it"));
  }
  if (p.dataset != dataset) {
    throw Error(cat(path, " was trained on ", p.dataset, ", not on --data-set ", dataset));
  }
}

void check_recorded_top1(const Provenance& p, const std::string& path, double top1, int64_t images,
                         double tolerance_points) {
  if (images != p.eval_images) return;
  if (std::fabs(top1 - p.top1) > tolerance_points) {
    throw Error(cat(path, ": evaluates to ", fmt(top1), "% top-1 on ", images,
                    " test images, but its provenance records ", fmt(p.top1),
                    "%; the data or the preprocessing differ from the run that made it"));
  }
}

}  // namespace vitslim::model
