// Tests weight files: the restricted .pth reader on every variant and defect, safetensors
// round trips with metadata, strict mapping errors, pos_embed interpolation, head reset, and
// loading a full checkpoint into a model whose attention layers are removed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/checkpoint.h"
#include "test_util.h"

namespace m = vitslim::model;
using vitslim::test::fixture;
using vitslim::test::test_data;

namespace {

std::string load_error(const std::string& path, std::function<void(vitslim::ModelRequest&)> edit = {}) {
  vitslim::ModelRequest r;
  r.preset = "vit_test";
  r.weights = path;
  if (edit) edit(r);
  try {
    m::build_model(r, 0);
  } catch (const vitslim::Error& e) {
    return e.what();
  }
  return "";
}

torch::Tensor golden_input() {
  return *m::read_safetensors(fixture("golden_vit_test_expected.safetensors")).find("input");
}
torch::Tensor golden_logits(const std::string& name) {
  return *m::read_safetensors(fixture("golden_vit_test_expected.safetensors")).find("logits." + name);
}

}  // namespace

TEST(Weights, ReaderKeepsOrderAndIgnoresNonTensorEntries) {
  auto sd = m::read_pth(test_data("golden_wrapped.pth"));  // {"model": ..., "args": Namespace, ...}
  EXPECT_EQ(sd.tensors.size(), 4u * 12 + 8);
  auto timm_order = m::read_pth(test_data("deit_tiny.pth"));  // timm's own parameter order
  EXPECT_EQ(timm_order.tensors.front().first, "cls_token");
  EXPECT_EQ(timm_order.tensors.back().first, "head.bias");
  auto single = m::read_pth(test_data("single_entry.pth"));
  ASSERT_EQ(single.tensors.size(), 1u);
  EXPECT_EQ(single.tensors[0].first, "head.weight");
  auto fp16 = m::read_pth(test_data("golden_fp16.pth"));
  EXPECT_EQ(fp16.find("pos_embed")->scalar_type(), torch::kHalf);
}

TEST(Weights, DefectsAreClearErrors) {
  auto has = [](const std::string& text, const std::string& part) {
    EXPECT_NE(text.find(part), std::string::npos) << "'" << text << "' lacks '" << part << "'";
  };
  has(load_error(test_data("truncated.pth")), "truncated.pth: corrupt or truncated");
  has(load_error(test_data("truncated.safetensors")), "truncated.safetensors: corrupt safetensors");
  has(load_error(test_data("garbage.bin")), "garbage.bin");
  has(load_error(test_data("legacy.pth")), "legacy (pre-1.6)");
  has(load_error(test_data("nan_values.pth")), "blocks.2.mlp.fc2.bias has NaN");
  has(load_error(test_data("payload_in_state.pth")),
      "refusing global 'posix.system' at ['model']['blocks.0.attn.qkv.weight']");
  has(load_error(test_data("golden_with_payload.pth")), "refusing global 'posix.system' at ['payload']");
  // A flipped byte inside a tensor record, and a record that inflates far beyond its tensor.
  has(load_error(test_data("crc_mismatch.pth")), "crc_mismatch.pth: corrupt or truncated archive (CRC-32 of");
  has(load_error(test_data("inflate_bomb.pth")), "data/0 holds 67108864 bytes, expected 96");
  has(load_error(test_data("no_such_file.pth")), "no_such_file.pth: cannot open");
  has(load_error(test_data("single_entry.pth")), "no 'patch_embed.proj.weight'");
  std::string keys = load_error(test_data("wrong_keys.pth"));
  has(keys, "unknown keys [blocks.3.mlp.fc3.weight]: not a supported ViT variant");
  has(load_error(test_data("wrong_shape.pth")), "wrong shape [blocks.1.mlp.fc1.weight [50, 24] vs model [96, 24]]");
  has(load_error(fixture("golden_vit_test.safetensors"), [](auto& r) { r.preset = "deit_tiny"; }),
      "(preset deit_tiny) but weights");
  has(load_error(fixture("golden_vit_test.safetensors"), [](auto& r) { r.num_classes = 5; }), "--num-classes is 5");
  EXPECT_FALSE(std::filesystem::exists(test_data("vitslim_pickle_executed")));
}

TEST(Weights, SafetensorsRoundTripWithRemovedLayers) {
  vitslim::test::TempDir dir;
  vitslim::ModelRequest r;
  r.preset = "vit_test";
  r.weights = fixture("golden_vit_test.safetensors");
  r.removed_layers = {0, 2};  // drops the attention weights of blocks 0 and 2 from the file
  auto model = m::build_model(r, 0);
  model->eval();
  torch::NoGradGuard no_grad;
  auto logits = model->forward(golden_input());
  EXPECT_LE((logits - golden_logits("removed")).abs().max().item<double>(), 1e-4);
  m::export_safetensors(model, dir.file("compact.safetensors"));
  auto sd = m::read_safetensors(dir.file("compact.safetensors"));
  EXPECT_EQ(sd.metadata.at(m::kMetaRemovedLayers), "0,2");
  EXPECT_EQ(sd.find("blocks.0.attn.qkv.weight"), nullptr);
  EXPECT_NE(sd.find("blocks.1.attn.qkv.weight"), nullptr);
  // The compact file alone rebuilds the model: shape from tensors, heads and modes from metadata.
  vitslim::ModelRequest again;
  again.weights = dir.file("compact.safetensors");
  auto reloaded = m::build_model(again, 99);
  reloaded->eval();
  EXPECT_EQ(reloaded->removed_blocks(), (std::vector<int64_t>{0, 2}));
  EXPECT_TRUE(torch::equal(reloaded->forward(golden_input()), logits));
  EXPECT_TRUE(std::filesystem::exists(dir.file("compact.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("compact.safetensors.partial")));
}

TEST(Weights, PosEmbedInterpolationAndHeadReset) {
  vitslim::ModelRequest r;
  r.preset = "vit_test";
  r.img_size = 48;
  r.weights = fixture("golden_vit_test.safetensors");
  auto model = m::build_model(r, 0);
  auto file = m::read_safetensors(r.weights);
  ASSERT_EQ(model->pos_embed.sizes(), (std::vector<int64_t>{1, 37, 24}));
  EXPECT_TRUE(torch::equal(model->pos_embed.narrow(1, 0, 1), file.find("pos_embed")->narrow(1, 0, 1)));
  // Same grid size: interpolation is the identity.
  r.img_size = 32;
  auto same = m::build_model(r, 0);
  EXPECT_TRUE(torch::equal(same->pos_embed, *file.find("pos_embed")));

  vitslim::ModelRequest head;
  head.preset = "vit_test";
  head.num_classes = 5;
  head.reset_head = true;
  head.weights = r.weights;
  auto reset = m::build_model(head, 0);
  EXPECT_EQ(reset->head->weight.sizes(), (std::vector<int64_t>{5, 24}));
  EXPECT_TRUE(torch::equal(reset->norm->weight, *file.find("norm.weight")));
}

TEST(Weights, SafetensorsWriterIsReadableAndTyped) {
  vitslim::test::TempDir dir;
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"a", torch::arange(6, torch::kFloat).reshape({2, 3}).t()},  // non-contiguous
      {"b", torch::tensor({1, 2}, torch::kLong)},
      {"c", torch::ones({0, 4}, torch::kHalf)}};
  m::write_safetensors(dir.file("x.safetensors"), tensors, {{"k", "v"}});
  auto sd = m::read_safetensors(dir.file("x.safetensors"));
  EXPECT_TRUE(torch::equal(*sd.find("a"), tensors[0].second));
  EXPECT_EQ(sd.find("b")->scalar_type(), torch::kLong);
  EXPECT_EQ(sd.find("c")->sizes(), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(sd.metadata.at("k"), "v");
  EXPECT_THROW(m::write_safetensors(dir.file("missing/x.safetensors"), tensors, {}), vitslim::Error);
  // A header whose shape product wraps around 64 bits is refused, not allocated.
  std::string header = R"({"x":{"dtype":"U8","shape":[7,7905747460161236407],"data_offsets":[0,1]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  uint64_t n = header.size();
  std::ofstream out(dir.file("wrap.safetensors"), std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << 'z';
  out.close();
  try {
    m::read_safetensors(dir.file("wrap.safetensors"));
    FAIL() << "overflowing shape accepted";
  } catch (const vitslim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
  }
}

// Issue 33 item 6: what the safetensors library refuses ("invalid offset", a name twice) is refused
// here too, naming the tensor: two tensors sharing bytes, a gap, bytes after the last tensor, and a
// duplicate key whose last copy JSON would silently keep.
TEST(Weights, SafetensorsWithOverlappingOffsetsOrDuplicateNamesAreRefused) {
  vitslim::test::TempDir dir;
  const auto write = [&](const std::string& name, std::string header, size_t data_bytes) {
    header.append((8 - header.size() % 8) % 8, ' ');
    const uint64_t n = header.size();
    std::ofstream out(dir.file(name), std::ios::binary);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << std::string(data_bytes, '\0');
    return dir.file(name);
  };
  const auto error_of = [](const std::string& path) {
    try {
      m::read_safetensors(path);
    } catch (const vitslim::Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::string a = R"("a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})";
  EXPECT_NE(
      error_of(write("overlap.safetensors", "{" + a + R"(,"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", 24))
          .find("tensor 'b' starts at data byte 8, inside tensor 'a'"),
      std::string::npos);
  EXPECT_NE(
      error_of(write("gap.safetensors", "{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[20,28]}})", 28))
          .find("a gap, invalid offsets"),
      std::string::npos);
  EXPECT_NE(error_of(write("tail.safetensors", "{" + a + "}", 20)).find("4 bytes after the last tensor"),
            std::string::npos);
  EXPECT_NE(error_of(write("twice.safetensors", "{" + a + "," + a + "}", 16)).find("'a' is named twice"),
            std::string::npos);
  EXPECT_EQ(
      error_of(write("good.safetensors", "{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})", 24)),
      "accepted");
}

TEST(Weights, MetadataThatDisagreesWithTheTensorsIsRefusedByKey) {
  vitslim::test::TempDir dir;
  const auto golden = m::read_safetensors(fixture("golden_vit_test.safetensors"));
  auto shape_with = [&](const std::string& key, const std::string& value) {
    auto meta = golden.metadata;
    meta[key] = value;
    m::write_safetensors(dir.file("meta.safetensors"), golden.tensors, meta);
    try {
      return std::to_string(*m::shape_from_weights(m::read_safetensors(dir.file("meta.safetensors"))).img_size);
    } catch (const vitslim::Error& e) {
      return std::string(e.what());
    }
  };
  const auto grid = *m::shape_from_weights(golden).img_size;
  EXPECT_EQ(shape_with(m::kMetaImgSize, std::to_string(grid)), std::to_string(grid));
  for (const char* lie : {"80000", "64", "0", "-8"}) {
    const std::string e = shape_with(m::kMetaImgSize, lie);
    EXPECT_NE(e.find(std::string("metadata vitslim.img_size = ") + lie + " disagrees"), std::string::npos) << e;
  }
  EXPECT_NE(shape_with(m::kMetaImgSize, "32abc").find("'32abc' is not an integer"), std::string::npos);
  EXPECT_NE(shape_with(m::kMetaNumHeads, "5").find("metadata vitslim.num_heads = 5 disagrees"), std::string::npos);
  EXPECT_NE(shape_with(m::kMetaNumHeads, "0").find("metadata vitslim.num_heads = 0 disagrees"), std::string::npos);
  // A removed block that does not exist names the file and the key (not LibTorch's index error).
  for (const char* layers : {"-1", "4", "1,99"}) {
    auto meta = golden.metadata;
    meta[m::kMetaRemovedLayers] = layers;
    m::write_safetensors(dir.file("removed.safetensors"), golden.tensors, meta);
    const std::string e = load_error(dir.file("removed.safetensors"));
    EXPECT_NE(e.find("removed.safetensors: metadata vitslim.removed_layers: block "), std::string::npos) << e;
  }
}

// A safetensors header of 640 bytes starts the file with 0x80 0x02, a pickle's protocol opcode:
// it is still read as safetensors (the byte after the length is the header's '{').
TEST(Weights, SafetensorsWhoseHeaderLengthLooksLikeAPickle) {
  vitslim::test::TempDir dir;
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  constexpr size_t kLength = 0x280;
  header.append(kLength - header.size(), ' ');
  const std::string path = dir.file("pickle-like.safetensors");
  {
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = kLength;
    out.write(reinterpret_cast<const char*>(&n), sizeof n);
    out << header;
    const float values[2] = {1.5F, -2.0F};
    out.write(reinterpret_cast<const char*>(values), sizeof values);
  }
  const auto dict = vitslim::model::read_weights(path);
  ASSERT_NE(dict.find("w"), nullptr);
  EXPECT_TRUE(torch::equal(*dict.find("w"), torch::tensor({1.5F, -2.0F})));
}
