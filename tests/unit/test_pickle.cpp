// Tests the restricted pickle reader on hand-written opcode streams: the values it builds, and
// that anything outside a checkpoint's vocabulary (INST/OBJ opcodes, globals outside the
// allowlist, truncation, bad memo or stack use, deep or cyclic nesting) is refused with an error
// naming the source and where; deep trees are torn down without recursion.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "model/weights/pickle.h"

namespace m = vitslim::model;
using Kind = m::PickleNode::Kind;

namespace {

// A byte string from a literal, embedded NULs included.
template <size_t N>
std::string B(const char (&text)[N]) {
  return std::string(text, N - 1);
}

m::PickleValue run(const std::string& bytes) {
  m::StorageReader no_storages = [](const std::string& key, size_t) -> m::StorageBytes {
    throw vitslim::Error("unexpected storage " + key);
  };
  return m::unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), no_storages, "test.pkl");
}

std::string error_of(const std::string& bytes) {
  try {
    run(bytes);
  } catch (const vitslim::Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(Pickle, BuildsContainersAndScalars) {
  // {"a": [1, -2, 3.5, True, None], "b": ("x",)} as protocol 2 with memo use.
  std::string p = B("\x80\x02}q\x00(X\x01\x00\x00\x00"
                    "aq\x01]q\x02(K\x01J\xfe\xff\xff\xff") +
                  B("G\x40\x0c\x00\x00\x00\x00\x00\x00") + B("\x88N") +
                  B("eX\x01\x00\x00\x00"
                    "b") +
                  B("X\x01\x00\x00\x00"
                    "x\x85u.");
  auto v = run(p);
  ASSERT_EQ(v->kind, Kind::Dict);
  ASSERT_EQ(v->dict.size(), 2u);
  EXPECT_EQ(v->dict[0].first->s, "a");
  const auto& list = v->dict[0].second->items;
  ASSERT_EQ(list.size(), 5u);
  EXPECT_EQ(list[0]->i, 1);
  EXPECT_EQ(list[1]->i, -2);
  EXPECT_DOUBLE_EQ(list[2]->f, 3.5);
  EXPECT_TRUE(list[3]->b);
  EXPECT_EQ(list[4]->kind, Kind::None);
  EXPECT_EQ(v->dict[1].second->kind, Kind::Tuple);
  EXPECT_EQ(v->dict[1].second->items[0]->s, "x");
}

TEST(Pickle, GlobalsOutsideTheAllowlistAreRefusedWhereTheySit) {
  // {"model": {}, "x": os.system("touch x")}: nothing runs, and the file is refused.
  const std::string system_call = "cposix\nsystem\n" + B("X\x07\x00\x00\x00"
                                                         "touch x\x85R");
  std::string p = B("\x80\x02}(X\x05\x00\x00\x00"
                    "model}X\x01\x00\x00\x00"
                    "x") +
                  system_call + B("u.");
  const std::string e = error_of(p);
  EXPECT_NE(e.find("test.pkl: refusing global 'posix.system' at ['x'] (pickle byte 21)"), std::string::npos) << e;
  // Dropped from the stack, it is still refused (by byte).
  EXPECT_NE(error_of(B("\x80\x02") + system_call + B("0N.")).find("refusing global 'posix.system' (pickle byte 2)"),
            std::string::npos);
  // An allowed object that is not data (argparse.Namespace, as in DeiT training checkpoints) is Opaque.
  auto v = run(B("\x80\x02") + "cargparse\nNamespace\n" + B(")\x81}b."));
  EXPECT_EQ(v->kind, Kind::Opaque);
  EXPECT_EQ(v->s, "argparse.Namespace");
  EXPECT_EQ(run(B("\x80\x02") + "cnumpy\ndtype\n.")->kind, Kind::Global);
  EXPECT_EQ(run(B("\x80\x02") + "cnumpy.dtypes\nFloat64DType\n.")->kind, Kind::Global);
  EXPECT_NE(error_of(B("\x80\x02") + "cnumpy.dtypes\nevil\n.").find("refusing global 'numpy.dtypes.evil'"),
            std::string::npos);
}

// An OrderedDict REDUCE chain `depth` deep: OrderedDict([(1, OrderedDict([(1, ...)]))]).
std::string ordered_dict_chain(int depth) {
  const std::string od = "ccollections\nOrderedDict\n";
  std::string p = B("\x80\x02");
  for (int k = 0; k < depth; ++k) p += od + B("((K\x01");
  p += od + ")R";
  for (int k = 0; k < depth; ++k) p += B("tl\x85R");
  return p + ".";
}

TEST(Pickle, NestingIsBoundedOnEveryPathAndNothingCycles) {
  EXPECT_EQ(run(ordered_dict_chain(100))->dict.size(), 1u);
  EXPECT_NE(error_of(ordered_dict_chain(300000)).find("nested deeper than 256"), std::string::npos);
  // A list filled after it was put inside another would make recorded depths stale: refused.
  EXPECT_NE(error_of(B("\x80\x02]q\x00]q\x01h\x00h\x01"
                       "ah\x01]a0."))
                .find("APPEND on a list already inside"),
            std::string::npos);
  EXPECT_NE(error_of(B("\x80\x02]q\x00h\x00h\x00"
                       "a."))
                .find("a list that contains itself"),
            std::string::npos);
}

TEST(Pickle, DeepTreesAreDestroyedWithoutRecursion) {
  // A million-level chain built by hand (the reader refuses such depth; the destructor must not care).
  auto root = std::make_shared<m::PickleNode>();
  root->kind = Kind::List;
  m::PickleNode* at = root.get();
  for (int k = 0; k < 1000000; ++k) {
    auto child = std::make_shared<m::PickleNode>();
    child->kind = Kind::List;
    at->items.push_back(child);
    at = child.get();
  }
  root.reset();  // a recursive destructor overflows the stack here
  SUCCEED();
}

TEST(Pickle, RefusesWhatCheckpointsDoNotContain) {
  auto expect = [](const std::string& bytes, const std::string& part) {
    std::string e = error_of(bytes);
    EXPECT_NE(e.find(part), std::string::npos) << "'" << e << "' lacks '" << part << "'";
    EXPECT_NE(e.find("test.pkl"), std::string::npos) << e;
  };
  expect(B("(i__builtin__\neval\n."), "opcode 0x69 is not allowed");
  expect(B("\x80\x02(o."), "opcode 0x6f is not allowed");
  expect(B("\x80\x02X\x10\x00\x00\x00"
           "abc"),
         "truncated");
  expect(B("\x80\x02h\x05."), "memo entry 5 missing");
  expect(B("\x80\x02s."), "stack underflow");
  expect(B("\x80\x02K\x01K\x02."), "not balanced");
  expect(B("\x80\x02"), "unexpected end");
  expect(B("\x80\x02N") + std::string(1000, '\x85') + ".", "nested deeper than");
}

// An empty tensor whose sizes would overflow LibTorch's stride computation: refused by the reader
// with the file named, not a LibTorch error.
TEST(Pickle, EmptyTensorWithOverflowingSizesIsRefused) {
  const std::string huge = B("\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40");  // LONG1 2^62
  std::string p = B("\x80\x02") + "ctorch._utils\n_rebuild_tensor_v2\n(" + B("(X\x07\x00\x00\x00") + "storage" +
                  "ctorch\nFloatStorage\n" + B("X\x01\x00\x00\x00") + "0" + B("X\x03\x00\x00\x00") + "cpu" +
                  B("K\x00tQK\x00(K\x00") + huge + huge + B("K\x04t(K\x00K\x00K\x00K\x00t\x89)tR.");
  const m::StorageReader empty = [](const std::string&, size_t bytes) -> m::StorageBytes {
    return std::make_shared<const std::vector<uint8_t>>(bytes);
  };
  try {
    m::unpickle(reinterpret_cast<const uint8_t*>(p.data()), p.size(), empty, "test.pkl");
    ADD_FAILURE() << "accepted";
  } catch (const vitslim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("test.pkl: unreadable pickle at byte"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tensor size overflows"), std::string::npos) << e.what();
  }
}
