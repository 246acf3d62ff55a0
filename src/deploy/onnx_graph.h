// Building an ONNX graph (deploy/onnx_export.cpp writes the ViT with it): GraphBuilder adds nodes
// and constants with unique value names and keeps alive every tensor an initializer points into;
// Stream and Batch are the values the token-merging part of the graph passes along.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "deploy/onnx_proto.h"

namespace vitslim::deploy {

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::Model& model) : model_(model) {}

  // A float32 constant named `name` (contiguous CPU copy kept here).
  std::string weight(const std::string& name, const at::Tensor& t);
  // x @ W^T + b of a Linear (W [out, in]): [..., in] -> [..., out]; `scale` multiplies both.
  std::string linear(const std::string& x, const at::Tensor& w, const at::Tensor& b, const std::string& name,
                     double scale = 1.0);
  // An int64 constant, 1-D unless `dims` says otherwise ({} for a scalar).
  std::string ints(const std::string& name, const std::vector<int64_t>& values,
                   std::optional<std::vector<int64_t>> dims = std::nullopt);
  // A float constant, 1-D unless `dims` says otherwise.
  std::string floats(const std::string& name, const std::vector<float>& values,
                     std::optional<std::vector<int64_t>> dims = std::nullopt);
  std::string scalar(const std::string& name, float value) { return floats(name, {value}, std::vector<int64_t>{}); }
  // One node with one output; returns the output's name (`name`, made unique).
  std::string op(const std::string& type, std::vector<std::string> inputs, std::vector<onnx::Attribute> attributes,
                 const std::string& name) {
    return ops(type, std::move(inputs), std::move(attributes), name, 1).front();
  }
  // One node with `outputs` outputs, named <name>, <name>.1, ...
  std::vector<std::string> ops(const std::string& type, std::vector<std::string> inputs,
                               std::vector<onnx::Attribute> attributes, const std::string& name, int outputs);
  // The graph's output gets a fixed name: the last node's output is renamed.
  void rename_last_output(const std::string& name) { model_.nodes.back().outputs = {name}; }

 private:
  std::string unique(const std::string& name);
  std::string constant(const std::string& name, onnx::DataType type, const void* data, size_t bytes,
                       std::vector<int64_t> dims);

  onnx::Model& model_;
  std::vector<at::Tensor> keep_;
  std::map<std::string, int64_t> used_;
};

// The token stream between blocks: tokens [B, N, C] and, once any merged, their sizes [B, N, 1].
struct Stream {
  std::string x, size;  // size "": every token has size 1
  int64_t tokens = 0;   // N
};

// Values of the batch every merge needs: the batch size [1] and each image's index [B, 1].
struct Batch {
  std::string batch, image;
};

}  // namespace vitslim::deploy
