// Tests of local model directories: the reference checkpoints, a sharded copy written here, broken
// checkpoints, symlinks and the content fingerprint.
#include "common/local_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
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

// A case generated at test time by transformers' save_pretrained (tests/reference/make_hf_reference.py).
std::string CaseDir(const std::string& name) { return GeneratedReference() + "/" + name; }

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// config.json, generation_config.json and model.safetensors of a reference case.
void CopyModel(const std::string& name, const ScratchDir& dir) {
  for (const char* file : {"config.json", "generation_config.json", "model.safetensors"}) {
    dir.WriteFile(file, ReadBytes(CaseDir(name) + "/" + file));
  }
}

// A tensor for the test's own safetensors writer.
struct RawTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string data;
};

// The reference checkpoint's tensors in file order, read with nlohmann (not with the code under test).
std::vector<RawTensor> ReadRawTensors(const std::string& path) {
  const std::string bytes = ReadBytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  const Json header = Json::parse(bytes.substr(8, n));
  std::vector<std::pair<uint64_t, RawTensor>> ordered;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    const uint64_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
    ordered.push_back({begin, RawTensor{name, entry["dtype"], entry["shape"].get<std::vector<int64_t>>(),
                                        bytes.substr(8 + n + begin, end - begin)}});
  }
  std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<RawTensor> out;
  for (auto& [begin, t] : ordered) out.push_back(std::move(t));
  return out;
}

// Writes a safetensors file: header padded with spaces to a multiple of 8, tensors contiguous.
std::string SafetensorsFile(const std::vector<RawTensor>& tensors) {
  Json header = Json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const RawTensor& t : tensors) {
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.data.size()}}};
    data += t.data;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return out + text + data;
}

// llama split into two shards (even / odd tensors) with an index, and no model.safetensors.
void WriteShardedLlama(const ScratchDir& dir) {
  for (const char* file : {"config.json", "generation_config.json"}) {
    dir.WriteFile(file, ReadBytes(CaseDir("llama") + "/" + file));
  }
  const std::vector<RawTensor> tensors = ReadRawTensors(CaseDir("llama") + "/model.safetensors");
  std::vector<RawTensor> shards[2];
  Json weight_map = Json::object();
  size_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string shard = i % 2 == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    shards[i % 2].push_back(tensors[i]);
    weight_map[tensors[i].name] = shard;
    total += tensors[i].data.size();
  }
  dir.WriteFile("model-00001-of-00002.safetensors", SafetensorsFile(shards[0]));
  dir.WriteFile("model-00002-of-00002.safetensors", SafetensorsFile(shards[1]));
  dir.WriteFile("model.safetensors.index.json",
                Json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2));
}

std::vector<std::string> Paths(const std::vector<LocalFile>& files) {
  std::vector<std::string> paths;
  for (const LocalFile& f : files) paths.push_back(f.path);
  return paths;
}

class ReferenceDirectoryTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ReferenceDirectoryTest, IsAcceptedWithSizesHashesAndFingerprint) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel(GetParam(), dir);
  auto info = InspectLocalModelDirectory(dir.path());
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->directory, dir.path());
  EXPECT_EQ(info->config_json, ReadBytes(CaseDir(GetParam()) + "/config.json"));
  EXPECT_EQ(info->arch.hidden_size, 48);
  ASSERT_THAT(Paths(info->files), ElementsAre("config.json", "generation_config.json", "model.safetensors"));
  // inputs.json lists the size and sha256 of every reference file, computed by the Python generator.
  const Json expected = Json::parse(ReadBytes(CaseDir(GetParam()) + "/inputs.json"))["files"];
  std::string manifest;
  for (const LocalFile& f : info->files) {
    EXPECT_EQ(f.size, expected[f.path]["bytes"].get<int64_t>()) << f.path;
    EXPECT_EQ(f.sha256, expected[f.path]["sha256"].get<std::string>()) << f.path;
    manifest += f.path + std::string(1, '\0') + std::to_string(f.size) + std::string(1, '\0') + f.sha256 + "\n";
  }
  EXPECT_EQ(info->fingerprint, Sha256Hex(manifest));
}

INSTANTIATE_TEST_SUITE_P(HfReference, ReferenceDirectoryTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<const char*>& info) { return std::string(info.param); });

TEST(InspectLocalModelDirectoryTest, ShardedCheckpointIsAccepted) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir single, sharded;
  CopyModel("llama", single);
  WriteShardedLlama(sharded);
  auto one = InspectLocalModelDirectory(single.path());
  auto two = InspectLocalModelDirectory(sharded.path());
  ASSERT_THAT(one, IsOk());
  ASSERT_THAT(two, IsOk());
  EXPECT_EQ(two->arch.parameter_count, one->arch.parameter_count);
  EXPECT_EQ(two->arch.parameter_count, (376120 - 8 - 3056) / 4);  // all F32: data section bytes / 4
  EXPECT_THAT(Paths(two->files),
              ElementsAre("config.json", "generation_config.json", "model-00001-of-00002.safetensors",
                          "model-00002-of-00002.safetensors", "model.safetensors.index.json"));
  EXPECT_NE(two->fingerprint, one->fingerprint);
}

TEST(InspectLocalModelDirectoryTest, IndexNamingAMissingShardIsNotFound) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  WriteShardedLlama(dir);
  fs::remove(dir.path() + "/model-00002-of-00002.safetensors");
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kNotFound, HasSubstr("model.safetensors.index.json: shard 'model-00002-of-00002.safetensors'")));
}

TEST(InspectLocalModelDirectoryTest, ShardMustHoldExactlyItsMappedTensors) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  WriteShardedLlama(dir);
  Json index = Json::parse(ReadBytes(dir.path() + "/model.safetensors.index.json"));
  std::string moved;  // a tensor of the first shard, which is checked first
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (moved.empty() && shard == "model-00001-of-00002.safetensors") moved = name;
  }
  ASSERT_FALSE(moved.empty());
  index["weight_map"][moved] = "model-00002-of-00002.safetensors";
  dir.WriteFile("model.safetensors.index.json", index.dump());
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, HasSubstr("model-00001-of-00002.safetensors: holds tensor '" + moved +
                                           "' but model.safetensors.index.json maps it to "
                                           "'model-00002-of-00002.safetensors'")));
  index["weight_map"].erase(moved);
  dir.WriteFile("model.safetensors.index.json", index.dump());
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, HasSubstr("holds tensor '" + moved +
                                           "' but model.safetensors.index.json does "
                                           "not list it")));
  index["weight_map"][moved] = "../model.safetensors";
  dir.WriteFile("model.safetensors.index.json", index.dump());
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, HasSubstr("weight_map entry '" + moved + "' must name a shard file inside")));
  dir.WriteFile("model.safetensors.index.json", "{\"weight_map\": {}}");
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, HasSubstr("model.safetensors.index.json: needs a non-empty 'weight_map'")));
}

TEST(InspectLocalModelDirectoryTest, IndexMappingATensorToTheWrongShard) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  WriteShardedLlama(dir);
  Json index = Json::parse(ReadBytes(dir.path() + "/model.safetensors.index.json"));
  index["weight_map"]["model.extra.weight"] = "model-00001-of-00002.safetensors";
  dir.WriteFile("model.safetensors.index.json", index.dump());
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, HasSubstr("model.safetensors.index.json: maps tensor 'model.extra.weight' to "
                                           "'model-00001-of-00002.safetensors' but that shard does not hold it")));
}

TEST(InspectLocalModelDirectoryTest, CorruptHeaderNamesTheFile) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("llama", dir);
  std::string bytes = ReadBytes(dir.path() + "/model.safetensors");
  bytes[8] = 'x';  // the opening brace of the header
  dir.WriteFile("model.safetensors", bytes);
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, HasSubstr("model.safetensors: header is not valid JSON")));
}

TEST(InspectLocalModelDirectoryTest, TruncatedFileNamesTheFile) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("qwen2", dir);
  const std::string bytes = ReadBytes(dir.path() + "/model.safetensors");
  dir.WriteFile("model.safetensors", bytes.substr(0, bytes.size() - 1));
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()), StatusIs(kInvalid, HasSubstr("model.safetensors: tensor '")));
}

TEST(InspectLocalModelDirectoryTest, MissingTensorIsNamed) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("llama", dir);
  std::vector<RawTensor> tensors = ReadRawTensors(dir.path() + "/model.safetensors");
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                               [](const RawTensor& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; }),
                tensors.end());
  dir.WriteFile("model.safetensors", SafetensorsFile(tensors));
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, HasSubstr("the weights do not match config.json, which describes a llama model (3 "
                                           "layers, hidden_size 48): tensor 'model.layers.1.mlp.up_proj.weight' "
                                           "[96, 48] is missing")));
}

TEST(InspectLocalModelDirectoryTest, ExtraTensorIsNamed) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("llama", dir);
  std::vector<RawTensor> tensors = ReadRawTensors(dir.path() + "/model.safetensors");
  tensors.push_back(RawTensor{"model.layers.0.self_attn.q_norm.weight", "F32", {48}, std::string(48 * 4, '\0')});
  dir.WriteFile("model.safetensors", SafetensorsFile(tensors));
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, HasSubstr("model.safetensors holds unexpected tensor "
                                           "'model.layers.0.self_attn.q_norm.weight'")));
  // Both at once: the first of each is named.
  tensors.erase(tensors.begin());
  dir.WriteFile("model.safetensors", SafetensorsFile(tensors));
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, ::testing::AllOf(HasSubstr("is missing"), HasSubstr("holds unexpected tensor"))));
}

TEST(InspectLocalModelDirectoryTest, IgnoresWhatTransformersIgnores) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("gemma", dir);
  std::vector<RawTensor> tensors = ReadRawTensors(dir.path() + "/model.safetensors");
  // Old Llama conversions saved rotary buffers, and some tied checkpoints still carry lm_head.
  tensors.push_back(RawTensor{"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {12}, std::string(48, '\0')});
  tensors.push_back(RawTensor{"lm_head.weight", "F32", {320, 48}, std::string(320 * 48 * 4, '\0')});
  dir.WriteFile("model.safetensors", SafetensorsFile(tensors));
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()), IsOk());
}

TEST(InspectLocalModelDirectoryTest, WrongShapeIsNamed) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("llama", dir);
  Json config = Json::parse(ReadBytes(dir.path() + "/config.json"));
  config["intermediate_size"] = 64;
  dir.WriteFile("config.json", config.dump());
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, HasSubstr("model.safetensors: tensor 'model.layers.0.mlp.down_proj.weight' has shape "
                                           "[48, 96] but config.json (llama model (3 layers, hidden_size 48)) needs "
                                           "[48, 64]")));
}

TEST(InspectLocalModelDirectoryTest, QuantizedDtypeIsRejected) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("llama", dir);
  std::vector<RawTensor> tensors = ReadRawTensors(dir.path() + "/model.safetensors");
  for (RawTensor& t : tensors) {
    if (t.name == "model.norm.weight") {
      t.dtype = "I32";
    }
  }
  dir.WriteFile("model.safetensors", SafetensorsFile(tensors));
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, HasSubstr("model.safetensors: tensor 'model.norm.weight' has dtype I32")));
}

TEST(InspectLocalModelDirectoryTest, BadConfigIsNamed) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("llama", dir);
  dir.WriteFile("config.json", R"({"model_type": "bert"})");
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kInvalid, HasSubstr("config.json: model_type 'bert' is not a causal LM family")));
}

TEST(InspectLocalModelDirectoryTest, MissingFilesAreNotFound) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("llama", dir);
  fs::remove(dir.path() + "/config.json");
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kNotFound, HasSubstr("config.json is not in '" + dir.path() + "'")));
  CopyModel("llama", dir);
  fs::remove(dir.path() + "/model.safetensors");
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kNotFound, HasSubstr("neither model.safetensors nor model.safetensors.index.json")));
  dir.WriteFile("pytorch_model.bin", "x");
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()), StatusIs(kNotFound, HasSubstr("convert pytorch_model.bin")));
  EXPECT_THAT(InspectLocalModelDirectory(dir.path() + "/nope"), StatusIs(kNotFound, HasSubstr("does not exist")));
}

TEST(InspectLocalModelDirectoryTest, SymlinkEscapingTheDirectoryIsDenied) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir, outside;
  CopyModel("llama", dir);
  const std::string secret = outside.WriteFile("secret.txt", "token");
  fs::create_symlink(secret, dir.path() + "/tokenizer.json");
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("'tokenizer.json' is a symlink to")));
  fs::remove(dir.path() + "/tokenizer.json");
  // Relative escapes too, also from a subdirectory.
  fs::create_directories(dir.path() + "/sub");
  fs::create_symlink("../../" + fs::path(outside.path()).filename().string() + "/secret.txt",
                     dir.path() + "/sub/link.txt");
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("'sub/link.txt' is a symlink to")));
}

TEST(InspectLocalModelDirectoryTest, SymlinksInsideAreFollowedAndDanglingOnesReported) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("llama", dir);
  fs::create_directories(dir.path() + "/weights");
  fs::rename(dir.path() + "/model.safetensors", dir.path() + "/weights/model.safetensors");
  fs::create_symlink("weights/model.safetensors", dir.path() + "/model.safetensors");
  fs::create_directory_symlink("weights", dir.path() + "/weights_link");
  auto info = InspectLocalModelDirectory(dir.path());
  ASSERT_THAT(info, IsOk());
  EXPECT_THAT(Paths(info->files),
              ElementsAre("config.json", "generation_config.json", "model.safetensors", "weights/model.safetensors"));
  EXPECT_EQ(info->files[2].sha256, info->files[3].sha256);
  EXPECT_EQ(info->files[2].size, 376120);
  fs::create_symlink("missing.json", dir.path() + "/tokenizer.json");
  EXPECT_THAT(InspectLocalModelDirectory(dir.path()),
              StatusIs(kNotFound, HasSubstr("'tokenizer.json' is a symlink to a missing file")));
}

TEST(InspectLocalModelDirectoryTest, HiddenEntriesAreSkippedAndOthersListed) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("llama", dir);
  dir.WriteFile(".git/HEAD", "ref: refs/heads/main\n");
  dir.WriteFile(".cache/huggingface/download/model.safetensors.metadata", "x");
  dir.WriteFile(".gitattributes", "*.safetensors filter=lfs\n");
  dir.WriteFile("tokenizer.json", "{}");
  dir.WriteFile("extra/notes.md", "hello");
  auto info = InspectLocalModelDirectory(dir.path());
  ASSERT_THAT(info, IsOk());
  EXPECT_THAT(Paths(info->files), ElementsAre("config.json", "extra/notes.md", "generation_config.json",
                                              "model.safetensors", "tokenizer.json"));
  EXPECT_EQ(info->files[1].size, 5);
  EXPECT_EQ(info->files[1].sha256, Sha256Hex("hello"));
}

TEST(InspectLocalModelDirectoryTest, FingerprintFollowsContentNotLocation) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir a, b;
  CopyModel("mistral", a);
  CopyModel("mistral", b);
  auto first = InspectLocalModelDirectory(a.path());
  auto same = InspectLocalModelDirectory(b.path());
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(same, IsOk());
  EXPECT_EQ(first->fingerprint, same->fingerprint);

  // One byte of tensor data changes: still a valid checkpoint, another fingerprint.
  std::string bytes = ReadBytes(b.path() + "/model.safetensors");
  bytes[bytes.size() - 1] ^= 0x01;
  b.WriteFile("model.safetensors", bytes);
  auto changed = InspectLocalModelDirectory(b.path());
  ASSERT_THAT(changed, IsOk());
  EXPECT_NE(changed->fingerprint, first->fingerprint);
  EXPECT_NE(changed->files[2].sha256, first->files[2].sha256);
  EXPECT_EQ(changed->files[0].sha256, first->files[0].sha256);

  // A renamed optional file changes it too, because paths are part of it.
  ScratchDir c;
  CopyModel("mistral", c);
  c.WriteFile("tokenizer.json", "{}");
  auto with_tokenizer = InspectLocalModelDirectory(c.path());
  fs::rename(c.path() + "/tokenizer.json", c.path() + "/tokenizer2.json");
  auto renamed = InspectLocalModelDirectory(c.path());
  ASSERT_THAT(with_tokenizer, IsOk());
  ASSERT_THAT(renamed, IsOk());
  EXPECT_NE(with_tokenizer->fingerprint, renamed->fingerprint);
  EXPECT_NE(with_tokenizer->fingerprint, first->fingerprint);
}

TEST(LocalModelInspectorTest, AnswersAsInspectingAgainWouldAndNoticesSameSizeEdits) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  CopyModel("mistral", dir);
  const std::string notes = dir.WriteFile("notes.txt", "aaaa");
  LocalModelInspector inspector;

  // Files written moments ago are read again on every call: an edit in the same clock tick keeps their timestamps.
  auto fresh = inspector.Inspect(dir.path());
  dir.WriteFile("notes.txt", "bbbb");
  auto edited = inspector.Inspect(dir.path());
  ASSERT_THAT(fresh, IsOk());
  ASSERT_THAT(edited, IsOk());
  EXPECT_NE(edited->fingerprint, fresh->fingerprint);

  // Settled files: the answer is remembered, and what changes a file (content of the same size with its mtime put
  // back, another file renamed over it) still shows.
  std::this_thread::sleep_for(std::chrono::seconds(LocalModelInspector::kSettledSeconds) + std::chrono::milliseconds(300));
  auto first = inspector.Inspect(dir.path());
  auto again = inspector.Inspect(dir.path());
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->fingerprint, first->fingerprint);
  EXPECT_EQ(again->config_json, first->config_json);
  EXPECT_EQ(again->arch.family, "mistral");
  EXPECT_EQ(first->fingerprint, InspectLocalModelDirectory(dir.path())->fingerprint);

  struct stat before;
  ASSERT_EQ(::stat(notes.c_str(), &before), 0);
  dir.WriteFile("notes.txt", "cccc");
  const struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, notes.c_str(), times, 0), 0);
  auto same_size = inspector.Inspect(dir.path());
  ASSERT_THAT(same_size, IsOk());
  EXPECT_NE(same_size->fingerprint, first->fingerprint);
  EXPECT_EQ(same_size->fingerprint, InspectLocalModelDirectory(dir.path())->fingerprint);

  dir.WriteFile("other.txt", "dddd");
  fs::rename(dir.path() + "/other.txt", notes);
  auto replaced = inspector.Inspect(dir.path());
  ASSERT_THAT(replaced, IsOk());
  EXPECT_EQ(replaced->fingerprint, InspectLocalModelDirectory(dir.path())->fingerprint);
  EXPECT_NE(replaced->fingerprint, same_size->fingerprint);
}

TEST(DirectoryFingerprintTest, IsTheDocumentedManifestHash) {
  const std::vector<LocalFile> files = {{"a.json", 2, "ab"}, {"b/c.bin", 10, "cd"}};
  const std::string nul(1, '\0');
  EXPECT_EQ(DirectoryFingerprint(files),
            Sha256Hex("a.json" + nul + "2" + nul + "ab\n" + "b/c.bin" + nul + "10" + nul + "cd\n"));
  EXPECT_EQ(DirectoryFingerprint({}), Sha256Hex(""));
}

}  // namespace
}  // namespace tuneforge
