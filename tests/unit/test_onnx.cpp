// Tests of the ONNX writer (deploy/onnx_proto.h, deploy/onnx_export.h): the protobuf wire
// encoding read back by a minimal protobuf reader (varints, nested lengths, negative integers,
// floats, referenced tensor bytes), and a written ViT graph whose structure follows the model's
// attention modes. Runtimes check the numbers (tests/e2e/export.sh).
#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

#include "deploy/onnx_export.h"
#include "deploy/onnx_proto.h"
#include "model/presets.h"
#include "unit/test_util.h"

namespace {

using vitslim::deploy::onnx::Encoded;

std::string flatten(const Encoded& e) {
  std::string out;
  for (const auto& p : e.pieces) out.append(static_cast<const char*>(p.data), p.size);
  return out;
}

// One protobuf field: number, wire type, and the varint or the bytes.
struct Field {
  uint32_t number = 0, type = 0;
  uint64_t varint = 0;
  std::string bytes;
};

uint64_t read_varint(const std::string& s, size_t& at) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    const auto byte = static_cast<uint8_t>(s.at(at++));
    v |= uint64_t{byte & 0x7fU} << shift;
    if (!(byte & 0x80U)) return v;
  }
}

std::vector<Field> parse(const std::string& s) {
  std::vector<Field> fields;
  for (size_t at = 0; at < s.size();) {
    const uint64_t key = read_varint(s, at);
    Field f{static_cast<uint32_t>(key >> 3), static_cast<uint32_t>(key & 7), 0, {}};
    if (f.type == 0) {
      f.varint = read_varint(s, at);
    } else if (f.type == 2) {
      const uint64_t n = read_varint(s, at);
      f.bytes = s.substr(at, n);
      at += n;
    } else if (f.type == 5) {
      f.bytes = s.substr(at, 4);
      at += 4;
    } else {
      ADD_FAILURE() << "unexpected wire type " << f.type;
      break;
    }
    fields.push_back(f);
  }
  return fields;
}

std::vector<Field> with_number(const std::vector<Field>& fields, uint32_t number) {
  std::vector<Field> out;
  for (const auto& f : fields) {
    if (f.number == number) out.push_back(f);
  }
  return out;
}

}  // namespace

TEST(Onnx, WireEncodingReadsBack) {
  namespace onnx = vitslim::deploy::onnx;
  const std::vector<float> weights = {1.5F, -2.0F, 0.25F, 4.0F, 5.0F, 6.0F};
  onnx::Model m;
  m.producer_name = "vitslim";
  m.producer_version = "0.1";
  m.graph_name = "g";
  onnx::Initializer w;
  w.name = "w";
  w.dims = {2, 3};
  w.data = weights.data();
  w.bytes = weights.size() * sizeof(float);
  m.initializers.push_back(w);
  m.nodes.push_back({"Reshape",
                     {"x", "shape"},
                     {"y"},
                     {{"allowzero", int64_t{-1}},
                      {"alpha", 0.5F},
                      {"perm", std::vector<int64_t>{0, 300}},
                      {"mode", std::string("up")}},
                     "n0"});
  m.inputs.push_back({"x", onnx::DataType::Float, {std::string("batch"), int64_t{3}}});
  m.metadata.emplace_back("vitslim.removed_layers", "1,3");
  const Encoded e = onnx::encode(m);
  const std::string bytes = flatten(e);
  ASSERT_EQ(bytes.size(), e.size);

  const auto model = parse(bytes);
  EXPECT_EQ(with_number(model, 1).at(0).varint, 8U);  // ir_version
  EXPECT_EQ(with_number(model, 2).at(0).bytes, "vitslim");
  const auto opset = parse(with_number(model, 8).at(0).bytes);
  EXPECT_EQ(with_number(opset, 2).at(0).varint, 17U);
  const auto meta = parse(with_number(model, 14).at(0).bytes);
  EXPECT_EQ(with_number(meta, 1).at(0).bytes, "vitslim.removed_layers");
  EXPECT_EQ(with_number(meta, 2).at(0).bytes, "1,3");

  const auto graph = parse(with_number(model, 7).at(0).bytes);
  const auto tensor = parse(with_number(graph, 5).at(0).bytes);
  ASSERT_EQ(with_number(tensor, 1).size(), 2U);  // dims, unpacked
  EXPECT_EQ(with_number(tensor, 1)[1].varint, 3U);
  EXPECT_EQ(with_number(tensor, 2).at(0).varint, 1U);  // FLOAT
  const std::string raw = with_number(tensor, 9).at(0).bytes;
  ASSERT_EQ(raw.size(), weights.size() * sizeof(float));
  EXPECT_EQ(std::memcmp(raw.data(), weights.data(), raw.size()), 0);

  const auto node = parse(with_number(graph, 1).at(0).bytes);
  EXPECT_EQ(with_number(node, 4).at(0).bytes, "Reshape");
  EXPECT_EQ(with_number(node, 1).size(), 2U);
  const auto attrs = with_number(node, 5);
  ASSERT_EQ(attrs.size(), 4U);
  const auto negative = parse(attrs[0].bytes);
  EXPECT_EQ(static_cast<int64_t>(with_number(negative, 3).at(0).varint), -1);  // 10-byte varint
  EXPECT_EQ(with_number(negative, 20).at(0).varint, 2U);                       // INT
  const auto alpha = parse(attrs[1].bytes);
  float f = 0;
  std::memcpy(&f, with_number(alpha, 2).at(0).bytes.data(), sizeof f);
  EXPECT_EQ(f, 0.5F);
  const auto perm = with_number(parse(attrs[2].bytes), 8);
  ASSERT_EQ(perm.size(), 2U);
  EXPECT_EQ(perm[1].varint, 300U);  // two varint bytes
  EXPECT_EQ(with_number(parse(attrs[3].bytes), 4).at(0).bytes, "up");

  const auto input = parse(with_number(graph, 11).at(0).bytes);
  const auto type = parse(with_number(input, 2).at(0).bytes);
  const auto tensor_type = parse(with_number(type, 1).at(0).bytes);
  const auto dims = with_number(parse(with_number(tensor_type, 2).at(0).bytes), 1);
  ASSERT_EQ(dims.size(), 2U);
  EXPECT_EQ(with_number(parse(dims[0].bytes), 2).at(0).bytes, "batch");
  EXPECT_EQ(with_number(parse(dims[1].bytes), 1).at(0).varint, 3U);
}

TEST(Onnx, GraphFollowsTheAttentionModes) {
  using vitslim::model::AttentionMode;
  vitslim::test::TempDir dir;
  torch::manual_seed(0);
  vitslim::model::VisionTransformer vit(vitslim::model::preset("vit_test"));
  vit->set_mode(1, AttentionMode::Removed);
  vit->set_mode(2, AttentionMode::Diluting, 0.25);
  vit->eval();
  const std::string path = dir.file("m.onnx");
  const uint64_t size = vitslim::deploy::write_onnx(vit, {{"vitslim.mean", "0.5"}}, path);
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(bytes.size(), size);
  const auto model = parse(bytes);
  std::map<std::string, std::string> meta;
  for (const auto& entry : with_number(model, 14)) {
    const auto kv = parse(entry.bytes);
    meta[with_number(kv, 1).at(0).bytes] = with_number(kv, 2).at(0).bytes;
  }
  EXPECT_EQ(meta.at("vitslim.removed_layers"), "1");
  EXPECT_EQ(meta.at("vitslim.mean"), "0.5");
  EXPECT_EQ(meta.count("format"), 0U);
  std::map<std::string, int> ops;
  bool removed_attention = false, logits = false;
  for (const auto& field : with_number(parse(with_number(model, 7).at(0).bytes), 1)) {
    const auto node = parse(field.bytes);
    const std::string name = with_number(node, 3).at(0).bytes;
    ++ops[with_number(node, 4).at(0).bytes];
    removed_attention |= name.rfind("blocks.1.attn", 0) == 0 || name.rfind("blocks.1.norm1", 0) == 0;
    for (const auto& out : with_number(node, 2)) logits |= out.bytes == "logits";
  }
  EXPECT_FALSE(removed_attention);
  EXPECT_TRUE(logits);
  EXPECT_EQ(ops["Softmax"], 3);             // blocks 0, 2 (diluting) and 3 (class row)
  EXPECT_EQ(ops["LayerNormalization"], 9);  // 3 norm1 + norm1 of the class row + 4 norm2 + final
  EXPECT_EQ(ops["Identity"], 0);
  EXPECT_EQ(ops["Erf"], 4);
}
