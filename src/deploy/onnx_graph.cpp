// Implements the ONNX graph builder (see onnx_graph.h).
#include "deploy/onnx_graph.h"

#include <torch/torch.h>

#include "core/error.h"

namespace vitslim::deploy {

std::string GraphBuilder::weight(const std::string& name, const at::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  keep_.push_back(c);
  onnx::Initializer init;
  init.name = name;
  init.dims = c.sizes().vec();
  init.data = c.data_ptr();
  init.bytes = static_cast<size_t>(c.numel()) * sizeof(float);
  model_.initializers.push_back(std::move(init));
  return name;
}

std::string GraphBuilder::linear(const std::string& x, const at::Tensor& w, const at::Tensor& b,
                                 const std::string& name, double scale) {
  auto wt = weight(name + ".weight_t", w.t() * scale);
  if (!b.defined()) return op("MatMul", {x, wt}, {}, name);  // a Linear without bias
  auto bias = weight(name + ".bias", b * scale);
  return op("Add", {op("MatMul", {x, wt}, {}, name + ".matmul"), bias}, {}, name);
}

std::string GraphBuilder::ints(const std::string& name, const std::vector<int64_t>& values,
                               std::optional<std::vector<int64_t>> dims) {
  return constant(name, onnx::DataType::Int64, values.data(), values.size() * sizeof(int64_t),
                  dims ? *dims : std::vector<int64_t>{static_cast<int64_t>(values.size())});
}

std::string GraphBuilder::floats(const std::string& name, const std::vector<float>& values,
                                 std::optional<std::vector<int64_t>> dims) {
  return constant(name, onnx::DataType::Float, values.data(), values.size() * sizeof(float),
                  dims ? *dims : std::vector<int64_t>{static_cast<int64_t>(values.size())});
}

std::vector<std::string> GraphBuilder::ops(const std::string& type, std::vector<std::string> inputs,
                                           std::vector<onnx::Attribute> attributes, const std::string& name,
                                           int outputs) {
  onnx::Node n;
  n.op_type = type;
  n.inputs = std::move(inputs);
  n.attributes = std::move(attributes);
  n.name = unique(name);
  n.outputs = {n.name};
  for (int i = 1; i < outputs; ++i) n.outputs.push_back(cat(n.name, ".", i));
  model_.nodes.push_back(std::move(n));
  return model_.nodes.back().outputs;
}

std::string GraphBuilder::unique(const std::string& name) {
  const int64_t n = used_[name]++;
  return n == 0 ? name : cat(name, "_", n);
}

std::string GraphBuilder::constant(const std::string& name, onnx::DataType type, const void* data, size_t bytes,
                                   std::vector<int64_t> dims) {
  onnx::Initializer init;
  init.name = unique(name);
  init.type = type;
  init.dims = std::move(dims);
  init.owned.assign(static_cast<const char*>(data), bytes);
  model_.initializers.push_back(std::move(init));
  return model_.initializers.back().name;
}

}  // namespace vitslim::deploy
