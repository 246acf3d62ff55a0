// Bounded, seeded mutation fuzzing of every parser of untrusted bytes: the pickle machine, the zip
// reader (.pth), safetensors, IDX, CIFAR, JPEG/PNG, INI config files, tar shards and dataset index files. Each target
// mutates valid seed files (bit flips, boundary values, cut, repeated and inserted ranges) and requires that the parser
// either succeeds or throws vitslim::Error: any other exception fails the test, a crash fails the run. Reproducible:
// VITSLIM_FUZZ_SEED (default 1) fixes the inputs; each target runs VITSLIM_FUZZ_ITERATIONS inputs (default 5000), the
// same ones on every machine however fast (no time budget by default, so what the suite covers never depends on the
// clock). A longer campaign: VITSLIM_FUZZ_ITERATIONS=1e9 VITSLIM_FUZZ_SECONDS=600 (a cap by the clock, only when set).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>

#include "core/error.h"
#include "data/formats/dataset.h"
#include "data/formats/item_index.h"
#include "data/formats/shards.h"
#include "data/formats/tar.h"
#include "data/image/codec.h"
#include "jobs/job.h"
#include "model/weights/pickle.h"
#include "model/weights/weights.h"
#include "model/weights/zip_reader.h"
#include "test_util.h"

namespace m = vitslim::model;
namespace data = vitslim::data;
using Bytes = std::vector<uint8_t>;

namespace {

constexpr uint64_t kDefaultIterations = 5000;
constexpr size_t kMaxStorageBytes = size_t{1} << 20;

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? static_cast<uint64_t>(std::strtod(v, nullptr)) : fallback;
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// One to four random edits; half of them inside [0, focus) when focus > 0 (headers live there).
class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  Bytes mutate(Bytes b, size_t focus) {
    const int edits = 1 + static_cast<int>(pick(4));
    for (int e = 0; e < edits && !b.empty(); ++e) edit(b, focus);
    return b;
  }

 private:
  size_t pick(size_t n) { return n ? std::uniform_int_distribution<size_t>(0, n - 1)(rng_) : 0; }
  size_t position(const Bytes& b, size_t focus) {
    return focus && pick(2) ? pick(std::min(focus, b.size())) : pick(b.size());
  }

  void edit(Bytes& b, size_t focus) {
    static const uint8_t kBytes[] = {0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, '(', '.', 'q', 0x8C};
    static const uint32_t kWords[] = {0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x10000, 0xFFFF};
    const size_t at = position(b, focus);
    switch (pick(7)) {
      case 0:
        b[at] ^= static_cast<uint8_t>(1u << pick(8));
        break;
      case 1:
        b[at] = kBytes[pick(std::size(kBytes))];
        break;
      case 2: {
        const uint32_t w = kWords[pick(std::size(kWords))];
        for (size_t k = 0; k < 4 && at + k < b.size(); ++k)
          b[at + k] = static_cast<uint8_t>(w >> (8 * (pick(2) ? k : 3 - k)));
        break;
      }
      case 3:
        b.resize(at);  // cut
        break;
      case 4: {
        const size_t n = std::min(b.size() - at, 1 + pick(64));
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
        break;
      }
      case 5: {
        const size_t n = std::min(b.size() - at, 1 + pick(64));
        const Bytes chunk(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
        const size_t to = pick(b.size());
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(to), chunk.begin(), chunk.end());
        break;
      }
      default: {
        Bytes noise(1 + pick(16));
        for (auto& x : noise) x = static_cast<uint8_t>(pick(256));
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), noise.begin(), noise.end());
      }
    }
  }

  std::mt19937_64 rng_;
};

// Feeds mutated seeds to `parse`; a non-vitslim exception is a failure naming the input.
void fuzz(const std::string& target, const std::vector<Bytes>& seeds, size_t focus,
          const std::function<void(const Bytes&)>& parse) {
  ASSERT_FALSE(seeds.empty());
  for (const auto& s : seeds) ASSERT_FALSE(s.empty()) << target << ": empty seed";
  const uint64_t seed = env_or("VITSLIM_FUZZ_SEED", 1);
  const uint64_t iterations = env_or("VITSLIM_FUZZ_ITERATIONS", kDefaultIterations);
  const uint64_t seconds = env_or("VITSLIM_FUZZ_SECONDS", 0);  // 0: no cap by the clock
  const auto budget = std::chrono::seconds(seconds);
  Mutator mutator(seed * 1000003 + std::hash<std::string>()(target));
  const auto start = std::chrono::steady_clock::now();
  uint64_t done = 0, accepted = 0;
  for (; done < iterations && (seconds == 0 || std::chrono::steady_clock::now() - start < budget); ++done) {
    const Bytes input = mutator.mutate(seeds[done % seeds.size()], focus);
    try {
      parse(input);
      ++accepted;
    } catch (const vitslim::Error&) {
      // refused with a message: what hostile input must get
    } catch (const std::exception& e) {
      const std::string keep = (std::filesystem::temp_directory_path() / ("vitslim_fuzz_" + target + ".bin")).string();
      write_file(keep, input);
      FAIL() << target << ": input " << done << " (VITSLIM_FUZZ_SEED=" << seed << ", kept as " << keep
             << ") raised a non-vitslim exception: " << e.what();
    }
  }
  std::printf("[fuzz] %s: %llu inputs, %llu accepted\n", target.c_str(), static_cast<unsigned long long>(done),
              static_cast<unsigned long long>(accepted));
}

Bytes pickle_of(const std::string& pth) {
  m::ZipReader zip(vitslim::test::test_data(pth), pth);
  for (const auto& [name, member] : zip.members()) {
    if (name.size() > 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0) return zip.read_at_most(name, 1 << 24);
  }
  return {};
}

Bytes idx_file(bool gz) {
  Bytes b = {0, 0, 0x08, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2};
  for (int k = 0; k < 12; ++k) b.push_back(static_cast<uint8_t>(k * 20));
  if (!gz) return b;
  uLongf n = compressBound(static_cast<uLong>(b.size())) + 32;
  Bytes out(n);
  z_stream z{};
  deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, MAX_WBITS + 16, 8, Z_DEFAULT_STRATEGY);  // gzip wrapper
  z.next_in = b.data();
  z.avail_in = static_cast<uInt>(b.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

TEST(Fuzz, Pickle) {
  const m::StorageReader storages = [](const std::string& key, size_t bytes) -> m::StorageBytes {
    if (bytes > kMaxStorageBytes) throw vitslim::Error("storage " + key + " too large for the fuzzer");
    return std::make_shared<const std::vector<uint8_t>>(bytes);
  };
  fuzz("pickle", {pickle_of("golden_wrapped.pth"), pickle_of("deit_train_checkpoint.pth")}, 0,
       [&](const Bytes& b) { m::unpickle(b.data(), b.size(), storages, "fuzz.pkl"); });
}

TEST(Fuzz, ZipArchive) {
  vitslim::test::TempDir dir;
  const std::string file = dir.file("fuzz.pth");
  fuzz("zip", {read_file(vitslim::test::test_data("single_entry.pth"))}, 0, [&](const Bytes& b) {
    write_file(file, b);
    m::read_pth(file);
  });
}

TEST(Fuzz, SafetensorsHeader) {
  vitslim::test::TempDir dir;
  m::write_safetensors(dir.file("seed.safetensors"),
                       {{"a", torch::ones({2, 3})}, {"b", torch::zeros({4}, torch::kHalf)}},
                       {{"vitslim.num_heads", "2"}});
  const Bytes seed = read_file(dir.file("seed.safetensors"));
  const std::string file = dir.file("fuzz.safetensors");
  fuzz("safetensors", {seed}, 200, [&](const Bytes& b) {
    write_file(file, b);
    m::read_weights(file);
  });
}

TEST(Fuzz, Idx) {
  vitslim::test::TempDir dir;
  const std::string file = dir.file("images");
  fuzz("idx", {idx_file(false), idx_file(true)}, 16, [&](const Bytes& b) {
    write_file(file, b);
    data::read_idx(file, 3);
  });
}

TEST(Fuzz, Cifar) {
  vitslim::test::TempDir dir;
  constexpr size_t kRecord = 2 + 3072;
  Bytes seed(3 * kRecord, 7);
  for (size_t r = 0; r < 3; ++r) seed[r * kRecord + 1] = static_cast<uint8_t>(r * 40);
  fuzz("cifar", {seed}, 0, [&](const Bytes& b) {
    write_file(dir.file("train.bin"), b);
    auto ds = data::read_cifar(dir.path(), 100, "train");
    uint8_t pixels[3072];
    for (int64_t i = 0; i < ds->size(); ++i) ds->read(i, pixels);
  });
}

TEST(Fuzz, JpegAndPngHeaders) {
  const std::string images = vitslim::test::test_data("images/");
  fuzz("image",
       {read_file(images + "odd.jpg"), read_file(images + "progressive.jpg"), read_file(images + "palette.png")}, 1024,
       [](const Bytes& b) { data::SourceImage::from_bytes(b, "fuzz.jpg").decode_all(3); });
}

TEST(Fuzz, IniConfig) {
  vitslim::test::TempDir dir;
  const auto parsed =
      vitslim::parse_job_options("entropy", {"--data-path", " a path/with \"quotes\" ", "--mean", "0.5"});
  const std::string text = vitslim::config_to_ini(parsed.config);
  const std::string file = dir.file("fuzz.ini");
  fuzz("ini", {Bytes(text.begin(), text.end())}, 0, [&](const Bytes& b) {
    write_file(file, b);
    vitslim::parse_job_options("entropy", {"--config", file});
  });
}

TEST(Fuzz, TarShard) {
  vitslim::test::TempDir dir;
  const std::string seed_file = dir.file("seed.tar");
  {
    std::FILE* f = std::fopen(seed_file.c_str(), "wb");
    data::TarWriter w(f, seed_file);
    const std::string image(700, 'x'), json = R"({"label": 4})", long_name(150, 'n');
    w.add("c/1.jpg", image.data(), image.size());
    w.add("c/1.cls", "3", 1);
    w.add(long_name + "/2.png", image.data(), 20);
    w.add(long_name + "/2.json", json.data(), json.size());
    w.finish();
    std::fclose(f);
  }
  const std::string file = dir.file("fuzz.tar");
  fuzz("tar", {read_file(seed_file)}, 0, [&](const Bytes& b) {
    write_file(file, b);
    data::scan_shards({file});
  });
}

TEST(Fuzz, DatasetIndex) {
  data::ItemIndex x;
  x.kind = data::ItemIndex::Kind::Folder;
  x.root = "/data/train";
  x.key = "key";
  x.containers = {"n01", "n02"};
  x.problems = {"a problem"};
  for (int i = 0; i < 4; ++i) {
    data::ItemIndex::Entry e;
    e.name = x.add_name("img" + std::to_string(i) + ".jpg");
    e.size = 100;
    e.container = static_cast<uint32_t>(i % 2);
    e.label = i % 2;
    x.entries.push_back(e);
  }
  const std::string bytes = x.serialise();
  fuzz("index", {Bytes(bytes.begin(), bytes.end())}, 0, [](const Bytes& b) {
    const data::ItemIndex y = data::ItemIndex::parse(std::string(b.begin(), b.end()), "fuzz index");
    for (int64_t i = 0; i < y.size(); ++i) (void)y.name(i);
  });
}
