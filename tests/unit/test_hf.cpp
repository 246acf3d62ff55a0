// Hugging Face transformers checkpoints (model/weights/hf_checkpoint.h) against transformers itself: every
// class of scripts/make_hf_golden.py (ViT, DeiT with and without teacher, DINOv2 with and without
// registers and with its [CLS, mean of patches] classifier, CLIP vision with and without projection; safetensors,
// pytorch_model.bin and sharded) read by vitslim gives transformers' outputs in every attention mode; class names come
// from id2label; broken folders are errors naming the file.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "golden_modes.h"
#include "model/checkpoint.h"
#include "model/weights/hf_checkpoint.h"
#include "test_util.h"

namespace m = vitslim::model;
namespace fs = std::filesystem;

namespace {

constexpr double kHfTolerance = 1e-4;

std::string hf_data(const std::string& name) { return vitslim::test::test_data("hf/" + name); }

std::vector<std::string> hf_cases() {
  std::ifstream in(hf_data("cases.json"));
  return nlohmann::json::parse(in).get<std::vector<std::string>>();
}

std::string hf_error(const std::string& path) {
  try {
    m::read_weights(path);
  } catch (const vitslim::Error& e) {
    return e.what();
  }
  return "no error";
}

void copy_hf_folder(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from)) fs::copy_file(e.path(), fs::path(to) / e.path().filename());
}

}  // namespace

TEST(HuggingFace, EveryClassMatchesTransformersInEveryMode) {
  ASSERT_EQ(hf_cases().size(), 9u);  // the classes of scripts/make_hf_golden.py
  for (const auto& c : hf_cases()) {
    const auto expected = m::read_safetensors(hf_data(c + "_expected.safetensors"));
    vitslim::ModelRequest request;
    request.weights = hf_data(c);
    for (const auto& [mode, blocks] : vitslim::test::golden_modes()) {
      auto model = m::build_model(request, 0);
      model->eval();
      for (const auto& [block, bm] : blocks) model->set_mode(block, bm.first, bm.second);
      torch::NoGradGuard no_grad;
      const auto got = model->forward(*expected.find("input"));
      const auto& want = *expected.find("logits." + mode);
      ASSERT_EQ(got.sizes(), want.sizes()) << c << " " << mode;
      EXPECT_LE((got - want).abs().max().item<double>(), kHfTolerance) << c << " " << mode;
    }
  }
}

TEST(HuggingFace, TheWeightsFileInsideTheFolderAndClassNames) {
  const auto folder = m::read_weights(hf_data("vit_classifier"));
  const auto file = m::read_weights(hf_data("vit_classifier/model.safetensors"));  // config.json beside it
  ASSERT_EQ(folder.tensors.size(), file.tensors.size());
  for (size_t i = 0; i < folder.tensors.size(); ++i) {
    EXPECT_EQ(folder.tensors[i].first, file.tensors[i].first);
    EXPECT_TRUE(folder.tensors[i].second.equal(file.tensors[i].second)) << folder.tensors[i].first;
  }
  const auto names = nlohmann::json::parse(folder.metadata.at(m::kMetaClassNames)).get<std::vector<std::string>>();
  EXPECT_EQ(names, (std::vector<std::string>{"class 0", "class 1", "class 2", "class 3", "class 4"}));
  EXPECT_EQ(folder.metadata.at(m::kMetaNumHeads), "2");
  EXPECT_EQ(std::stod(folder.metadata.at(m::kMetaNormEps)), 1e-12);
}

// timm's hub layout: config.json (timm's, without model_type) beside timm-named model.safetensors.
TEST(HuggingFace, TimmHubFoldersAreReadAsTheyAre) {
  vitslim::test::TempDir dir;
  fs::create_directories(dir.file("timm"));
  const auto timm = m::read_weights(vitslim::test::test_data("deit_tiny.safetensors"));
  std::vector<std::pair<std::string, at::Tensor>> tensors(timm.tensors.begin(), timm.tensors.end());
  m::write_safetensors(dir.file("timm/model.safetensors"), tensors, {{"format", "pt"}});
  std::ofstream(dir.file("timm/config.json")) << R"({"architecture": "deit_tiny_patch16_224", "num_classes": 1000})";
  const auto read = m::read_weights(dir.file("timm"));
  ASSERT_EQ(read.tensors.size(), timm.tensors.size());
  EXPECT_TRUE(read.find("blocks.0.attn.qkv.weight")->equal(*timm.find("blocks.0.attn.qkv.weight")));
}

TEST(HuggingFace, BrokenFoldersNameTheFile) {
  vitslim::test::TempDir dir;
  // No config.json: not a transformers folder, so a folder where a file goes.
  fs::create_directories(dir.file("empty"));
  EXPECT_NE(hf_error(dir.file("empty")).find("is a directory"), std::string::npos);
  // Two weight files of one format: ambiguous. Safetensors beside pytorch_model.bin (hub folders hold
  // both, the same weights): safetensors, as transformers chooses.
  copy_hf_folder(hf_data("vit_classifier"), dir.file("two"));
  fs::copy_file(hf_data("deit_teacher_sharded/model.safetensors.index.json"),
                dir.file("two/model.safetensors.index.json"));
  EXPECT_NE(hf_error(dir.file("two")).find("two weight files"), std::string::npos);
  copy_hf_folder(hf_data("vit_classifier"), dir.file("both"));
  std::ofstream(dir.file("both/pytorch_model.bin")) << "not read";
  EXPECT_EQ(hf_error(dir.file("both")), "no error");
  // A config of another architecture.
  copy_hf_folder(hf_data("vit_classifier"), dir.file("bert"));
  std::ofstream(dir.file("bert/config.json")) << R"({"model_type": "bert", "architectures": ["BertModel"]})";
  EXPECT_NE(hf_error(dir.file("bert")).find("model_type 'bert' is not a ViT"), std::string::npos);
  // config.json and the tensors disagree.
  copy_hf_folder(hf_data("vit_classifier"), dir.file("liar"));
  {
    std::ifstream in(dir.file("liar/config.json"));
    auto j = nlohmann::json::parse(in);
    j["num_hidden_layers"] = 7;
    std::ofstream(dir.file("liar/config.json")) << j.dump();
  }
  const std::string liar = hf_error(dir.file("liar"));
  EXPECT_NE(liar.find("num_hidden_layers 7 but"), std::string::npos) << liar;
  EXPECT_NE(liar.find("config.json"), std::string::npos) << liar;
  // A sharded checkpoint with a missing shard, and an index that lies about a key.
  copy_hf_folder(hf_data("deit_teacher_sharded"), dir.file("missing"));
  fs::remove(dir.file("missing/model-00003-of-00010.safetensors"));
  EXPECT_NE(hf_error(dir.file("missing")).find("names shard model-00003-of-00010.safetensors, which is missing"),
            std::string::npos);
  copy_hf_folder(hf_data("deit_teacher_sharded"), dir.file("lies"));
  {
    std::ifstream in(dir.file("lies/model.safetensors.index.json"));
    auto j = nlohmann::json::parse(in);
    auto& map = j["weight_map"];
    const std::string key = map.begin().key();
    const std::string shard = map.begin().value();
    for (auto& [k, v] : map.items()) {
      if (v != shard) {
        map[key] = v;  // the key is said to be in a shard that does not hold it
        break;
      }
    }
    std::ofstream(dir.file("lies/model.safetensors.index.json")) << j.dump();
  }
  EXPECT_NE(hf_error(dir.file("lies")).find("model.safetensors.index.json"), std::string::npos);
  // A dtype other than float32/bfloat16/float16.
  copy_hf_folder(hf_data("vit_classifier"), dir.file("ints"));
  auto sd = m::read_weight_file(dir.file("ints/model.safetensors"));
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& [k, t] : sd.tensors) tensors.emplace_back(k, k == "classifier.bias" ? t.to(torch::kLong) : t);
  fs::remove(dir.file("ints/model.safetensors"));
  m::write_safetensors(dir.file("ints/model.safetensors"), tensors, {{"format", "pt"}});
  EXPECT_NE(hf_error(dir.file("ints")).find("'classifier.bias' is Long"), std::string::npos)
      << hf_error(dir.file("ints"));
}
