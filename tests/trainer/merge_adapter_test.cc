// Merged and adapter exports of the generated reference cases (a PEFT adapter in <case>/lora): merged weights equal
// W + scaling * B @ A recomputed here in double, everything else is the base's, dtype and sharding are what was
// asked, the tokenizer files travel along, and refusals (busy output, cancelled, foreign adapter) leave no weights.
#include "services/trainer/peft/merge_adapter.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/safetensors_file.h"
#include "services/trainer/model/tensor_file.h"
#include "services/trainer/recipes/export_model.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;
using ::tuneforge::testing::GeneratedReference;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::ReadFileBytes;
using ::tuneforge::testing::ScratchDir;
using ::tuneforge::testing::StatusIs;
using ::tuneforge::testing::WriteFileBytes;
using Json = nlohmann::json;

std::string CaseDir(const std::string& name) { return GeneratedReference() + "/" + name; }

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Base weight name -> {lora_A, lora_B} as read from the adapter file, by PEFT's naming.
std::map<std::string, std::pair<at::Tensor, at::Tensor>> AdapterPairs(const std::string& adapter_dir) {
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> pairs;
  auto tensors = ReadTensorFile(adapter_dir + "/adapter_model.safetensors", "adapter");
  EXPECT_THAT(tensors.status(), IsOk());
  for (const auto& [name, t] : *tensors) {
    const std::string prefix = "base_model.model.";
    const size_t lora = name.rfind(".lora_");
    const std::string weight = name.substr(prefix.size(), lora - prefix.size()) + ".weight";
    (absl::StrContains(name, ".lora_A.") ? pairs[weight].first : pairs[weight].second) = t;
  }
  return pairs;
}

// The tensor names of a single safetensors file, in data order.
std::vector<std::string> NamesInOrder(const std::string& path) {
  auto file = SafetensorsFile::Open(path);
  EXPECT_THAT(file.status(), IsOk());
  std::vector<std::string> names;
  for (const TensorInfo& t : (*file)->header().tensors) names.push_back(t.name);
  return names;
}

// A copy of `adapter_dir` in `dir` with adapter_config.json changed by `edit`.
std::string EditedAdapter(const std::string& adapter_dir, const std::string& dir,
                          const std::function<void(Json&)>& edit) {
  fs::create_directories(dir);
  fs::copy_file(adapter_dir + "/adapter_model.safetensors", dir + "/adapter_model.safetensors");
  Json config = Json::parse(ReadFileBytes(adapter_dir + "/adapter_config.json"));
  edit(config);
  WriteFileBytes(dir + "/adapter_config.json", config.dump(2));
  return dir;
}

// Checks every tensor of the merged fp32 export against the base and adapter files: targeted weights equal
// W + scaling * B @ A (computed in double) and differ from W by far more than the tolerance, the rest are bit for bit
// the base's, and the names and order are the base's.
void ExpectMergedAsPeft(const std::string& base_dir, const std::string& adapter_dir, const std::string& out_dir,
                        double scaling) {
  auto base = ReadCheckpointTensors(base_dir);
  auto merged = ReadCheckpointTensors(out_dir);
  ASSERT_THAT(base.status(), IsOk());
  ASSERT_THAT(merged.status(), IsOk());
  const auto pairs = AdapterPairs(adapter_dir);
  ASSERT_FALSE(pairs.empty());
  ASSERT_EQ(merged->size(), base->size());
  int checked = 0;
  for (const auto& [name, w] : *base) {
    ASSERT_EQ(merged->count(name), 1u) << name;
    const at::Tensor& m = merged->at(name);
    ASSERT_EQ(m.scalar_type(), at::kFloat) << name;
    ASSERT_EQ(m.sizes(), w.sizes()) << name;
    auto pair = pairs.find(name);
    if (pair == pairs.end()) {
      EXPECT_TRUE(at::equal(m, w)) << name << " is not the base's";
      continue;
    }
    const at::Tensor a = pair->second.first.to(at::kDouble), b = pair->second.second.to(at::kDouble);
    const at::Tensor expected = w.to(at::kDouble) + at::matmul(b, a) * scaling;
    const double error = (m.to(at::kDouble) - expected).abs().max().item<double>();
    const double change = (m.to(at::kDouble) - w.to(at::kDouble)).abs().max().item<double>();
    EXPECT_LT(error, 2e-6) << name;
    EXPECT_GT(change, 1e-3) << name << ": the adapter barely changes it, so this check could not fail";
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(pairs.size())) << "every adapted weight is in the base and was checked";
  if (fs::exists(out_dir + "/model.safetensors")) {
    EXPECT_EQ(NamesInOrder(out_dir + "/model.safetensors"), NamesInOrder(base_dir + "/model.safetensors"));
  }
}

ExportSpec Spec(const std::string& type, const std::string& base, const std::string& adapter, const std::string& out,
               const std::string& dtype = "", uint64_t max_shard_bytes = 5'000'000'000) {
  ExportSpec spec;
  spec.type = type;
  spec.base_model_dir = base;
  spec.adapter_dir = adapter;
  spec.output_dir = out;
  spec.dtype = dtype;
  spec.max_shard_bytes = max_shard_bytes;
  return spec;
}

class MergeCaseTest : public ::testing::TestWithParam<const char*> {};

TEST_P(MergeCaseTest, MergedWeightsAreWPlusScaledBATimesAAndTheRestIsTheBase) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string base = CaseDir(GetParam());
  ScratchDir out;
  std::vector<MergeProgress> progress;
  absl::StatusOr<MergedModelInfo> info = WriteMergedModel(
      base, base + "/lora", out.path() + "/merged", {"fp32"}, [&](const MergeProgress& p) { progress.push_back(p); },
      [] { return false; });
  ASSERT_THAT(info.status(), IsOk());
  const Json adapter_config = Json::parse(ReadFileBytes(base + "/lora/adapter_config.json"));
  const double r = adapter_config["r"].get<double>();
  const bool rslora = adapter_config.value("use_rslora", false);  // the qwen2 case is trained with rsLoRA
  const double scaling = adapter_config["lora_alpha"].get<double>() / (rslora ? std::sqrt(r) : r);
  ExpectMergedAsPeft(base, base + "/lora", out.path() + "/merged", scaling);

  EXPECT_EQ(info->dtype, "float32");
  EXPECT_EQ(info->shards, 1);
  EXPECT_EQ(info->merged_modules, static_cast<int64_t>(AdapterPairs(base + "/lora").size()));
  EXPECT_EQ(info->total_bytes, fs::file_size(base + "/model.safetensors") -
                                   SafetensorsFile::Open(base + "/model.safetensors").value()->header().header_length -
                                   8);
  EXPECT_EQ(info->files, FilesIn(out.path() + "/merged"));
  EXPECT_THAT(info->files, ElementsAre("config.json", "generation_config.json", "inputs.json", "model.safetensors"));
  EXPECT_THAT(info->skipped, ElementsAre("lora"));
  EXPECT_EQ(ReadFileBytes(out.path() + "/merged/generation_config.json"),
            ReadFileBytes(base + "/generation_config.json"));
  const int64_t tensors = static_cast<int64_t>(NamesInOrder(base + "/model.safetensors").size());
  ASSERT_EQ(progress.size(), static_cast<size_t>(tensors));
  for (size_t i = 0; i < progress.size(); ++i) {
    EXPECT_EQ(progress[i].tensors_done, static_cast<int64_t>(i) + 1);
    EXPECT_EQ(progress[i].tensors_total, tensors);
  }
  EXPECT_EQ(progress.back().bytes_written, info->total_bytes);
}

INSTANTIATE_TEST_SUITE_P(GeneratedCases, MergeCaseTest,
                         ::testing::Values("llama", "phi3", "mistral", "qwen2", "gemma", "llama3_rope"));

TEST(MergeAdapterTest, Bf16ExportIsTheFp32MergeRoundedOnceAndSaysSoInConfigJson) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string base = CaseDir("llama");
  ScratchDir out;
  ASSERT_THAT(WriteMergedModel(base, base + "/lora", out.path() + "/fp32", {"fp32"}, {}, {}).status(), IsOk());
  absl::StatusOr<MergedModelInfo> info = WriteMergedModel(base, base + "/lora", out.path() + "/bf16", {"bf16"}, {}, {});
  ASSERT_THAT(info.status(), IsOk());
  EXPECT_EQ(info->dtype, "bfloat16");

  auto file = SafetensorsFile::Open(out.path() + "/bf16/model.safetensors");
  ASSERT_THAT(file.status(), IsOk());
  for (const TensorInfo& t : (*file)->header().tensors) EXPECT_EQ(t.dtype, "BF16") << t.name;
  EXPECT_EQ((*file)->header().metadata.at("format"), "pt");
  auto fp32 = ReadCheckpointTensors(out.path() + "/fp32");
  auto bf16 = ReadCheckpointTensors(out.path() + "/bf16");
  ASSERT_THAT(fp32.status(), IsOk());
  ASSERT_THAT(bf16.status(), IsOk());
  for (const auto& [name, t] : *fp32) EXPECT_TRUE(at::equal(bf16->at(name), t.to(at::kBFloat16))) << name;

  // The base config.json with its dtype keys set to what was written, every other key as it was.
  Json base_config = Json::parse(ReadFileBytes(base + "/config.json"));
  Json config = Json::parse(ReadFileBytes(out.path() + "/bf16/config.json"));
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(config["dtype"], "bfloat16");  // transformers 5 writes "dtype"; the base has it
  config.erase("torch_dtype");
  config["dtype"] = base_config["dtype"];
  EXPECT_EQ(config, base_config);

  // Left empty, the dtype is the base's (its config.json says float32).
  absl::StatusOr<MergedModelInfo> default_dtype = WriteMergedModel(base, base + "/lora", out.path() + "/d", {}, {}, {});
  ASSERT_THAT(default_dtype.status(), IsOk());
  EXPECT_EQ(default_dtype->dtype, "float32");
  EXPECT_EQ(ReadFileBytes(out.path() + "/d/model.safetensors"), ReadFileBytes(out.path() + "/fp32/model.safetensors"));
  EXPECT_THAT(WriteMergedModel(base, base + "/lora", out.path() + "/x", {"int8"}, {}, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dtype 'int8' cannot be exported; use fp32")));
}

TEST(MergeAdapterTest, SmallShardsGetAnIndexCoveringEveryTensor) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string base = CaseDir("phi3");
  ScratchDir out;
  MergedModelOptions options;
  options.dtype = "fp32";
  options.max_shard_bytes = 100'000;
  absl::StatusOr<MergedModelInfo> info = WriteMergedModel(base, base + "/lora", out.path() + "/m", options, {}, {});
  ASSERT_THAT(info.status(), IsOk());
  ASSERT_GE(info->shards, 3);
  EXPECT_FALSE(fs::exists(out.path() + "/m/model.safetensors"));
  const Json index = Json::parse(ReadFileBytes(out.path() + "/m/model.safetensors.index.json"));
  std::vector<std::string> mapped;
  std::set<std::string> shard_files;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    mapped.push_back(name);
    shard_files.insert(shard.get<std::string>());
  }
  EXPECT_THAT(mapped, UnorderedElementsAreArray(NamesInOrder(base + "/model.safetensors")));
  EXPECT_EQ(static_cast<int>(shard_files.size()), info->shards);
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), info->total_bytes);
  for (const std::string& shard : shard_files) {
    EXPECT_TRUE(fs::exists(out.path() + "/m/" + shard)) << shard;
    EXPECT_LE(fs::file_size(out.path() + "/m/" + shard), 100'000u + 4096) << shard;
  }
  const double scaling = 16.0 / 8.0;  // the generated adapters: lora_alpha 16, r 8
  ExpectMergedAsPeft(base, base + "/lora", out.path() + "/m", scaling);
}

TEST(MergeAdapterTest, RsLoraScalesByAlphaOverSqrtR) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string base = CaseDir("llama");
  ScratchDir dir;
  const std::string adapter =
      EditedAdapter(base + "/lora", dir.path() + "/rslora", [](Json& c) { c["use_rslora"] = true; });
  ASSERT_THAT(WriteMergedModel(base, adapter, dir.path() + "/m", {"fp32"}, {}, {}).status(), IsOk());
  ExpectMergedAsPeft(base, adapter, dir.path() + "/m", 16.0 / std::sqrt(8.0));
}

// A Hugging Face cache snapshot (every file a symlink to ../../blobs/) with tokenizer files, a README, a chat
// template, files that must not travel (old weights, hidden files) and a subdirectory.
TEST(MergeAdapterTest, CopiesTokenizerAndOtherFilesOfACacheSnapshotButNoOldWeights) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string source = CaseDir("llama");
  ScratchDir dir;
  const fs::path repo = fs::path(dir.path()) / "models--org--tiny";
  const fs::path snapshot = repo / "snapshots" / "0123abcd";
  fs::create_directories(repo / "blobs");
  fs::create_directories(snapshot / "original");
  const std::map<std::string, std::string> extra = {
      {"tokenizer.json", R"({"version": "1.0", "model": {"type": "BPE"}})"},
      {"tokenizer_config.json", R"({"bos_token": "<s>", "chat_template": "{{ messages }}"})"},
      {"special_tokens_map.json", R"({"eos_token": "</s>"})"},
      {"chat_template.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}"},
      {"README.md", "# tiny\n"},
      {"pytorch_model.bin", "old weights"},
      {"model.safetensors.index.json.bak", "not a weight file by name, so it travels"},
      {"consolidated.safetensors", "old weights"},
      {".gitattributes", "*.bin filter=lfs"}};
  std::map<std::string, std::string> content = extra;
  for (const char* name : {"config.json", "model.safetensors"}) content[name] = ReadFileBytes(source + "/" + name);
  int blob = 0;
  for (const auto& [name, bytes] : content) {
    const std::string blob_name = "blob" + std::to_string(blob++);
    WriteFileBytes((repo / "blobs" / blob_name).string(), bytes);
    fs::create_symlink("../../blobs/" + blob_name, snapshot / name);
  }
  WriteFileBytes((snapshot / "original" / "params.json").string(), "{}");

  const std::string out = dir.path() + "/merged";
  absl::StatusOr<MergedModelInfo> info = WriteMergedModel(snapshot.string(), source + "/lora", out, {}, {}, {});
  ASSERT_THAT(info.status(), IsOk());
  EXPECT_THAT(FilesIn(out), ElementsAre("README.md", "chat_template.jinja", "config.json", "generation_config.json",
                                        "model.safetensors", "model.safetensors.index.json.bak",
                                        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"));
  EXPECT_THAT(info->skipped, ElementsAre("original"));
  for (const char* name : {"README.md", "chat_template.jinja", "special_tokens_map.json", "tokenizer.json",
                           "tokenizer_config.json"}) {
    EXPECT_FALSE(fs::is_symlink(out + "/" + name)) << name;
    EXPECT_EQ(ReadFileBytes(out + "/" + name), extra.at(name)) << name;
  }
  // No generation_config.json in the base: transformers' from_model_config, from config.json's token ids.
  EXPECT_EQ(Json::parse(ReadFileBytes(out + "/generation_config.json")),
            Json({{"_from_model_config", true}, {"bos_token_id", 1}, {"eos_token_id", 2}}));
  ExpectMergedAsPeft(source, source + "/lora", out, 2.0);

  // A symlink out of the snapshot and its blobs is refused by name; nothing of the export is left.
  ScratchDir elsewhere;
  WriteFileBytes(elsewhere.path() + "/secret.txt", "not part of the model");
  fs::create_symlink(elsewhere.path() + "/secret.txt", snapshot / "notes.txt");
  EXPECT_THAT(WriteMergedModel(snapshot.string(), source + "/lora", dir.path() + "/again", {}, {}, {}).status(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("'notes.txt'"), HasSubstr("outside the directory"))));
  EXPECT_FALSE(fs::exists(dir.path() + "/again"));
}

TEST(MergeAdapterTest, RefusesAnOutputDirectoryThatHoldsFilesAndAcceptsAnEmptyOne) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string base = CaseDir("llama");
  ScratchDir out;
  out.WriteFile("busy/keep.txt", "mine");
  EXPECT_THAT(WriteMergedModel(base, base + "/lora", out.path() + "/busy", {}, {}, {}).status(),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr(out.path() + "/busy"), HasSubstr("'keep.txt'"), HasSubstr("new or empty"))));
  EXPECT_THAT(FilesIn(out.path() + "/busy"), ElementsAre("keep.txt"));
  EXPECT_EQ(ReadFileBytes(out.path() + "/busy/keep.txt"), "mine");
  fs::create_directories(out.path() + "/empty");
  EXPECT_THAT(WriteMergedModel(base, base + "/lora", out.path() + "/empty", {}, {}, {}).status(), IsOk());
  EXPECT_TRUE(fs::exists(out.path() + "/empty/model.safetensors"));
}

TEST(MergeAdapterTest, CancelledStopsBetweenTensorsAndLeavesNoWeights) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string base = CaseDir("llama");
  ScratchDir out;
  int64_t done = 0;
  MergedModelOptions options;
  options.max_shard_bytes = 100'000;  // several shards, so the first ones are on disk when it stops
  absl::StatusOr<MergedModelInfo> info = WriteMergedModel(
      base, base + "/lora", out.path() + "/m", options, [&](const MergeProgress& p) { done = p.tensors_done; },
      [&] { return done >= 20; });
  EXPECT_THAT(info.status(), StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_EQ(done, 20);
  EXPECT_FALSE(fs::exists(out.path() + "/m"));

  // In a directory the caller made, the directory stays, empty.
  fs::create_directories(out.path() + "/given");
  done = 0;
  info = WriteMergedModel(base, base + "/lora", out.path() + "/given", options,
                          [&](const MergeProgress& p) { done = p.tensors_done; }, [&] { return done >= 5; });
  EXPECT_THAT(info.status(), StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_TRUE(fs::is_empty(out.path() + "/given"));
}

TEST(MergeAdapterTest, RefusesAnAdapterForModulesOrWeightsTheBaseLacks) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  // phi3's adapter (fused qkv_proj, gate_up_proj) on a llama base.
  EXPECT_THAT(WriteMergedModel(CaseDir("llama"), CaseDir("phi3") + "/lora", dir.path() + "/a", {}, {}, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("adapter_config.json"),
                                                                HasSubstr("qkv_proj"))));
  EXPECT_FALSE(fs::exists(dir.path() + "/a"));

  // A base checkpoint without a weight the adapter adapts (config.json still describes it).
  const std::string base = dir.path() + "/base";
  fs::create_directories(base);
  fs::copy_file(CaseDir("llama") + "/config.json", base + "/config.json");
  auto file = SafetensorsFile::Open(CaseDir("llama") + "/model.safetensors");
  ASSERT_THAT(file.status(), IsOk());
  std::vector<TensorToWrite> kept;
  for (const TensorInfo& t : (*file)->header().tensors) {
    if (t.name == "model.layers.1.self_attn.q_proj.weight") continue;
    const absl::Span<const uint8_t> bytes = (*file)->TensorBytes(t);
    kept.push_back(
        {t.name, t.dtype, t.shape, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())});
  }
  ASSERT_THAT(WriteSafetensors(base + "/model.safetensors", kept, {{"format", "pt"}}), IsOk());
  EXPECT_THAT(WriteMergedModel(base, CaseDir("llama") + "/lora", dir.path() + "/b", {}, {}, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight'"),
                             HasSubstr("'model.layers.1.self_attn.q_proj.weight'"), HasSubstr("does not have"))));
  EXPECT_FALSE(fs::exists(dir.path() + "/b"));
}

TEST(CopyPeftAdapterTest, CopiesTheAdapterByteForByte) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string adapter = CaseDir("qwen2") + "/lora";
  ScratchDir out;
  absl::StatusOr<CopiedAdapterInfo> copied = CopyPeftAdapter(adapter, out.path() + "/a");
  ASSERT_THAT(copied.status(), IsOk());
  EXPECT_EQ(copied->files, FilesIn(adapter));
  EXPECT_EQ(FilesIn(out.path() + "/a"), FilesIn(adapter));
  uint64_t bytes = 0;
  for (const std::string& name : FilesIn(adapter)) {
    EXPECT_EQ(ReadFileBytes(out.path() + "/a/" + name), ReadFileBytes(adapter + "/" + name)) << name;
    bytes += fs::file_size(adapter + "/" + name);
  }
  EXPECT_EQ(copied->bytes, bytes);

  EXPECT_THAT(CopyPeftAdapter(adapter, out.path() + "/a").status(),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already holds files")));
  ScratchDir broken;
  WriteFileBytes(broken.path() + "/adapter_config.json", "{\"peft_type\": \"LORA\"}");
  EXPECT_THAT(CopyPeftAdapter(broken.path(), out.path() + "/b").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("adapter_model.safetensors is not in")));
  WriteFileBytes(broken.path() + "/adapter_model.safetensors", "not safetensors");
  EXPECT_THAT(CopyPeftAdapter(broken.path(), out.path() + "/b").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("adapter_model.safetensors")));
  EXPECT_FALSE(fs::exists(out.path() + "/b"));
}

TEST(RunExportTest, AdapterExportCopiesAndMergedExportReports) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string base = CaseDir("llama");
  ScratchDir out;
  std::vector<std::string> events;
  std::vector<std::pair<int64_t, int64_t>> progress;
  ExportHooks hooks;
  hooks.on_event = [&](std::string_view level, std::string_view message) {
    events.push_back(std::string(level) + ": " + std::string(message));
  };
  hooks.on_progress = [&](int64_t done, int64_t total) { progress.emplace_back(done, total); };

  absl::StatusOr<ExportResult> adapter =
      RunExport(Spec("adapter", base, base + "/lora", out.path() + "/adapter"), hooks);
  ASSERT_THAT(adapter.status(), IsOk());
  EXPECT_EQ(adapter->files, FilesIn(base + "/lora"));
  for (const std::string& name : FilesIn(base + "/lora")) {
    EXPECT_EQ(ReadFileBytes(out.path() + "/adapter/" + name), ReadFileBytes(base + "/lora/" + name)) << name;
  }
  ASSERT_FALSE(events.empty());
  EXPECT_THAT(events.front(), AllOf(HasSubstr("r=8 alpha=16"), HasSubstr("q_proj")));

  events.clear();
  progress.clear();
  absl::StatusOr<ExportResult> merged =
      RunExport(Spec("merged", base, base + "/lora", out.path() + "/merged", "bf16", 100'000), hooks);
  ASSERT_THAT(merged.status(), IsOk());
  EXPECT_EQ(merged->output_dir, out.path() + "/merged");
  EXPECT_EQ(merged->dtype, "bfloat16");
  EXPECT_GE(merged->shards, 2);
  EXPECT_EQ(merged->files, FilesIn(out.path() + "/merged"));
  const int64_t tensors = static_cast<int64_t>(NamesInOrder(base + "/model.safetensors").size());
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), std::make_pair(tensors, tensors));
  // The case folder holds the adapter in lora/: a subdirectory, not copied, and said so.
  ASSERT_EQ(events.size(), 3u);
  EXPECT_THAT(events[0], AllOf(HasSubstr("info: export merged: base '" + base + "'"), HasSubstr("r=8 alpha=16")));
  EXPECT_THAT(events[1], AllOf(HasSubstr("warning: not copied: 'lora'")));
  EXPECT_THAT(events[2], AllOf(HasSubstr("bfloat16"), HasSubstr(std::to_string(merged->shards) + " shards"),
                               HasSubstr(std::to_string(merged->bytes) + " bytes"), HasSubstr(" s")));

  EXPECT_THAT(RunExport(Spec("gguf", base, base + "/lora", out.path() + "/x"), hooks).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("export type 'gguf'")));
  EXPECT_THAT(RunExport(Spec("merged", "", base + "/lora", out.path() + "/x"), hooks).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("base_model_dir is empty")));
  hooks.cancelled = [] { return true; };
  EXPECT_THAT(RunExport(Spec("merged", base, base + "/lora", out.path() + "/x"), hooks).status(),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_FALSE(fs::exists(out.path() + "/x"));
}

}  // namespace
}  // namespace tuneforge
