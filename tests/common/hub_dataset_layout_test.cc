// The configs, splits and data files of a Hub dataset repo: glob matching and the Parquet conversion branch on
// hand-made file lists, and every repo layout that tests/reference/make_hub_layouts.py writes, against what the
// `datasets` library itself decided about it.
#include "common/hub_dataset_layout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;

MATCHER_P2(Feature, name, type, "") { return arg.name == name && arg.type == type; }

const HubDataConfig* FindConfig(const HubDatasetLayout& layout, const std::string& name) {
  for (const HubDataConfig& c : layout.configs) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::vector<std::string> ConfigNames(const HubDatasetLayout& layout) {
  std::vector<std::string> names;
  for (const HubDataConfig& c : layout.configs) names.push_back(c.name);
  return names;
}

std::vector<std::string> SplitNames(const HubDataConfig& config) {
  std::vector<std::string> names;
  for (const HubDataSplit& s : config.splits) names.push_back(s.name);
  return names;
}

// ---------------------------------------------------------------------------------------------------------------
// HubGlobMatch: the expectations are what fsspec's glob (which datasets resolves data_files with) returns.

TEST(HubGlobMatchTest, SplitKeywordPatterns) {
  // datasets' pattern for "train" at the start of a file name, at any depth ("**" matching no component too).
  EXPECT_TRUE(HubGlobMatch("**/train[-._ 0-9]*", "train.jsonl"));
  EXPECT_TRUE(HubGlobMatch("**/train[-._ 0-9]*", "a/b/train-1.csv"));
  EXPECT_TRUE(HubGlobMatch("**/train[-._ 0-9]*", "data/train-00000-of-00002.parquet"));
  EXPECT_FALSE(HubGlobMatch("**/train[-._ 0-9]*", "constraint.csv"));
  EXPECT_FALSE(HubGlobMatch("**/train[-._ 0-9]*", "training.csv"));
  EXPECT_FALSE(HubGlobMatch("**/train[-._ 0-9]*", "train"));
  // ... and as a word inside a file name.
  EXPECT_TRUE(HubGlobMatch("**/*[-._ 0-9]train[-._ 0-9]*", "my_train_file.csv"));
  EXPECT_TRUE(HubGlobMatch("**/*[-._ 0-9]train[-._ 0-9]*", "a/x-train.csv"));
  EXPECT_FALSE(HubGlobMatch("**/*[-._ 0-9]train[-._ 0-9]*", "constraint.csv"));
  EXPECT_FALSE(HubGlobMatch("**/*[-._ 0-9]train[-._ 0-9]*", "train.jsonl"));
  // ... and as a directory name.
  EXPECT_TRUE(HubGlobMatch("**/train/**", "data/train/a.jsonl"));
  EXPECT_TRUE(HubGlobMatch("**/train/**", "train/a.jsonl"));
  EXPECT_TRUE(HubGlobMatch("**/train/**", "train/sub/a.jsonl"));
  EXPECT_FALSE(HubGlobMatch("**/train/**", "data/training/a.jsonl"));
  EXPECT_FALSE(HubGlobMatch("**/train/**", "train.jsonl"));
}

TEST(HubGlobMatchTest, StarAndQuestionMarkDoNotCrossSlash) {
  EXPECT_TRUE(HubGlobMatch("data/*", "data/a.jsonl"));
  EXPECT_FALSE(HubGlobMatch("data/*", "data/sub/a.jsonl"));
  EXPECT_FALSE(HubGlobMatch("data/*", "other/a.jsonl"));
  EXPECT_TRUE(HubGlobMatch("*.jsonl", "x.jsonl"));
  EXPECT_FALSE(HubGlobMatch("*.jsonl", "sub/x.jsonl"));
  EXPECT_FALSE(HubGlobMatch("*.jsonl", "x.jsonl.gz"));
  EXPECT_TRUE(HubGlobMatch("*/*/train-1.csv", "a/b/train-1.csv"));
  EXPECT_FALSE(HubGlobMatch("*/train-1.csv", "a/b/train-1.csv"));
  EXPECT_TRUE(HubGlobMatch("data/train-*", "data/train-00000-of-00002.parquet"));
  EXPECT_TRUE(HubGlobMatch("a?b.csv", "a-b.csv"));
  EXPECT_FALSE(HubGlobMatch("a?b.csv", "ab.csv"));
  EXPECT_FALSE(HubGlobMatch("a?b", "a/b"));
  // No wildcard: the path itself.
  EXPECT_TRUE(HubGlobMatch("holdout/a.parquet", "holdout/a.parquet"));
  EXPECT_FALSE(HubGlobMatch("holdout/a.parquet", "holdout/a.parquet.bak"));
  EXPECT_FALSE(HubGlobMatch("holdout/a.parquet", "x/holdout/a.parquet"));
}

TEST(HubGlobMatchTest, DoubleStarMatchesAnyNumberOfComponents) {
  EXPECT_TRUE(HubGlobMatch("**", "a.jsonl"));
  EXPECT_TRUE(HubGlobMatch("**", "a/b/c.jsonl"));
  EXPECT_TRUE(HubGlobMatch("**/*", "a.jsonl"));
  EXPECT_TRUE(HubGlobMatch("**/*", "a/b/c.jsonl"));
  EXPECT_TRUE(HubGlobMatch("data/**", "data/a.jsonl"));
  EXPECT_TRUE(HubGlobMatch("data/**", "data/a/b/z.jsonl"));
  EXPECT_FALSE(HubGlobMatch("data/**", "other/a.jsonl"));
  EXPECT_TRUE(HubGlobMatch("data/**/*.jsonl", "data/x.jsonl"));  // none
  EXPECT_TRUE(HubGlobMatch("data/**/*.jsonl", "data/a/b/z.jsonl"));
  EXPECT_FALSE(HubGlobMatch("data/**/*.jsonl", "data/a/b/z.csv"));
  // Last, "**" takes one component or more: fsspec makes "x/**" the regex x/.*, which no file x itself matches. So
  // a file named like a split is not in a split "directory" of that name.
  EXPECT_FALSE(HubGlobMatch("data/**", "data"));
  EXPECT_FALSE(HubGlobMatch("**/train[-._ 0-9]*/**", "test-2024/train.jsonl"));
  EXPECT_TRUE(HubGlobMatch("**/train[-._ 0-9]*/**", "train-2024/a.jsonl"));
  EXPECT_TRUE(HubGlobMatch("a/**/train-1.csv", "a/b/train-1.csv"));
  EXPECT_TRUE(HubGlobMatch("a/**/train-1.csv", "a/train-1.csv"));
}

TEST(HubGlobMatchTest, CharacterClasses) {
  EXPECT_TRUE(HubGlobMatch("[!a]*.csv", "b.csv"));
  EXPECT_TRUE(HubGlobMatch("[!a]*.csv", "constraint.csv"));
  EXPECT_FALSE(HubGlobMatch("[!a]*.csv", "a.csv"));
  EXPECT_FALSE(HubGlobMatch("[!a]*.csv", "ab.csv"));
  EXPECT_TRUE(HubGlobMatch("[!a-b]*.csv", "d1.csv"));
  EXPECT_FALSE(HubGlobMatch("[!a-b]*.csv", "b1.csv"));
  EXPECT_TRUE(HubGlobMatch("[a-c]?.csv", "b1.csv"));
  EXPECT_TRUE(HubGlobMatch("[a-c]?.csv", "ab.csv"));
  EXPECT_FALSE(HubGlobMatch("[a-c]?.csv", "d1.csv"));
  EXPECT_FALSE(HubGlobMatch("[a-c]?.csv", "b.csv"));
  EXPECT_TRUE(HubGlobMatch("data/train-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]*.*",
                           "data/train-00000-of-00002.parquet"));
  EXPECT_FALSE(HubGlobMatch("data/train-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]*.*",
                            "data/train-0000a-of-00002.parquet"));
  // A class matches one character, never '/'.
  EXPECT_FALSE(HubGlobMatch("a[!x]b", "a/b"));
}

// ---------------------------------------------------------------------------------------------------------------
// ResolveParquetConversionLayout: the refs/convert/parquet branch as the Hub writes it.

TEST(ParquetConversionLayoutTest, ConfigsSplitsAndPartialSplits) {
  const std::vector<std::string> paths = {".gitattributes",
                                          "main/test/0000.parquet",
                                          "main/train/0000.parquet",
                                          "main/train/0001.parquet",
                                          "socratic/train/0000.parquet",
                                          "big/partial-train/0000.parquet",
                                          "big/partial-train/0001.parquet",
                                          "big/validation/0000.parquet"};
  absl::StatusOr<HubDatasetLayout> layout = ResolveParquetConversionLayout(paths, nullptr, "dataset");
  ASSERT_THAT(layout, IsOk());
  EXPECT_THAT(ConfigNames(*layout), ::testing::UnorderedElementsAre("main", "socratic", "big"));
  EXPECT_EQ(layout->default_config, "") << "three configs, none of them the default";
  EXPECT_FALSE(layout->from_card);

  const HubDataConfig* main = FindConfig(*layout, "main");
  ASSERT_NE(main, nullptr);
  EXPECT_EQ(main->module, "parquet");
  EXPECT_EQ(main->unreadable, "");
  ASSERT_THAT(SplitNames(*main), ElementsAre("train", "test"));
  EXPECT_THAT(main->splits[0].files, ElementsAre("main/train/0000.parquet", "main/train/0001.parquet"));
  EXPECT_THAT(main->splits[1].files, ElementsAre("main/test/0000.parquet"));
  EXPECT_FALSE(main->splits[0].partial);
  EXPECT_EQ(main->splits[0].num_rows, -1) << "no card, no row counts";
  EXPECT_EQ(main->splits[0].num_bytes, -1);

  const HubDataConfig* socratic = FindConfig(*layout, "socratic");
  ASSERT_NE(socratic, nullptr);
  ASSERT_THAT(SplitNames(*socratic), ElementsAre("train"));
  EXPECT_THAT(socratic->splits[0].files, ElementsAre("socratic/train/0000.parquet"));

  // The Hub converted only the first part of big's train split: the split is "train", marked partial.
  const HubDataConfig* big = FindConfig(*layout, "big");
  ASSERT_NE(big, nullptr);
  ASSERT_THAT(SplitNames(*big), ElementsAre("train", "validation"));
  EXPECT_TRUE(big->splits[0].partial);
  EXPECT_THAT(big->splits[0].files, ElementsAre("big/partial-train/0000.parquet", "big/partial-train/0001.parquet"));
  EXPECT_FALSE(big->splits[1].partial);
}

TEST(ParquetConversionLayoutTest, SplitOrderIsTrainValidationTestThenTheRest) {
  absl::StatusOr<HubDatasetLayout> layout = ResolveParquetConversionLayout(
      {"c/test/0000.parquet", "c/custom/0000.parquet", "c/train/0000.parquet", "c/validation/0000.parquet",
       "c/aaa/0000.parquet"},
      nullptr, "dataset");
  ASSERT_THAT(layout, IsOk());
  ASSERT_THAT(ConfigNames(*layout), ElementsAre("c"));
  EXPECT_THAT(SplitNames(layout->configs[0]), ElementsAre("train", "validation", "test", "aaa", "custom"));
  EXPECT_EQ(layout->default_config, "c") << "a single config is the default, whatever its name";
}

// gsm8k-like: two configs, dataset_info as a list naming each config.
TEST(ParquetConversionLayoutTest, RowCountsAndFeaturesFromDatasetInfoList) {
  const json card = json::parse(R"({
    "configs": [
      {"config_name": "main", "default": true,
       "data_files": [{"split": "train", "path": "main/train-*"}, {"split": "test", "path": "main/test-*"}]},
      {"config_name": "socratic", "data_files": [{"split": "train", "path": "socratic/train-*"}]}],
    "dataset_info": [
      {"config_name": "main",
       "features": [{"name": "question", "dtype": "string"}, {"name": "answer", "dtype": "string"}],
       "splits": [{"name": "train", "num_bytes": 3963202, "num_examples": 7473},
                  {"name": "test", "num_bytes": 713732, "num_examples": 1319}]},
      {"config_name": "socratic",
       "splits": [{"name": "train", "num_bytes": 5198108, "num_examples": 7473}]}]})");
  const std::vector<std::string> paths = {"main/train/0000.parquet", "main/test/0000.parquet",
                                          "socratic/train/0000.parquet", "socratic/test/0000.parquet"};
  absl::StatusOr<HubDatasetLayout> layout = ResolveParquetConversionLayout(paths, card, "dataset");
  ASSERT_THAT(layout, IsOk());
  EXPECT_EQ(layout->default_config, "main");
  const HubDataConfig* main = FindConfig(*layout, "main");
  ASSERT_NE(main, nullptr);
  ASSERT_THAT(SplitNames(*main), ElementsAre("train", "test"));
  EXPECT_EQ(main->splits[0].num_rows, 7473);
  EXPECT_EQ(main->splits[0].num_bytes, 3963202);
  EXPECT_EQ(main->splits[1].num_rows, 1319);
  EXPECT_EQ(main->splits[1].num_bytes, 713732);
  EXPECT_THAT(main->features, ElementsAre(Feature("question", "string"), Feature("answer", "string")));
  const HubDataConfig* socratic = FindConfig(*layout, "socratic");
  ASSERT_NE(socratic, nullptr);
  ASSERT_THAT(SplitNames(*socratic), ElementsAre("train", "test"));
  EXPECT_EQ(socratic->splits[0].num_rows, 7473);
  EXPECT_EQ(socratic->splits[1].num_rows, -1) << "the card says nothing of socratic's test split";
  EXPECT_EQ(socratic->splits[1].num_bytes, -1);
  EXPECT_TRUE(socratic->features.empty());
}

// One config: dataset_info as a single object without config_name describes the "default" config.
TEST(ParquetConversionLayoutTest, RowCountsAndFeaturesFromDatasetInfoObject) {
  const json card = json::parse(R"({
    "dataset_info": {
      "features": [{"name": "text", "dtype": "string"}, {"name": "label", "dtype": "int64"},
                   {"name": "score", "dtype": "float32"}, {"name": "ok", "dtype": "bool"}],
      "splits": [{"name": "train", "num_bytes": 1000, "num_examples": 3}]}})");
  absl::StatusOr<HubDatasetLayout> layout =
      ResolveParquetConversionLayout({"default/test/0000.parquet", "default/train/0000.parquet"}, card, "dataset");
  ASSERT_THAT(layout, IsOk());
  ASSERT_THAT(ConfigNames(*layout), ElementsAre("default"));
  EXPECT_EQ(layout->default_config, "default");
  const HubDataConfig& config = layout->configs[0];
  ASSERT_THAT(SplitNames(config), ElementsAre("train", "test"));
  EXPECT_EQ(config.splits[0].num_rows, 3);
  EXPECT_EQ(config.splits[0].num_bytes, 1000);
  EXPECT_EQ(config.splits[1].num_rows, -1);
  EXPECT_THAT(config.features, ElementsAre(Feature("text", "string"), Feature("label", "int"),
                                           Feature("score", "float"), Feature("ok", "bool")));
}

// Conversions made before the {config}/{split}/NNNN.parquet layout: {config}/{name}-{split}[-NNNNN-of-NNNNN].parquet.
TEST(ParquetConversionLayoutTest, OldStyleFileNames) {
  absl::StatusOr<HubDatasetLayout> layout = ResolveParquetConversionLayout(
      {"default/squad-train.parquet", "default/squad-validation.parquet"}, nullptr, "dataset");
  ASSERT_THAT(layout, IsOk());
  ASSERT_THAT(ConfigNames(*layout), ElementsAre("default"));
  ASSERT_THAT(SplitNames(layout->configs[0]), ElementsAre("train", "validation"));
  EXPECT_THAT(layout->configs[0].splits[0].files, ElementsAre("default/squad-train.parquet"));
  EXPECT_THAT(layout->configs[0].splits[1].files, ElementsAre("default/squad-validation.parquet"));

  layout = ResolveParquetConversionLayout({"plain_text/my-imdb-train-00001-of-00002.parquet",
                                           "plain_text/my-imdb-train-00000-of-00002.parquet",
                                           "plain_text/my-imdb-test.parquet"},
                                          nullptr, "dataset");
  ASSERT_THAT(layout, IsOk());
  ASSERT_THAT(ConfigNames(*layout), ElementsAre("plain_text"));
  EXPECT_EQ(layout->default_config, "plain_text");
  ASSERT_THAT(SplitNames(layout->configs[0]), ElementsAre("train", "test"));
  EXPECT_THAT(layout->configs[0].splits[0].files, ElementsAre("plain_text/my-imdb-train-00000-of-00002.parquet",
                                                              "plain_text/my-imdb-train-00001-of-00002.parquet"));
  EXPECT_THAT(layout->configs[0].splits[1].files, ElementsAre("plain_text/my-imdb-test.parquet"));
}

TEST(ParquetConversionLayoutTest, NoParquetFileIsNotFound) {
  EXPECT_THAT(ResolveParquetConversionLayout({".gitattributes", "README.md"}, nullptr, "hub.dataset"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("hub.dataset")));
  EXPECT_THAT(ResolveParquetConversionLayout({}, nullptr, "hub.dataset"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("hub.dataset")));
}

// ---------------------------------------------------------------------------------------------------------------
// ResolveHubDatasetLayout: what the reference cases below cannot show (row counts, error codes and messages).

TEST(HubDatasetLayoutTest, RowCountsAndFeaturesFromTheCard) {
  const json card = json::parse(R"({
    "configs": [{"config_name": "default",
                 "data_files": [{"split": "train", "path": "data/train-*"}, {"split": "test", "path": "data/test-*"}]}],
    "dataset_info": {"features": [{"name": "prompt", "dtype": "string"}],
                     "splits": [{"name": "train", "num_bytes": 2048, "num_examples": 20},
                                {"name": "test", "num_bytes": 512, "num_examples": 5}]}})");
  absl::StatusOr<HubDatasetLayout> layout = ResolveHubDatasetLayout(
      {"README.md", "data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"}, card, "dataset");
  ASSERT_THAT(layout, IsOk());
  EXPECT_TRUE(layout->from_card);
  ASSERT_THAT(ConfigNames(*layout), ElementsAre("default"));
  const HubDataConfig& config = layout->configs[0];
  ASSERT_THAT(SplitNames(config), ElementsAre("train", "test"));
  EXPECT_EQ(config.splits[0].num_rows, 20);
  EXPECT_EQ(config.splits[0].num_bytes, 2048);
  EXPECT_EQ(config.splits[1].num_rows, 5);
  EXPECT_THAT(config.features, ElementsAre(Feature("prompt", "string")));
}

TEST(HubDatasetLayoutTest, CardErrorsAreInvalidArgumentNamingTheField) {
  const std::vector<std::string> paths = {"README.md", "a/train.jsonl", "b/train.jsonl"};
  EXPECT_THAT(ResolveHubDatasetLayout(paths, json::parse(R"({"configs": [{"data_files": "a/*.jsonl"}]})"),
                                      "hub.dataset"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hub.dataset")));
  EXPECT_THAT(ResolveHubDatasetLayout(
                  paths, json::parse(R"({"configs": [{"config_name": "a", "data_files": [{"split": "train"}]}]})"),
                  "hub.dataset"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hub.dataset")));
  EXPECT_THAT(ResolveHubDatasetLayout(paths, json::parse(R"({"configs": [
                                        {"config_name": "a", "data_files": "a/*.jsonl", "default": true},
                                        {"config_name": "b", "data_files": "b/*.jsonl", "default": true}]})"),
                                      "hub.dataset"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hub.dataset")));
  EXPECT_THAT(ResolveHubDatasetLayout(paths, json::parse(R"({"configs": [
                                        {"config_name": "a", "data_files": "a/*.jsonl"},
                                        {"config_name": "c", "data_files": "c/*.jsonl"}]})"),
                                      "hub.dataset"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hub.dataset")));
}

// ---------------------------------------------------------------------------------------------------------------
// Every repo of tests/reference/make_hub_layouts.py against what the datasets library decided about it.

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// The C++ layout in expected.json's shape: configs with module, splits and files, and the default (null for none).
json AsExpected(const HubDatasetLayout& layout) {
  json configs = json::array();
  for (const HubDataConfig& c : layout.configs) {
    json splits = json::array();
    for (const HubDataSplit& s : c.splits) splits.push_back({{"name", s.name}, {"files", s.files}});
    configs.push_back({{"name", c.name}, {"module", c.module}, {"splits", splits}});
  }
  return {{"configs", configs},
          {"default_config", layout.default_config.empty() ? json(nullptr) : json(layout.default_config)}};
}

// Whether tuneforge reads a config of datasets' answer: json, csv or parquet files, none compressed or
// tab-separated.
bool Readable(const json& config) {
  const std::string module = config["module"].get<std::string>();
  if (module != "json" && module != "csv" && module != "parquet") return false;
  for (const json& split : config["splits"]) {
    for (const json& file : split["files"]) {
      const std::string f = file.get<std::string>();
      for (const char* ext : {".gz", ".bz2", ".xz", ".zst", ".zip", ".tsv"}) {
        if (absl::EndsWithIgnoreCase(f, ext)) return false;
      }
    }
  }
  return true;
}

// How the C++ answer for one reference case differs from datasets' ("" when it does not).
std::string CaseDifference(const json& expected, const json& card) {
  absl::StatusOr<HubDatasetLayout> layout =
      ResolveHubDatasetLayout(expected["files"].get<std::vector<std::string>>(), card, "dataset");
  json want = {{"configs", expected.value("configs", json::array())},
               {"default_config", expected.value("default_config", json(nullptr))}};
  // A file two of a split's patterns match is listed twice by datasets (and its rows read twice); tuneforge lists
  // and reads it once, on purpose.
  for (json& config : want["configs"]) {
    for (json& split : config["splits"]) {
      std::vector<std::string> files = split["files"].get<std::vector<std::string>>();
      std::sort(files.begin(), files.end());
      files.erase(std::unique(files.begin(), files.end()), files.end());
      split["files"] = files;
    }
  }
  if (expected.value("error", false)) {
    if (!layout.ok()) return "";
    return "datasets refuses this repo (" + expected["message"].get<std::string>() +
           ")\nbut the C++ resolves it to " + AsExpected(*layout).dump();
  }
  if (!layout.ok()) {
    return "the C++ refuses this repo: " + layout.status().ToString() + "\nbut datasets resolves it to " +
           want.dump();
  }
  if (AsExpected(*layout) != want) {
    return "\n  the C++: " + AsExpected(*layout).dump() + "\n  datasets: " + want.dump();
  }
  std::string difference;
  const bool card_configs =
      card.is_object() && card.contains("configs") && card["configs"].is_array() && !card["configs"].empty();
  if (layout->from_card != card_configs) {
    difference += "from_card is " + std::string(layout->from_card ? "true" : "false") + " for this card\n";
  }
  for (const json& config : want["configs"]) {
    const HubDataConfig* mine = FindConfig(*layout, config["name"].get<std::string>());
    if (mine->unreadable.empty() != Readable(config)) {
      difference += "config " + mine->name + " (" + mine->module + ") is marked " +
                    (mine->unreadable.empty() ? "readable" : "unreadable ('" + mine->unreadable + "')") + "\n";
    }
  }
  return difference;
}

class HubLayoutReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::HubLayoutsReference();
    if (dir_.empty()) {
      GTEST_SKIP() << "no reference layouts: the hub_layouts test writes them with the datasets library "
                      "(tests/reference/make_hub_layouts.py) and reports itself skipped when no Python has it; run "
                      "ctest -R hub_layouts first, or name a folder of them with TUNEFORGE_HUB_LAYOUTS";
    }
    manifest_ = ReadJson(dir_ + "/manifest.json");
  }

  std::string dir_;
  json manifest_;
};

TEST_F(HubLayoutReferenceTest, EveryCaseAsTheDatasetsLibraryDecides) {
  ASSERT_FALSE(manifest_["cases"].empty());
  std::vector<std::string> differ;
  for (const json& c : manifest_["cases"]) {
    const std::string name = c.get<std::string>();
    const std::string difference = CaseDifference(ReadJson(dir_ + "/" + name + "/expected.json"),
                                                  ReadJson(dir_ + "/" + name + "/card.json"));
    if (difference.empty()) continue;
    ADD_FAILURE() << name << " (" << dir_ << "/" << name << ", datasets " << manifest_["datasets"].get<std::string>()
                  << "): " << difference;
    differ.push_back(name);
  }
  EXPECT_THAT(differ, ::testing::IsEmpty()) << "cases where the C++ and the datasets library differ";
}

}  // namespace
}  // namespace tuneforge
