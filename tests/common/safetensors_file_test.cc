// Tests of the mmap reader, the writer and sharded checkpoints against the Hugging Face reference files: reading
// them, writing them back byte for byte, sharding round trips and the errors a user sees for broken files.
#include "common/safetensors_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::ScratchDir;
using ::tuneforge::testing::GeneratedReference;
using ::tuneforge::testing::StatusIs;
using Json = nlohmann::json;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
constexpr absl::StatusCode kNotFound = absl::StatusCode::kNotFound;

const char* const kCases[] = {"llama", "llama_mha", "llama3_rope", "mistral", "qwen2", "phi3", "phi3_longrope",
                              "gemma"};
const char* const kFiles[] = {"model.safetensors", "lora/adapter_model.safetensors"};

// A case generated at test time: model.safetensors written by transformers' save_pretrained, lora/ by PEFT's.
std::string CaseDir(const std::string& name) { return GeneratedReference() + "/" + name; }

std::string_view AsString(absl::Span<const uint8_t> bytes) {
  return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// The sha256 that inputs.json records for `relative` in the case folder.
std::string RecordedSha256(const std::string& case_name, const std::string& relative) {
  Json inputs = Json::parse(testing::ReadFileBytes(CaseDir(case_name) + "/inputs.json"));
  return inputs["files"][relative]["sha256"].get<std::string>();
}

// The tensors of `file` in data order, ready to write.
std::vector<TensorToWrite> TensorsOf(const SafetensorsFile& file) {
  std::vector<TensorToWrite> tensors;
  for (const TensorInfo& t : file.header().tensors) {
    tensors.push_back(TensorToWrite{t.name, t.dtype, t.shape, AsString(file.TensorBytes(t))});
  }
  return tensors;
}

// Same names, dtypes, shapes and bytes (data order may differ).
void ExpectSameTensors(const SafetensorsFile& a, const SafetensorsFile& b) {
  ASSERT_EQ(a.header().tensors.size(), b.header().tensors.size());
  for (const TensorInfo& t : a.header().tensors) {
    const TensorInfo* other = b.header().Find(t.name);
    ASSERT_NE(other, nullptr) << t.name;
    EXPECT_EQ(other->dtype, t.dtype) << t.name;
    EXPECT_EQ(other->shape, t.shape) << t.name;
    EXPECT_EQ(AsString(b.TensorBytes(*other)), AsString(a.TensorBytes(t))) << t.name;
  }
}

class ReferenceFileTest : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {
 protected:
  std::string case_name() const { return std::get<0>(GetParam()); }
  std::string relative() const { return std::get<1>(GetParam()); }
  std::string path() const { return CaseDir(case_name()) + "/" + relative(); }
};

TEST_P(ReferenceFileTest, ReadsEveryTensorAsTheBytesOfTheFile) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ASSERT_EQ(Sha256Hex(testing::ReadFileBytes(path())), RecordedSha256(case_name(), relative()));
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path());
  ASSERT_THAT(file.status(), IsOk());
  const SafetensorsHeader& header = (*file)->header();
  EXPECT_EQ(header.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_GT(header.tensors.size(), 10u);

  // Each tensor's bytes equal the same range read with plain file I/O.
  const std::string raw = testing::ReadFileBytes(path());
  const uint64_t data_start = 8 + header.header_length;
  EXPECT_EQ(data_start + header.data_size, raw.size());
  double norm_sum = 0;
  int norm_count = 0;
  for (const TensorInfo& t : header.tensors) {
    SCOPED_TRACE(t.name);
    ASSERT_EQ(t.dtype, "F32");
    absl::StatusOr<absl::Span<const uint8_t>> bytes = (*file)->TensorBytes(t.name);
    ASSERT_THAT(bytes.status(), IsOk());
    int64_t elements = 1;
    for (int64_t d : t.shape) elements *= d;
    ASSERT_EQ(bytes->size(), static_cast<size_t>(elements) * 4);
    EXPECT_EQ(Sha256Hex(AsString(*bytes)), Sha256Hex(raw.substr(data_start + t.begin, t.end - t.begin)));
    std::vector<float> values(elements);
    std::memcpy(values.data(), bytes->data(), bytes->size());
    double sum = 0;
    for (float v : values) {
      ASSERT_TRUE(std::isfinite(v));
      sum += v;
    }
    if (t.name.find("input_layernorm.weight") != std::string::npos) {
      norm_sum += sum / elements;
      ++norm_count;
    }
  }
  if (relative() == "model.safetensors") {
    // RMSNorm weights are HF's init + 0.1*N(0,1): ones, except Gemma's (1 + w) norm which starts at zero.
    ASSERT_EQ(norm_count, 3);
    EXPECT_NEAR(norm_sum / norm_count, case_name() == "gemma" ? 0.0 : 1.0, 0.05);
  }
}

TEST_P(ReferenceFileTest, WritingTheTensorsBackInTheirOrderGivesTheSameBytes) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  // The reference writer orders tensors by name in the header and in the data; header().tensors is in data
  // order, so writing them in that order with {"format": "pt"} must reproduce the file exactly.
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> reference = SafetensorsFile::Open(path());
  ASSERT_THAT(reference.status(), IsOk());
  ScratchDir dir;
  const std::string out = dir.path() + "/copy.safetensors";
  ASSERT_THAT(WriteSafetensors(out, TensorsOf(**reference), {{"format", "pt"}}), IsOk());
  EXPECT_EQ(Sha256Hex(testing::ReadFileBytes(out)), RecordedSha256(case_name(), relative()));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST_P(ReferenceFileTest, WritingInAnotherOrderReadsBackTheSameTensors) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> reference = SafetensorsFile::Open(path());
  ASSERT_THAT(reference.status(), IsOk());
  std::vector<TensorToWrite> tensors = TensorsOf(**reference);
  std::reverse(tensors.begin(), tensors.end());
  ScratchDir dir;
  const std::string out = dir.path() + "/reversed.safetensors";
  ASSERT_THAT(WriteSafetensors(out, tensors, {}), IsOk());
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> back = SafetensorsFile::Open(out);
  ASSERT_THAT(back.status(), IsOk());
  EXPECT_TRUE((*back)->header().metadata.empty());
  // The data follows the order given: the last reference tensor now comes first.
  EXPECT_EQ((*back)->header().tensors.front().name, tensors.front().name);
  EXPECT_EQ((*back)->header().tensors.front().begin, 0u);
  EXPECT_EQ((8 + (*back)->header().header_length) % 8, 0u);
  ExpectSameTensors(**reference, **back);
  EXPECT_NE(Sha256Hex(testing::ReadFileBytes(out)), RecordedSha256(case_name(), relative()));
}

INSTANTIATE_TEST_SUITE_P(HfReference, ReferenceFileTest,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::ValuesIn(kFiles)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) +
                                  (std::string(std::get<1>(info.param)) == "model.safetensors" ? "_model" : "_lora");
                         });

TEST(WriteSafetensorsTest, WritesTheReferenceLayout) {
  ScratchDir dir;
  const std::string path = dir.path() + "/small.safetensors";
  const std::string a = "xyz";
  const std::string b("\x01\x00\x02\x00", 4);
  ASSERT_THAT(WriteSafetensors(path, {{"a", "U8", {3}, a}, {"b\"q", "I16", {1, 2}, b}, {"s", "I8", {0}, ""}},
                               {{"format", "pt"}, {"k", "v"}}),
              IsOk());
  const std::string json =
      R"({"__metadata__":{"format":"pt","k":"v"},"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
      R"("b\"q":{"dtype":"I16","shape":[1,2],"data_offsets":[3,7]},"s":{"dtype":"I8","shape":[0],)"
      R"("data_offsets":[7,7]}})";
  std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((padded.size() >> (8 * i)) & 0xff);
  EXPECT_EQ(testing::ReadFileBytes(path), prefix + padded + a + b);

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_THAT(file.status(), IsOk());
  EXPECT_EQ(AsString(*(*file)->TensorBytes("b\"q")), b);
  EXPECT_EQ((*file)->TensorBytes("s")->size(), 0u);
}

TEST(WriteSafetensorsTest, RefusesBadTensorsAndLeavesTheOldFile) {
  ScratchDir dir;
  const std::string path = dir.path() + "/w.safetensors";
  testing::WriteFileBytes(path, "old");
  const std::string four(4, 'x');
  EXPECT_THAT(WriteSafetensors(path, {{"w", "F32", {2}, four}}, {}),
              StatusIs(kInvalid,
                       AllOf(HasSubstr(path), HasSubstr("tensor 'w' has 4 bytes of data but F32 [2] needs 8"))));
  EXPECT_THAT(WriteSafetensors(path, {{"w", "F32", {1}, four}, {"w", "F32", {1}, four}}, {}),
              StatusIs(kInvalid, HasSubstr("tensor 'w' is given more than once")));
  EXPECT_THAT(WriteSafetensors(path, {{"w", "F31", {1}, four}}, {}),
              StatusIs(kInvalid, HasSubstr("tensor 'w' has unknown dtype 'F31'")));
  EXPECT_THAT(WriteSafetensors(path, {{"w", "U8", {-4}, four}}, {}),
              StatusIs(kInvalid, HasSubstr("tensor 'w' has negative dimension -4")));
  EXPECT_THAT(WriteSafetensors(path, {{"__metadata__", "U8", {4}, four}}, {}),
              StatusIs(kInvalid, HasSubstr("cannot be named '__metadata__'")));
  EXPECT_THAT(WriteSafetensors(path, {{"", "U8", {4}, four}}, {}), StatusIs(kInvalid, HasSubstr("empty name")));
  EXPECT_THAT(WriteSafetensors(path, {{"bad\xff", "U8", {4}, four}}, {}),
              StatusIs(kInvalid, HasSubstr("is not valid UTF-8")));
  EXPECT_EQ(testing::ReadFileBytes(path), "old");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_THAT(WriteSafetensors(dir.path() + "/no/such/dir/x.safetensors", {{"w", "U8", {4}, four}}, {}),
              StatusIs(kNotFound, HasSubstr("create the directory first")));
}

TEST(SafetensorsFileTest, ReportsMissingTruncatedAndForeignFiles) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  const std::string missing = dir.path() + "/missing.safetensors";
  EXPECT_THAT(SafetensorsFile::Open(missing).status(), StatusIs(kNotFound, HasSubstr(missing)));

  const std::string reference = testing::ReadFileBytes(CaseDir("llama") + "/model.safetensors");
  const std::string truncated = dir.path() + "/truncated.safetensors";
  testing::WriteFileBytes(truncated, reference.substr(0, reference.size() - 1));
  EXPECT_THAT(SafetensorsFile::Open(truncated).status(),
              StatusIs(kInvalid, AllOf(HasSubstr(truncated), HasSubstr("tensor 'model.norm.weight'"),
                                       HasSubstr("reach past the data section of 373055 bytes"),
                                       HasSubstr("corrupt or truncated"))));
  testing::WriteFileBytes(truncated, reference.substr(0, 100));
  EXPECT_THAT(SafetensorsFile::Open(truncated).status(),
              StatusIs(kInvalid, AllOf(HasSubstr(truncated), HasSubstr("header length 3056 does not fit"))));
  testing::WriteFileBytes(truncated, reference.substr(0, 5));
  EXPECT_THAT(SafetensorsFile::Open(truncated).status(),
              StatusIs(kInvalid, HasSubstr("too short for a safetensors header")));
  testing::WriteFileBytes(truncated, "");
  EXPECT_THAT(SafetensorsFile::Open(truncated).status(), StatusIs(kInvalid, HasSubstr("is 0 bytes")));

  // A tensor whose span disagrees with its shape is named.
  std::string bad = reference;
  const size_t at = bad.find("\"shape\":[320,48],\"data_offsets\":[0,61440]");
  ASSERT_NE(at, std::string::npos);
  bad.replace(at, 16, "\"shape\":[320,47]");
  testing::WriteFileBytes(truncated, bad);
  EXPECT_THAT(SafetensorsFile::Open(truncated, "label.safetensors").status(),
              StatusIs(kInvalid, AllOf(HasSubstr("label.safetensors: tensor 'lm_head.weight'"),
                                       HasSubstr("span 61440 bytes but F32 [320, 47] needs 60160"))));

  EXPECT_THAT(SafetensorsFile::Open(dir.path()).status(), StatusIs(kInvalid, HasSubstr("not a regular file")));
}

TEST(SafetensorsFileTest, MissingTensorNamesTheTensorAndFile) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string path = CaseDir("llama") + "/model.safetensors";
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_THAT(file.status(), IsOk());
  EXPECT_THAT((*file)->TensorBytes("model.norm.bias").status(),
              StatusIs(kNotFound, AllOf(HasSubstr(path), HasSubstr("has no tensor 'model.norm.bias'"))));
  EXPECT_THAT((*file)->TensorBytes("model.norm.weight").status(), IsOk());
}

// The llama reference tensors, in data order, and the file they come from.
struct Llama {
  std::unique_ptr<SafetensorsFile> file;
  std::vector<TensorToWrite> tensors;
};
Llama LoadLlama() {
  Llama l;
  l.file = *SafetensorsFile::Open(CaseDir("llama") + "/model.safetensors");
  l.tensors = TensorsOf(*l.file);
  return l;
}

TEST(ShardedSafetensorsTest, WritesShardsAndAnIndexThatReadBack) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Llama llama = LoadLlama();
  ScratchDir dir;
  constexpr uint64_t kMax = 100'000;  // the two [320, 48] F32 tables (61440 bytes) each fill most of a shard
  ASSERT_THAT(WriteShardedSafetensors(dir.path(), llama.tensors, kMax, {{"format", "pt"}}), IsOk());

  const std::string index_text = testing::ReadFileBytes(dir.path() + "/model.safetensors.index.json");
  // transformers writes json.dumps(index, indent=2, sort_keys=True) + "\n".
  const std::string start = "{\n  \"metadata\": {\n    \"total_size\": 373056\n  },\n  \"weight_map\": {\n";
  EXPECT_EQ(index_text.substr(0, start.size()), start);
  EXPECT_EQ(index_text.back(), '\n');
  Json index = Json::parse(index_text);
  uint64_t total = 0;
  for (const TensorToWrite& t : llama.tensors) total += t.data.size();
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  ASSERT_EQ(index["weight_map"].size(), llama.tensors.size());
  std::map<std::string, uint64_t> shard_bytes;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    shard_bytes[shard.get<std::string>()] += (*llama.file->TensorBytes(name)).size();
  }
  ASSERT_GE(shard_bytes.size(), 4u);
  const std::string count = std::to_string(shard_bytes.size());
  int i = 0;
  for (const auto& [shard, bytes] : shard_bytes) {
    ++i;
    EXPECT_EQ(shard, "model-0000" + std::to_string(i) + "-of-0000" + count + ".safetensors");
    EXPECT_LE(bytes, kMax) << shard;
    EXPECT_TRUE(fs::exists(dir.path() + "/" + shard));
  }
  EXPECT_FALSE(fs::exists(dir.path() + "/model.safetensors"));

  absl::StatusOr<std::unique_ptr<ShardedSafetensors>> sharded = ShardedSafetensors::OpenDirectory(dir.path());
  ASSERT_THAT(sharded.status(), IsOk());
  EXPECT_EQ((*sharded)->files().size(), shard_bytes.size());
  std::vector<std::string> names;
  for (const TensorToWrite& t : llama.tensors) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ((*sharded)->TensorNames(), names);
  for (const TensorToWrite& t : llama.tensors) {
    absl::StatusOr<CheckpointTensorView> view = (*sharded)->Find(t.name);
    ASSERT_THAT(view.status(), IsOk());
    EXPECT_EQ(view->info->shape, t.shape);
    EXPECT_EQ(AsString(view->bytes), t.data) << t.name;
    EXPECT_EQ(fs::path(view->file->path()).filename().string(), index["weight_map"][t.name].get<std::string>());
    EXPECT_EQ(view->file->header().metadata.at("format"), "pt");
  }
  EXPECT_THAT((*sharded)->Find("lm_head.bias").status(),
              StatusIs(kNotFound, AllOf(HasSubstr("tensor 'lm_head.bias'"), HasSubstr(dir.path()))));

  // A second write with room for everything leaves one model.safetensors, identical to the reference.
  ASSERT_THAT(WriteShardedSafetensors(dir.path(), llama.tensors, 1 << 30, {{"format", "pt"}}), IsOk());
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir.path())) files.push_back(entry.path().filename().string());
  EXPECT_THAT(files, ElementsAre("model.safetensors"));
  EXPECT_EQ(Sha256Hex(testing::ReadFileBytes(dir.path() + "/model.safetensors")), RecordedSha256("llama", "model.safetensors"));
  absl::StatusOr<std::unique_ptr<ShardedSafetensors>> single = ShardedSafetensors::OpenDirectory(dir.path());
  ASSERT_THAT(single.status(), IsOk());
  EXPECT_EQ((*single)->TensorNames(), names);
}

TEST(ShardedSafetensorsTest, ATensorLargerThanTheLimitGetsItsOwnShard) {
  ScratchDir dir;
  const std::string big(40, 'b'), small(8, 's');
  ASSERT_THAT(WriteShardedSafetensors(dir.path(), {{"s1", "U8", {8}, small}, {"big", "U8", {40}, big},
                                                   {"s2", "U8", {8}, small}, {"s3", "U8", {8}, small}},
                                      16, {}),
              IsOk());
  Json index = Json::parse(testing::ReadFileBytes(dir.path() + "/model.safetensors.index.json"));
  EXPECT_EQ(index["weight_map"], Json({{"s1", "model-00001-of-00003.safetensors"},
                                       {"big", "model-00002-of-00003.safetensors"},
                                       {"s2", "model-00003-of-00003.safetensors"},
                                       {"s3", "model-00003-of-00003.safetensors"}}));
  EXPECT_THAT(WriteShardedSafetensors(dir.path(), {{"s1", "U8", {8}, small}}, 0, {}),
              StatusIs(kInvalid, HasSubstr("max_shard_bytes")));
  EXPECT_THAT(WriteShardedSafetensors(dir.path(), {{"s1", "U8", {8}, small}, {"s1", "U8", {8}, small}}, 8, {}),
              StatusIs(kInvalid, HasSubstr("tensor 's1' is given more than once")));
  // Nothing was written by the refused calls.
  EXPECT_TRUE(fs::exists(dir.path() + "/model-00003-of-00003.safetensors"));
}

// Tensors whose bytes come from `fill`: each produced only when the writer reaches it (after the earlier shards are
// on disk), sharded by their declared size, checked for that size; a failing fill leaves no checkpoint behind.
TEST(ShardedSafetensorsTest, FilledTensorsAreMadeWhenTheWriterReachesThem) {
  ScratchDir dir;
  const std::string shard1 = dir.path() + "/model-00001-of-00003.safetensors";
  const std::string shard2 = dir.path() + "/model-00002-of-00003.safetensors";
  std::vector<std::string> filled;
  std::vector<std::string> shards_on_disk;  // which shards existed when each fill ran
  auto fill = [&](const std::string& name, const std::string& content) {
    return [&, name, content](std::string* bytes) {
      filled.push_back(name);
      shards_on_disk.push_back(absl::StrCat(fs::exists(shard1), fs::exists(shard2)));
      *bytes = content;
      return absl::OkStatus();
    };
  };
  const std::string a(8, 'a'), b("\x01\x00\x02\x00\x03\x00\x04\x00\x05\x00\x06\x00\x07\x00\x08\x00", 16);
  const std::string c(8, 'c'), d("dddd");
  // a: 8 bytes, b: 16 (a shard of its own at 16), c in memory, d filled: 3 shards; `data` beside a fill is ignored.
  const std::vector<TensorToWrite> tensors = {{"a", "U8", {8}, "ignored", fill("a", a)},
                                              {"b", "I16", {2, 4}, {}, fill("b", b)},
                                              {"c", "U8", {8}, c},
                                              {"d", "U8", {2, 2}, {}, fill("d", d)}};
  ASSERT_THAT(WriteShardedSafetensors(dir.path(), tensors, 16, {{"format", "pt"}}), IsOk());
  EXPECT_THAT(filled, ElementsAre("a", "b", "d"));
  EXPECT_THAT(shards_on_disk, ElementsAre("00", "10", "11"));
  Json index = Json::parse(testing::ReadFileBytes(dir.path() + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 36);
  EXPECT_EQ(index["weight_map"], Json({{"a", "model-00001-of-00003.safetensors"},
                                       {"b", "model-00002-of-00003.safetensors"},
                                       {"c", "model-00003-of-00003.safetensors"},
                                       {"d", "model-00003-of-00003.safetensors"}}));
  absl::StatusOr<std::unique_ptr<ShardedSafetensors>> sharded = ShardedSafetensors::OpenDirectory(dir.path());
  ASSERT_THAT(sharded.status(), IsOk());
  for (const auto& [name, bytes] : std::map<std::string, std::string>{{"a", a}, {"b", b}, {"c", c}, {"d", d}}) {
    absl::StatusOr<CheckpointTensorView> view = (*sharded)->Find(name);
    ASSERT_THAT(view.status(), IsOk());
    EXPECT_EQ(AsString(view->bytes), bytes) << name;
  }
  EXPECT_EQ((*sharded)->Find("b")->info->shape, std::vector<int64_t>({2, 4}));

  // A fill that fails in the second shard: its error as it is, and no shard, index or .tmp left.
  ScratchDir failing;
  std::vector<TensorToWrite> broken = tensors;
  broken[1].fill = [](std::string*) { return absl::CancelledError("stopped by the test"); };
  EXPECT_THAT(WriteShardedSafetensors(failing.path(), broken, 16, {}),
              StatusIs(absl::StatusCode::kCancelled, ::testing::Eq("stopped by the test")));
  EXPECT_TRUE(fs::is_empty(failing.path()));

  // A fill of the wrong size names the tensor and what it needs; again nothing is left.
  broken = tensors;
  broken[3].fill = [](std::string* bytes) {
    *bytes = "ddd";
    return absl::OkStatus();
  };
  EXPECT_THAT(WriteShardedSafetensors(failing.path(), broken, 16, {}),
              StatusIs(kInvalid, AllOf(HasSubstr("model-00003-of-00003.safetensors"),
                                       HasSubstr("tensor 'd' was filled with 3 bytes but U8 [2, 2] needs 4"))));
  EXPECT_TRUE(fs::is_empty(failing.path()));

  // One file: a failing fill leaves the earlier file as it was.
  const std::string path = failing.path() + "/one.safetensors";
  testing::WriteFileBytes(path, "old");
  EXPECT_THAT(WriteSafetensors(path, broken, {}), StatusIs(kInvalid, HasSubstr("tensor 'd' was filled with 3")));
  EXPECT_EQ(testing::ReadFileBytes(path), "old");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(ShardedSafetensorsTest, BrokenIndexesNameTheIndexShardAndTensor) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Llama llama = LoadLlama();
  ScratchDir dir;
  ASSERT_THAT(WriteShardedSafetensors(dir.path(), llama.tensors, 100'000, {}), IsOk());
  const std::string index_path = dir.path() + "/model.safetensors.index.json";
  const Json good = Json::parse(testing::ReadFileBytes(index_path));

  // A tensor of shard 2 (which holds several) claimed by shard 3; shard 2 is checked first.
  Json index = good;
  const std::string moved = "model.embed_tokens.weight";
  ASSERT_EQ(index["weight_map"][moved], "model-00002-of-00005.safetensors");
  index["weight_map"][moved] = "model-00003-of-00005.safetensors";
  testing::WriteFileBytes(index_path, index.dump());
  EXPECT_THAT(ShardedSafetensors::OpenDirectory(dir.path()).status(),
              StatusIs(kInvalid, AllOf(HasSubstr("model-00002-of-00005.safetensors: holds tensor '" + moved + "' but"),
                                       HasSubstr(index_path + " maps it to 'model-00003-of-00005.safetensors'"))));

  // A tensor mapped to a shard that lacks it.
  index = good;
  index["weight_map"]["model.extra.weight"] = "model-00001-of-00005.safetensors";
  testing::WriteFileBytes(index_path, index.dump());
  EXPECT_THAT(ShardedSafetensors::OpenDirectory(dir.path()).status(),
              StatusIs(kInvalid, HasSubstr(index_path +
                                           ": maps tensor 'model.extra.weight' to "
                                           "'model-00001-of-00005.safetensors' but that shard does not hold it")));

  // A missing shard.
  testing::WriteFileBytes(index_path, good.dump());
  fs::remove(dir.path() + "/model-00003-of-00005.safetensors");
  EXPECT_THAT(ShardedSafetensors::OpenDirectory(dir.path()).status(),
              StatusIs(kNotFound, AllOf(HasSubstr(index_path), HasSubstr("shard 'model-00003-of-00005.safetensors'"),
                                        HasSubstr("download the missing shard"))));

  // A shard outside the directory, and an index that is not JSON.
  index = good;
  index["weight_map"][moved] = "../model.safetensors";
  testing::WriteFileBytes(index_path, index.dump());
  EXPECT_THAT(ShardedSafetensors::OpenDirectory(dir.path()).status(),
              StatusIs(kInvalid, HasSubstr("weight_map entry '" + moved + "' must name a shard file inside")));
  testing::WriteFileBytes(index_path, "{\"weight_map\": ");
  EXPECT_THAT(ShardedSafetensors::OpenDirectory(dir.path()).status(),
              StatusIs(kInvalid, AllOf(HasSubstr(index_path), HasSubstr("is not valid JSON"))));

  ScratchDir empty;
  EXPECT_THAT(ShardedSafetensors::OpenDirectory(empty.path()).status(),
              StatusIs(kNotFound, HasSubstr("neither model.safetensors nor model.safetensors.index.json")));
}

}  // namespace
}  // namespace tuneforge
