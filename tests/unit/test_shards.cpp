// Tests the WebDataset shard path and the dataset index: brace expansion, member keys, the tar
// writer and reader (round trip, long names, damage), the index file (round trip, corruption,
// the cache), the shard scan's problems (unlabelled, imageless, empty, truncated), the
// make-shards file-name pattern and the shard sampler (deterministic, covering, per-rank shards).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "data/formats/item_index.h"
#include "data/formats/shards.h"
#include "data/formats/tar.h"
#include "data/loading/sampler.h"
#include "data/make_shards.h"
#include "test_util.h"

namespace d = vitslim::data;
namespace fs = std::filesystem;

namespace {

using Members = std::vector<std::pair<std::string, std::string>>;  // name, data

void write_tar(const std::string& path, const Members& members, bool finish = true) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  d::TarWriter w(f, path);
  for (const auto& [name, data] : members) w.add(name, data.data(), data.size());
  if (finish) w.finish();
  std::fclose(f);
}

std::string read_range(const std::string& path, uint64_t offset, uint64_t size) {
  std::ifstream in(path, std::ios::binary);
  std::string s(size, '\0');
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(s.data(), static_cast<std::streamsize>(size));
  return s;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A fake image: the scan never decodes, it only groups members.
std::string blob(size_t n, char c) { return std::string(n, c); }

}  // namespace

TEST(Shards, BraceExpansionAsTheShellDoes) {
  EXPECT_EQ(d::brace_expand("a-{000..003}.tar"),
            (std::vector<std::string>{"a-000.tar", "a-001.tar", "a-002.tar", "a-003.tar"}));
  EXPECT_EQ(d::brace_expand("{x,y}{1..2}"), (std::vector<std::string>{"x1", "x2", "y1", "y2"}));
  EXPECT_EQ(d::brace_expand("s{a,{b,c}}"), (std::vector<std::string>{"sa", "sb", "sc"}));
  EXPECT_EQ(d::brace_expand("{3..1}"), (std::vector<std::string>{"3", "2", "1"}));
  EXPECT_EQ(d::brace_expand("{9..11}"), (std::vector<std::string>{"9", "10", "11"}));
  EXPECT_EQ(d::brace_expand("plain{}.tar"), (std::vector<std::string>{"plain{}.tar"}));
  EXPECT_EQ(d::brace_expand("{one}"), (std::vector<std::string>{"{one}"}));
  EXPECT_EQ(d::brace_expand("x{a..c}"), (std::vector<std::string>{"xa", "xb", "xc"}));
  EXPECT_EQ(d::brace_expand("x{a..cd}"), (std::vector<std::string>{"x{a..cd}"}));  // not a range
  EXPECT_EQ(d::brace_expand("{a,{1..2}}"), (std::vector<std::string>{"a", "1", "2"}));
  EXPECT_THROW(d::brace_expand("{0..999999999}"), vitslim::Error);
  EXPECT_THROW(d::brace_expand("{0..999}{0..999}{0..9}"), vitslim::Error);
}

TEST(Shards, MemberKeysFollowWebDataset) {
  EXPECT_EQ(d::split_member_name("n01/img_1.JPEG"), (std::pair<std::string, std::string>{"n01/img_1", "jpeg"}));
  EXPECT_EQ(d::split_member_name("a.b/c.seg.png"), (std::pair<std::string, std::string>{"a.b/c", "seg.png"}));
  EXPECT_EQ(d::split_member_name("key"), (std::pair<std::string, std::string>{"key", ""}));
}

TEST(Shards, TarRoundTripWithLongNamesAndEmptyMembers) {
  vitslim::test::TempDir dir;
  const std::string file = dir.file("a.tar");
  const std::string long_dir(140, 'd'), long_name(180, 'n');
  const Members members = {{"cls0/x.jpg", blob(1000, 'a')},
                           {"cls0/x.cls", "0"},
                           {long_dir + "/y.png", blob(512, 'b')},  // ustar prefix split
                           {long_name + ".png", blob(3, 'c')},     // a pax path record
                           {"empty.json", ""}};
  write_tar(file, members);
  EXPECT_EQ(fs::file_size(file) % d::kTarBlock, 0u);
  const d::TarListing t = d::list_tar(file);
  EXPECT_TRUE(t.damage.empty()) << t.damage;
  ASSERT_EQ(t.members.size(), members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    EXPECT_EQ(t.members[i].name, members[i].first);
    EXPECT_EQ(t.members[i].size, members[i].second.size());
    EXPECT_EQ(read_range(file, t.members[i].offset, t.members[i].size), members[i].second);
    if (t.members[i].size <= static_cast<uint64_t>(d::kTarBlock)) {
      EXPECT_EQ(t.members[i].small, members[i].second);
    }
  }
  // Deterministic byte for byte: a second write is identical.
  write_tar(dir.file("b.tar"), members);
  std::ifstream a(file, std::ios::binary), b(dir.file("b.tar"), std::ios::binary);
  EXPECT_TRUE(std::equal(std::istreambuf_iterator<char>(a), {}, std::istreambuf_iterator<char>(b)));
}

TEST(Shards, DamagedTarsKeepTheMembersBeforeTheDamage) {
  vitslim::test::TempDir dir;
  const std::string file = dir.file("t.tar");
  write_tar(file, {{"k1.jpg", blob(700, 'a')}, {"k1.cls", "1"}, {"k2.jpg", blob(2000, 'b')}, {"k2.cls", "2"}});
  const auto whole = d::list_tar(file);
  ASSERT_EQ(whole.members.size(), 4u);

  fs::resize_file(file, whole.members[2].offset + 100);  // cut inside k2.jpg
  auto cut = d::list_tar(file);
  EXPECT_FALSE(cut.damage.empty());
  EXPECT_EQ(cut.members.size(), 2u);

  write_tar(file, {{"k1.jpg", blob(700, 'a')}, {"k1.cls", "1"}, {"k2.jpg", blob(20, 'b')}});
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(d::list_tar(file).members[2].offset - d::kTarBlock));  // its name
    f.put('K');  // the header's checksum no longer matches
  }
  auto bad = d::list_tar(file);
  EXPECT_NE(bad.damage.find("checksum"), std::string::npos) << bad.damage;
  EXPECT_EQ(bad.members.size(), 2u);

  std::ofstream(dir.file("empty.tar")).close();
  EXPECT_TRUE(d::list_tar(dir.file("empty.tar")).members.empty());
  EXPECT_THROW(d::list_tar(dir.file("missing.tar")), vitslim::Error);
  EXPECT_THROW(d::list_tar(dir.path()), vitslim::Error);
}

TEST(Shards, ScanGroupsMembersAndRecordsProblems) {
  vitslim::test::TempDir dir;
  const std::string a = dir.file("a.tar"), b = dir.file("b.tar"), c = dir.file("c.tar"), e = dir.file("e.tar");
  write_tar(a, {{"s/1.cls", "3"},  // label before image, as webdataset's ShardWriter writes
                {"s/1.jpg", blob(600, 'x')},
                {"s/2.jpg", blob(10, 'y')},
                {"s/2.json", R"({"label": 7, "other": "x"})"},
                {"s/3.jpg", blob(10, 'z')},  // no label
                {"s/4.cls", "1"}});          // no image
  write_tar(b, {{"t/1.png", blob(30, 'p')}, {"t/1.cls", " 12\n"}});
  write_tar(c, {{"u/1.jpg", blob(2000, 'q')}, {"u/1.cls", "0"}, {"u/2.jpg", blob(2000, 'r')}, {"u/2.cls", "0"}});
  fs::resize_file(c, 1536 + 2000 + 700);  // inside the second sample
  write_tar(e, {});
  const d::ItemIndex x = d::scan_shards({a, b, c, e});
  ASSERT_EQ(x.size(), 4);
  EXPECT_EQ(x.name(0), "s/1.jpg");
  EXPECT_EQ(x.entries[0].label, 3);
  EXPECT_EQ(x.entries[1].label, 7);
  EXPECT_EQ(x.entries[2].label, 12);
  EXPECT_EQ(x.entries[2].container, 1u);
  EXPECT_EQ(x.name(3), "u/1.jpg");
  EXPECT_EQ(read_range(a, x.entries[0].offset, x.entries[0].size), blob(600, 'x'));
  ASSERT_EQ(x.problems.size(), 3u);
  EXPECT_NE(x.problems[0].find("2 sample(s) without a label or an image"), std::string::npos) << x.problems[0];
  EXPECT_NE(x.problems[1].find("damaged tar"), std::string::npos) << x.problems[1];
  EXPECT_NE(x.problems[2].find("empty shard"), std::string::npos) << x.problems[2];
}

TEST(Shards, ReadShardsAppliesTheBadInputPolicy) {
  vitslim::test::TempDir dir;
  write_tar(dir.file("train-0.tar"),
            {{"k/1.jpg", blob(10, 'a')}, {"k/1.cls", "0"}, {"k/2.jpg", blob(10, 'b')}, {"k/2.cls", "5"}});
  d::ShardRequest r;
  r.path = dir.file("train-{0..1}.tar");  // train-1.tar is missing
  r.index = "none";
  r.num_classes = 3;
  auto ds = d::read_shards(r);  // skip: the missing shard and the label 5 are counted
  EXPECT_EQ(ds->size(), 1);
  EXPECT_EQ(ds->num_classes(), 3);
  EXPECT_EQ(ds->shard_bounds(), (std::vector<int64_t>{0, 1}));
  r.skip_bad = false;
  try {
    d::read_shards(r);
    FAIL() << "a missing shard under --bad-images fail";
  } catch (const vitslim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("train-1.tar"), std::string::npos) << e.what();
  }
  r.path = dir.file("train-0.tar");
  try {
    d::read_shards(r);
    FAIL() << "a label out of range under --bad-images fail";
  } catch (const vitslim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("label outside 0..2"), std::string::npos) << e.what();
  }
  r.path = dir.file("nothing-{0..3}.tar");
  EXPECT_THROW(d::read_shards(r), vitslim::Error);
  r.path = dir.path();
  r.skip_bad = true;
  r.split = "val";
  EXPECT_THROW(d::read_shards(r), vitslim::Error);  // no val-*.tar
  r.split = "train";
  EXPECT_EQ(d::read_shards(r)->size(), 1);
}

// Issue 33 items 4 and 10: an index whose entry claims 4 GiB of a small shard is refused before
// any read; a sample with a member twice, or a label member of more than 64 KiB, is a problem
// (refused under --bad-images fail), and a shard cut inside a member's last block is damage.
TEST(Shards, ForgedIndexEntriesDuplicatesHugeLabelsAndCutPaddingAreCaught) {
  vitslim::test::TempDir dir;
  write_tar(dir.file("a.tar"), {{"k/1.jpg", blob(700, 'a')}, {"k/1.cls", "1"}});
  const d::ShardRequest request{dir.file("a.tar"), "train", dir.file("a.index"), 0, true};
  ASSERT_EQ(d::shard_index(request).size(), 1);  // writes a.index
  std::ifstream in(dir.file("a.index"), std::ios::binary);
  d::ItemIndex x = d::ItemIndex::parse(std::string(std::istreambuf_iterator<char>(in), {}), "a.index");
  x.entries[0].size = 0xFFFFFFFFu;
  std::ofstream(dir.file("a.index"), std::ios::binary | std::ios::trunc) << x.serialise();
  try {
    d::shard_index(request);
    FAIL() << "a forged entry was accepted";
  } catch (const vitslim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("beyond its shard"), std::string::npos) << e.what();
  }
  write_tar(dir.file("twice.tar"), {{"a.jpg", "x"}, {"a.cls", "1"}, {"a.jpg", "y"}, {"a.cls", "2"}});
  const auto twice = d::shard_index({dir.file("twice.tar"), "train", "none", 0, true});
  EXPECT_EQ(twice.size(), 0);
  ASSERT_FALSE(twice.problems.empty());
  EXPECT_NE(twice.problems[0].find("has two a.jpg members (duplicate file name)"), std::string::npos);
  write_tar(dir.file("label.tar"), {{"a.jpg", "x"}, {"a.cls", std::string(70000, '1')}});
  const auto label = d::shard_index({dir.file("label.tar"), "train", "none", 0, true});
  ASSERT_FALSE(label.problems.empty());
  EXPECT_NE(label.problems[0].find("a.cls is 70000 bytes"), std::string::npos) << label.problems[0];
  write_tar(dir.file("cut.tar"), {{"a.jpg", blob(100, 'a')}, {"a.cls", "1"}, {"b.jpg", blob(100, 'b')}});
  fs::resize_file(dir.file("cut.tar"), 1024 + 512 + 1);  // a.jpg whole; a.cls's data, its padding cut
  EXPECT_NE(d::list_tar(dir.file("cut.tar")).damage.find("a.cls whose last block is cut off"), std::string::npos);
}

TEST(Shards, ShardListFilesAreRelativeToTheList) {
  vitslim::test::TempDir dir;
  fs::create_directory(dir.file("s"));
  write_tar(dir.file("s/x.tar"), {{"k/1.jpg", "a"}, {"k/1.cls", "1"}});
  std::ofstream(dir.file("shards.txt")) << "# shards\n\n  s/x.tar  \n";
  const auto files = d::shard_files(dir.file("shards.txt"), "train");
  ASSERT_EQ(files.files.size(), 1u);
  EXPECT_EQ(fs::path(files.files[0]), fs::path(dir.file("s/x.tar")));
}

TEST(Shards, IndexFileRoundTripsAndRefusesCorruption) {
  d::ItemIndex x;
  x.kind = d::ItemIndex::Kind::Shards;
  x.root = "/r";
  x.key = "k\n";
  x.containers = {"/a.tar", "/b.tar"};
  x.problems = {"p"};
  x.notes = {"n"};
  for (int i = 0; i < 5; ++i) {
    d::ItemIndex::Entry e;
    e.offset = 512u * static_cast<uint64_t>(i);
    e.name = x.add_name("name" + std::to_string(i));
    e.size = 10u + static_cast<uint32_t>(i);
    e.container = static_cast<uint32_t>(i % 2);
    e.label = i;
    x.entries.push_back(e);
  }
  const std::string bytes = x.serialise();
  const d::ItemIndex y = d::ItemIndex::parse(bytes, "test index");
  EXPECT_EQ(y.serialise(), bytes);
  EXPECT_EQ(y.name(3), "name3");
  EXPECT_EQ(y.containers, x.containers);
  EXPECT_EQ(y.problems, x.problems);
  EXPECT_LE(x.memory_bytes(), 5 * 24 + static_cast<int64_t>(x.arena.size()) + 200);
  for (size_t cut : {size_t{0}, size_t{10}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_THROW(d::ItemIndex::parse(bytes.substr(0, cut), "cut"), vitslim::Error) << cut;
  }
  for (size_t at = 16; at < bytes.size(); at += 7) {
    std::string flipped = bytes;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x40);
    EXPECT_THROW(d::ItemIndex::parse(flipped, "flipped"), vitslim::Error) << at;
  }
}

// A forged image-folder index whose entry carries a label no class folder has (issue 33 item 11: it
// reached the loss as torch's "Target 1000 is out of bounds").
TEST(Shards, FolderIndexLabelsAreTheirFolders) {
  d::ItemIndex x;
  x.kind = d::ItemIndex::Kind::Folder;
  x.root = "/r";
  x.containers = {"a", "b"};
  d::ItemIndex::Entry e;
  e.name = x.add_name("1.jpg");
  e.container = 1;
  e.label = 1;
  x.entries.push_back(e);
  EXPECT_NO_THROW(d::ItemIndex::parse(x.serialise(), "good"));
  x.entries[0].label = 1000;
  try {
    d::ItemIndex::parse(x.serialise(), "forged.index");
    FAIL() << "a label that is not its folder was accepted";
  } catch (const vitslim::Error& err) {
    EXPECT_NE(std::string(err.what()).find("forged.index"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("label is not its folder"), std::string::npos) << err.what();
  }
}

TEST(Shards, IndexPlacesAndTheCache) {
  vitslim::test::TempDir dir;
  const char* before = std::getenv("VITSLIM_CACHE_DIR");
  const std::string saved = before ? before : "";
  setenv("VITSLIM_CACHE_DIR", dir.file("cache").c_str(), 1);
  EXPECT_TRUE(d::index_place("none", "id").file.empty());
  const auto user = d::index_place(dir.file("my.index"), "id");
  EXPECT_EQ(user.file, dir.file("my.index"));
  EXPECT_FALSE(user.cached);
  const auto cached = d::index_place("", "id");
  const auto other = d::index_place(dir.file("my.index"), "other id");
  if (saved.empty()) {
    unsetenv("VITSLIM_CACHE_DIR");
  } else {
    setenv("VITSLIM_CACHE_DIR", saved.c_str(), 1);
  }
  EXPECT_TRUE(cached.cached);
  EXPECT_EQ(fs::path(cached.file).parent_path(), fs::path(dir.file("cache")));
  EXPECT_NE(cached.file, other.cache);

  int builds = 0;
  auto build = [&builds] {
    ++builds;
    d::ItemIndex x;
    x.containers = {"c"};
    return x;
  };
  d::load_or_build_index(cached, "src", "v1", build);
  EXPECT_EQ(d::load_or_build_index(cached, "src", "v1", build).key, "v1");
  EXPECT_EQ(builds, 1);  // the second run reads the cache
  d::load_or_build_index(cached, "src", "v2", build);
  EXPECT_EQ(builds, 2);  // stale: rebuilt
  d::load_or_build_index(user, "src", "v1", build);
  EXPECT_EQ(builds, 3);
  EXPECT_EQ(d::load_or_build_index(user, "src", "v1", build).root, "src");
  EXPECT_EQ(builds, 3);                                                            // the user's file read
  EXPECT_THROW(d::load_or_build_index(user, "src", "v2", build), vitslim::Error);  // stale: never replaced
  // Another split of the job (another source) uses the cache, not the user's file.
  d::load_or_build_index(other, "another split", "v9", build);
  EXPECT_EQ(builds, 4);
  EXPECT_EQ(d::ItemIndex::parse(read_text(other.cache), "cache").root, "another split");
  std::ofstream(cached.file, std::ios::trunc) << "garbage";
  d::load_or_build_index(cached, "src", "v2", build);
  EXPECT_EQ(builds, 5);  // a corrupt cache file is rebuilt
  std::ofstream(user.file, std::ios::trunc) << "garbage";
  EXPECT_THROW(d::load_or_build_index(user, "src", "v1", build), vitslim::Error);
}

TEST(Shards, ShardNamePatterns) {
  EXPECT_EQ(d::shard_name("out/train-%06d.tar", 12), "out/train-000012.tar");
  EXPECT_EQ(d::shard_name("a%%-%d.tar", 3), "a%-3.tar");
  for (const char* bad : {"train.tar", "a-%d-%d.tar", "a-%s.tar", "a-%x.tar", "a-%", "a-%-5d"}) {
    EXPECT_THROW(d::shard_name(bad, 0), vitslim::Error) << bad;
  }
}

TEST(ShardSampler, DeterministicCoveringAndShardLocal) {
  // 6 shards of 10, 2 ranks: each rank streams 3 whole shards.
  const std::vector<int64_t> bounds = {0, 10, 20, 30, 40, 50, 60};
  const int64_t n = 60;
  auto shard_of = [&](int64_t i) { return std::upper_bound(bounds.begin(), bounds.end(), i) - bounds.begin() - 1; };
  std::set<int64_t> all;
  std::vector<std::set<std::ptrdiff_t>> shards(2);
  for (int r = 0; r < 2; ++r) {
    d::ShardSampler s(bounds, r, 2, 7, 1, 8);
    EXPECT_EQ(s.samples_per_rank(), 30);
    const auto idx = s.epoch_indices(2);
    EXPECT_EQ(static_cast<int64_t>(idx.size()), s.samples_per_rank());
    EXPECT_EQ(s.epoch_indices(2), idx);  // a pure function of the epoch
    EXPECT_NE(s.epoch_indices(3), idx);
    for (auto i : idx) shards[static_cast<size_t>(r)].insert(shard_of(i)), all.insert(i);
  }
  for (auto s : shards[0]) EXPECT_EQ(shards[1].count(s), 0u) << s;  // a shard goes to one rank
  EXPECT_EQ(static_cast<int64_t>(all.size()), n);                   // together they cover every sample
  // Uneven shards on one rank: every sample once; a buffer of 1 streams shard by shard, in order.
  const std::vector<int64_t> uneven = {0, 10, 25, 30, 42, 50, 61};
  const auto stream = d::ShardSampler(uneven, 0, 1, 7, 1, 1).epoch_indices(0);
  ASSERT_EQ(stream.size(), 61u);
  EXPECT_EQ(std::set<int64_t>(stream.begin(), stream.end()).size(), 61u);
  for (size_t k = 1; k < stream.size(); ++k) {
    const bool same = std::upper_bound(uneven.begin(), uneven.end(), stream[k]) ==
                      std::upper_bound(uneven.begin(), uneven.end(), stream[k - 1]);
    if (same) {
      EXPECT_EQ(stream[k], stream[k - 1] + 1);
    }
  }
  const auto buffered = d::ShardSampler(uneven, 0, 1, 7, 1, 16).epoch_indices(0);
  EXPECT_EQ(std::set<int64_t>(buffered.begin(), buffered.end()).size(), 61u);
  EXPECT_NE(buffered, stream);
  EXPECT_THROW(d::ShardSampler(bounds, 0, 7, 7, 1, 8), vitslim::Error);  // fewer shards than ranks
}

TEST(ShardSampler, RepeatsAreConsecutiveAndEpochsKeepTheirLength) {
  const std::vector<int64_t> bounds = {0, 20, 40, 60};
  d::ShardSampler s(bounds, 0, 1, 3, 3, 0);
  EXPECT_EQ(s.samples_per_rank(), 60);
  const auto idx = s.epoch_indices(0);
  for (size_t k = 0; k + 2 < 9; k += 3) {
    EXPECT_EQ(idx[k], idx[k + 1]);
    EXPECT_EQ(idx[k + 1], idx[k + 2]);
  }
}
