// Parquet files written by pyarrow at test time (tests/reference/make_parquet_files.py, the parquet_files fixture):
// every row read back equals what pyarrow says it holds, by the conversion rules of common/parquet_file.h; row
// counts, row groups, compression, column types and null counts match the file; damaged files are refused with a
// clear error; and a Parquet file goes through the same paths as the text formats (SummarizeDatasetFile,
// ForEachDatasetRow, InspectLocalDataset). Skipped without the fixture (no Python with pyarrow).
#include "common/parquet_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "common/dataset_files.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

class ParquetFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ParquetSupported()) GTEST_SKIP() << "this build has no Parquet support (no pyarrow at configure time)";
    dir_ = testing::ParquetReference();
    std::ifstream in(dir_ + "/manifest.json");
    if (dir_.empty() || !in) {
      GTEST_SKIP() << "no Parquet files: run the parquet_files fixture (tests/reference/make_parquet_files.py "
                      "--out DIR, then TUNEFORGE_PARQUET_REFERENCE=DIR)";
    }
    manifest_ = json::parse(in);
  }

  std::vector<json> Expected(const json& c) const {
    std::vector<json> rows;
    std::ifstream in(dir_ + "/" + c["expected"].get<std::string>());
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) rows.push_back(json::parse(line));
    }
    return rows;
  }

  std::string dir_;
  json manifest_;
};

TEST_F(ParquetFileTest, EveryRowReadsAsPyarrowWroteIt) {
  ASSERT_FALSE(manifest_["cases"].empty());
  for (const json& c : manifest_["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name + " (seed " + manifest_["seed"].dump() + ")");
    const std::string path = dir_ + "/" + c["file"].get<std::string>();
    const std::vector<json> expected = Expected(c);
    ASSERT_EQ(static_cast<int64_t>(expected.size()), c["num_rows"].get<int64_t>());
    std::vector<json> rows;
    ASSERT_THAT(ForEachParquetRow(path, name,
                                  [&](size_t index, json&& row) {
                                    EXPECT_EQ(index, rows.size());
                                    rows.push_back(std::move(row));
                                    return true;
                                  }),
                IsOk());
    ASSERT_EQ(rows.size(), expected.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      ASSERT_EQ(rows[i], expected[i]) << "row " << i << "\n got: " << rows[i].dump() << "\nwant: " << expected[i].dump();
    }
  }
}

TEST_F(ParquetFileTest, SummaryHasTheFilesMetadataTypesAndNulls) {
  for (const json& c : manifest_["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    absl::StatusOr<ParquetSummary> summary = SummarizeParquetFile(dir_ + "/" + c["file"].get<std::string>(), name);
    ASSERT_THAT(summary, IsOk());
    EXPECT_EQ(summary->num_rows, c["num_rows"].get<int64_t>());
    EXPECT_EQ(summary->num_row_groups, c["row_groups"].get<int>());
    // pyarrow names LZ4_RAW "lz4".
    EXPECT_THAT(summary->compression, ::testing::StartsWith(c["compression"].get<std::string>()));
    EXPECT_LE(summary->max_batch_rows, kParquetBatchRows);
    ASSERT_EQ(summary->columns.size(), c["columns"].size());
    for (size_t k = 0; k < summary->columns.size(); ++k) {
      EXPECT_EQ(summary->columns[k].name, c["columns"][k]["name"]);
      EXPECT_EQ(summary->columns[k].type, c["columns"][k]["type"]) << summary->columns[k].name;
      EXPECT_EQ(summary->columns[k].null_count, c["columns"][k]["null_count"].get<int64_t>())
          << summary->columns[k].name;
    }
  }
}

TEST_F(ParquetFileTest, StopsEarlyWhenAskedTo) {
  const std::string path = dir_ + "/many_groups.parquet";
  size_t seen = 0;
  ASSERT_THAT(ForEachParquetRow(path, "many_groups",
                                [&](size_t index, json&&) {
                                  ++seen;
                                  return index < 2;
                                }),
              IsOk());
  EXPECT_EQ(seen, 3u);
}

TEST_F(ParquetFileTest, DamagedFilesAreRefusedSayingWhy) {
  ASSERT_FALSE(manifest_["refused"].empty());
  for (const json& r : manifest_["refused"]) {
    const std::string file = r["file"];
    SCOPED_TRACE(file);
    EXPECT_THAT(SummarizeParquetFile(dir_ + "/" + file, file),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(r["message"].get<std::string>())));
    // Through the dataset path too, which also names the file.
    EXPECT_THAT(SummarizeDatasetFile(dir_ + "/" + file, DatasetFormat::kParquet, file),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(file)));
  }
  EXPECT_THAT(SummarizeParquetFile(dir_ + "/missing.parquet", "missing.parquet"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.parquet does not exist")));
}

TEST_F(ParquetFileTest, ParquetIsADatasetFormatLikeTheOthers) {
  EXPECT_THAT(DatasetFormatFromPath("data/train-00000-of-00002.PARQUET", "local.train_path"), IsOk());
  const std::string path = dir_ + "/chat.parquet";
  absl::StatusOr<DatasetFileSummary> summary = SummarizeDatasetFile(path, DatasetFormat::kParquet, "chat.parquet");
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->num_rows, 40);
  EXPECT_EQ(summary->columns, (std::vector<std::string>{"messages", "conversations", "source"}));
  EXPECT_EQ(summary->features[0].type, "list");
  EXPECT_EQ(summary->features[0].null_count, 0);
  EXPECT_EQ(summary->sha256.size(), 64u);
  EXPECT_GT(summary->size, 0);
  EXPECT_EQ(summary->parquet_row_groups, 3);

  absl::StatusOr<DatasetFileContent> content = LoadDatasetFile(path, DatasetFormat::kParquet, "chat.parquet");
  ASSERT_THAT(content, IsOk());
  ASSERT_EQ(content->rows.size(), 40u);
  EXPECT_EQ(content->rows[0]["messages"][0]["role"], "user");
  EXPECT_EQ(content->sha256, summary->sha256);

  // A local dataset from a Parquet file: features with null counts, a generated test split, a preview.
  absl::StatusOr<LocalDatasetInfo> info = InspectLocalDataset(dir_ + "/types.parquet", "", 0.1, 7);
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->format, DatasetFormat::kParquet);
  ASSERT_EQ(info->splits.size(), 2u);
  EXPECT_EQ(info->splits[0].num_rows + info->splits[1].num_rows, 257);
  EXPECT_EQ(info->features.size(), 19u);
  EXPECT_EQ(info->features[0].name, "i8");
  EXPECT_GE(info->features[0].null_count, 0);
  EXPECT_EQ(info->preview.at("train").size(), kDatasetPreviewRows);

  // A train and a test file.
  absl::StatusOr<LocalDatasetInfo> both =
      InspectLocalDataset(dir_ + "/codec_zstd.parquet", dir_ + "/codec_gzip.parquet", 0.1, 7);
  ASSERT_THAT(both, IsOk());
  EXPECT_FALSE(both->split_generated);
  EXPECT_EQ(both->splits[1].num_rows, 50);
  EXPECT_EQ(both->features[2].name, "score");
  EXPECT_EQ(both->features[2].null_count, 2 * 8);  // rows 0, 7, ..., 49 of each file
}

}  // namespace
}  // namespace tuneforge
