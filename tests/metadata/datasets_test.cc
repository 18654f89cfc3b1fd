// Datasets end to end: the real server over loopback gRPC, a real PostgreSQL, local files and the fake Hub.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "common/dataset_files.h"
#include "common/sha256.h"
#include "nlohmann/json.hpp"
#include "services/metadata/dataset_service.h"
#include "services/metadata/request_checks.h"
#include "services/metadata/server.h"
#include "tests/metadata/support/metadata_test_env.h"
#include "tests/support/testdata.h"

namespace tuneforge::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Row i of the standard test file: every JSON type the loaders distinguish, keys in this order in the file.
nlohmann::ordered_json Row(int i) {
  return {{"question", "q" + std::to_string(i)}, {"answer", "a" + std::to_string(i)}, {"n", i},
          {"ok", i % 2 == 0},                     {"tags", {"x", i}},                 {"meta", {{"k", i}}},
          {"maybe", nullptr}};
}

std::string Jsonl(int first, int count) {
  std::string out;
  for (int i = first; i < first + count; ++i) out += Row(i).dump() + "\n";
  return out;
}

int64_t TimestampMicros(const google::protobuf::Timestamp& t) { return t.seconds() * 1000000 + t.nanos() / 1000; }

class DatasetsTest : public ::testing::Test {
 protected:
  grpc::Status Add(const v1::AddDatasetRequest& request, v1::AddDatasetResponse* response) {
    return env_.datasets()->AddDataset(Context().get(), request, response);
  }
  v1::AddDatasetResponse MustAdd(const v1::AddDatasetRequest& request) {
    v1::AddDatasetResponse response;
    grpc::Status status = Add(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  v1::AddDatasetRequest Local(const std::string& name, const std::string& train, const std::string& test = "") {
    v1::AddDatasetRequest r;
    r.set_name(name);
    r.mutable_local()->set_train_path(train);
    r.mutable_local()->set_test_path(test);
    return r;
  }
  v1::AddDatasetRequest Hub(const std::string& name, const std::string& repo, const std::string& revision = "",
                            const std::string& token = "") {
    v1::AddDatasetRequest r;
    r.set_name(name);
    r.mutable_huggingface()->set_repo_id(repo);
    r.mutable_huggingface()->set_revision(revision);
    r.mutable_huggingface()->set_token(token);
    return r;
  }
  void ExpectError(const v1::AddDatasetRequest& request, grpc::StatusCode code, const std::string& fragment) {
    v1::AddDatasetResponse response;
    grpc::Status status = Add(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(fragment));
  }
  grpc::Status Preview(const std::string& dataset, const std::string& revision_id, const std::string& split,
                       v1::GetDatasetPreviewResponse* response) {
    v1::GetDatasetPreviewRequest request;
    request.set_dataset(dataset);
    request.set_revision_id(revision_id);
    request.set_split(split);
    return env_.datasets()->GetDatasetPreview(Context().get(), request, response);
  }
  int Count(const std::string& table) {
    pqxx::connection conn(env_.database_url());
    pqxx::work tx(conn);
    return tx.exec("SELECT count(*) FROM " + table)[0][0].as<int>();
  }
  // Adds a prompt over `dataset` directly through the Prompts service.
  std::string AddPrompt(const std::string& name, const std::string& dataset, const std::string& completion) {
    v1::AddPromptRequest request;
    request.set_name(name);
    request.set_dataset(dataset);
    request.mutable_template_()->set_input_template("Q: {question}\n");
    request.mutable_template_()->set_completion_template(completion);
    v1::AddPromptResponse response;
    grpc::Status status = env_.prompts()->AddPrompt(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.prompt().id();
  }

  MetadataTestEnv env_;
};

TEST_F(DatasetsTest, AddsALocalJsonlFileAndCutsTheTestSplitWithTheDefaultSeed) {
  const std::string content = Jsonl(0, 20);
  const std::string path = env_.WriteFile("data/qa.jsonl", content);
  v1::AddDatasetRequest request = Local("qa", path);
  request.set_description("questions");
  v1::AddDatasetResponse response = MustAdd(request);

  EXPECT_EQ(response.outcome(), v1::ADD_OUTCOME_CREATED);
  const v1::Dataset& d = response.dataset();
  EXPECT_EQ(d.id().size(), 36u);
  EXPECT_EQ(d.name(), "qa");
  EXPECT_EQ(d.description(), "questions");
  EXPECT_EQ(d.source_type(), v1::SOURCE_TYPE_LOCAL);
  EXPECT_EQ(d.source(), std::filesystem::canonical(path).string());
  EXPECT_EQ(d.revision_count(), 1);
  EXPECT_EQ(d.latest_revision().id(), response.revision().id());
  EXPECT_GT(d.create_time().seconds(), 1700000000);

  const v1::DatasetRevision& r = response.revision();
  EXPECT_EQ(r.dataset_id(), d.id());
  EXPECT_EQ(r.revision_number(), 1);
  EXPECT_EQ(r.format(), "jsonl");
  EXPECT_EQ(r.fingerprint().size(), 64u);
  EXPECT_TRUE(r.split_generated());
  EXPECT_EQ(r.split_seed(), 42u);
  EXPECT_DOUBLE_EQ(r.test_size(), 0.1);
  EXPECT_EQ(r.commit_sha(), "");
  std::vector<std::string> features;
  for (const auto& f : r.features()) features.push_back(f.name() + ":" + f.type());
  EXPECT_THAT(features, ElementsAre("question:string", "answer:string", "n:int", "ok:bool", "tags:list",
                                    "meta:object", "maybe:null"));
  ASSERT_EQ(r.splits_size(), 2);
  EXPECT_EQ(r.splits(0).name(), "train");
  EXPECT_EQ(r.splits(0).num_rows(), 18);
  EXPECT_EQ(r.splits(1).name(), "test");
  EXPECT_EQ(r.splits(1).num_rows(), 2);
  EXPECT_THAT(r.splits(1).files(), ElementsAre(d.source()));
  ASSERT_EQ(r.files_size(), 1);
  EXPECT_EQ(r.files(0).path(), d.source());
  EXPECT_EQ(r.files(0).size(), static_cast<int64_t>(content.size()));
  EXPECT_EQ(r.files(0).sha256(), Sha256Hex(content));

  // The same bytes elsewhere have the same fingerprint: it covers content and split settings, not the location.
  v1::AddDatasetResponse copy = MustAdd(Local("qa-copy", env_.WriteFile("copy/qa.jsonl", content)));
  EXPECT_EQ(copy.revision().fingerprint(), r.fingerprint());
}

// Parquet files written by pyarrow at test time (the parquet_files fixture), as local and as Hub datasets.
TEST_F(DatasetsTest, AddsParquetFilesWithTheirTypesNullsAndPreview) {
  const std::string dir = ParquetReference();
  if (!ParquetSupported() || dir.empty()) {
    GTEST_SKIP() << "no Parquet support or no Parquet files (the parquet_files fixture needs a Python with pyarrow)";
  }
  std::filesystem::create_directories(env_.root() + "/pq");
  for (const char* file : {"chat.parquet", "codec_zstd.parquet", "codec_gzip.parquet"}) {
    std::filesystem::copy_file(dir + "/" + file, env_.root() + "/pq/" + file);
  }
  v1::AddDatasetResponse chat = MustAdd(Local("chat", env_.root() + "/pq/chat.parquet"));
  const v1::DatasetRevision& r = chat.revision();
  EXPECT_EQ(r.format(), "parquet");
  std::vector<std::string> features;
  for (const auto& f : r.features()) {
    features.push_back(f.name() + ":" + f.type() + ":" + std::to_string(f.null_count()));
  }
  EXPECT_THAT(features, ElementsAre("messages:list:0", "conversations:list:0", "source:string:0"));
  ASSERT_EQ(r.splits_size(), 2);
  EXPECT_EQ(r.splits(0).num_rows() + r.splits(1).num_rows(), 40);
  EXPECT_EQ(r.files(0).sha256(), Sha256Hex(ReadFileBytes(env_.root() + "/pq/chat.parquet")));

  // The preview holds the nested messages as JSON.
  v1::GetDatasetPreviewRequest preview;
  preview.set_dataset("chat");
  v1::GetDatasetPreviewResponse shown;
  ASSERT_TRUE(env_.datasets()->GetDatasetPreview(Context().get(), preview, &shown).ok());
  ASSERT_GT(shown.splits_size(), 0);
  std::string text;
  google::protobuf::util::MessageToJsonString(shown, &text);
  EXPECT_THAT(text, HasSubstr("\"role\":\"user\""));

  // A train and a test file; null counts add up over both.
  v1::AddDatasetResponse scored = MustAdd(Local("scored", env_.root() + "/pq/codec_zstd.parquet",
                                                env_.root() + "/pq/codec_gzip.parquet"));
  ASSERT_EQ(scored.revision().features_size(), 3);
  EXPECT_EQ(scored.revision().features(2).name(), "score");
  EXPECT_EQ(scored.revision().features(2).type(), "float");
  EXPECT_EQ(scored.revision().features(2).null_count(), 16);
  EXPECT_FALSE(scored.revision().split_generated());

  // From the Hub: parquet shards under data/ are its data files, split by their names.
  env_.hub().AddCommit(RepoKind::kDataset, "org/parquet",
                       {{"data/train-00000-of-00002.parquet", ReadFileBytes(dir + "/codec_zstd.parquet")},
                        {"data/train-00001-of-00002.parquet", ReadFileBytes(dir + "/codec_gzip.parquet")},
                        {"data/test-00000-of-00001.parquet", ReadFileBytes(dir + "/codec_none.parquet")},
                        {"README.md", "# x\n"}});
  v1::AddDatasetResponse hub = MustAdd(Hub("hub-pq", "org/parquet"));
  EXPECT_EQ(hub.revision().format(), "parquet");
  ASSERT_EQ(hub.revision().splits_size(), 2);
  EXPECT_THAT(hub.revision().splits(0).files(),
              ElementsAre("data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"));
  EXPECT_THAT(hub.revision().splits(1).files(), ElementsAre("data/test-00000-of-00001.parquet"));
}

TEST(DatasetLimitsTest, ARevisionOverTheLimitsIsResourceExhaustedNamingTheSetting) {
  MetadataTestEnv env([](MetadataServerOptions& options) {
    options.dataset_limits.max_rows = 10;
    options.dataset_limits.max_bytes = 4000;
  });
  const auto add = [&](const v1::AddDatasetRequest& request) {
    v1::AddDatasetResponse response;
    return env.datasets()->AddDataset(Context().get(), request, &response);
  };
  v1::AddDatasetRequest request;
  request.set_name("rows");
  request.mutable_local()->set_train_path(env.WriteFile("eleven.jsonl", Jsonl(0, 11)));
  grpc::Status status = add(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), AllOf(HasSubstr("11 rows"), HasSubstr("limit of 10 rows"),
                                            HasSubstr("--max-dataset-rows"), HasSubstr("TUNEFORGE_MAX_DATASET_ROWS")));
  // Train and test files count together.
  request.mutable_local()->set_train_path(env.WriteFile("six.jsonl", Jsonl(0, 6)));
  request.mutable_local()->set_test_path(env.WriteFile("five.jsonl", Jsonl(6, 5)));
  EXPECT_EQ(add(request).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  request.mutable_local()->set_test_path(env.WriteFile("four.jsonl", Jsonl(6, 4)));
  EXPECT_TRUE(add(request).ok());

  // Bytes: refused before the file is read.
  v1::AddDatasetRequest big;
  big.set_name("bytes");
  big.mutable_local()->set_train_path(env.WriteFile("big.jsonl", std::string(5000, ' ') + Jsonl(0, 2)));
  status = add(big);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), AllOf(HasSubstr("limit of 4000 bytes"), HasSubstr("--max-dataset-bytes")));

  // A Hub dataset by the sizes its files have on the Hub.
  env.hub().AddCommit(RepoKind::kDataset, "org/big", {{"data/train.jsonl", std::string(3000, ' ') + Jsonl(0, 2)},
                                                      {"data/test.jsonl", std::string(3000, ' ') + Jsonl(0, 2)}});
  v1::AddDatasetRequest hub;
  hub.set_name("hub-big");
  hub.mutable_huggingface()->set_repo_id("org/big");
  status = add(hub);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), AllOf(HasSubstr("org/big"), HasSubstr("TUNEFORGE_MAX_DATASET_BYTES")));
}

TEST_F(DatasetsTest, PreviewReturnsTheStoredFirstRowsOfEachSplit) {
  const std::string path = env_.WriteFile("qa.jsonl", Jsonl(0, 20));
  v1::AddDatasetRequest request = Local("qa", path);
  request.mutable_local()->set_seed(7);
  request.mutable_local()->set_test_size(0.5);
  v1::AddDatasetResponse added = MustAdd(request);
  EXPECT_EQ(added.revision().split_seed(), 7u);
  EXPECT_EQ(added.revision().splits(1).num_rows(), 10);

  v1::GetDatasetPreviewResponse preview;
  grpc::Status status = Preview("qa", "", "", &preview);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(preview.revision_id(), added.revision().id());
  ASSERT_EQ(preview.splits_size(), 2);
  EXPECT_EQ(preview.splits(0).split(), "train");
  EXPECT_EQ(preview.splits(1).split(), "test");
  const SplitIndices expected = TrainTestSplit(20, 0.5, 7);
  for (int s = 0; s < 2; ++s) {
    const std::vector<size_t>& indices = s == 0 ? expected.train : expected.test;
    ASSERT_EQ(preview.splits(s).rows_size(), 5);
    EXPECT_FALSE(preview.splits(s).truncated());
    for (int k = 0; k < 5; ++k) {
      const auto& fields = preview.splits(s).rows(k).fields();
      const int i = static_cast<int>(indices[k]);
      EXPECT_EQ(fields.at("question").string_value(), "q" + std::to_string(i));
      EXPECT_EQ(fields.at("n").number_value(), i);
      EXPECT_EQ(fields.at("ok").bool_value(), i % 2 == 0);
      EXPECT_EQ(fields.at("maybe").kind_case(), google::protobuf::Value::kNullValue);
      ASSERT_EQ(fields.at("tags").list_value().values_size(), 2);
      EXPECT_EQ(fields.at("tags").list_value().values(0).string_value(), "x");
      EXPECT_EQ(fields.at("meta").struct_value().fields().at("k").number_value(), i);
    }
  }

  v1::GetDatasetPreviewResponse only_test;
  ASSERT_TRUE(Preview(added.dataset().id(), added.revision().id(), "test", &only_test).ok());
  ASSERT_EQ(only_test.splits_size(), 1);
  EXPECT_EQ(only_test.splits(0).split(), "test");
  EXPECT_EQ(only_test.splits(0).rows(0).fields().at("question").string_value(),
            "q" + std::to_string(expected.test[0]));

  v1::GetDatasetPreviewResponse bad;
  status = Preview("qa", "", "validation", &bad);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("split 'validation'"));
  EXPECT_THAT(status.error_message(), HasSubstr("\"train\" or \"test\""));
  status = Preview("qa", "not-a-uuid", "", &bad);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("revision_id"));
  status = Preview("nope", "", "", &bad);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("ListDatasets"));

  // A revision of another dataset is not a revision of this one.
  v1::AddDatasetResponse other = MustAdd(Local("other", env_.WriteFile("other.jsonl", Jsonl(100, 4))));
  status = Preview("qa", other.revision().id(), "", &bad);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("is not a revision of dataset 'qa'"));
}

// The JSON size of a preview's rows, as the server counts them against kMaxPreviewResponseBytes.
size_t RowsJsonBytes(const v1::GetDatasetPreviewResponse& preview) {
  size_t bytes = 0;
  for (const v1::SplitPreview& split : preview.splits()) {
    for (const google::protobuf::Struct& row : split.rows()) {
      std::string text;
      EXPECT_TRUE(google::protobuf::util::MessageToJsonString(row, &text).ok());
      bytes += text.size();
    }
  }
  return bytes;
}

TEST_F(DatasetsTest, PreviewOfWideRowsStaysUnderItsCapAndSaysItWasCut) {
  // 12 rows of 60 columns of 5000 bytes: each value is cut to 1000 bytes and "…", so a row takes about 61 KB (under
  // the 64 KiB a preview row may take) and 5 rows would be 300 KB, past the 256 KiB an answer holds.
  std::string rows;
  for (int i = 0; i < 12; ++i) {
    nlohmann::ordered_json row;
    for (int c = 0; c < 60; ++c) row["c" + std::to_string(c)] = std::string(5000, static_cast<char>('a' + c % 26));
    rows += row.dump() + "\n";
  }
  v1::AddDatasetRequest request = Local("wide", env_.WriteFile("wide.jsonl", rows));
  request.mutable_local()->set_test_size(0.25);
  MustAdd(request);

  v1::GetDatasetPreviewResponse preview;
  grpc::Status status = Preview("wide", "", "", &preview);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_LT(preview.ByteSizeLong(), kMaxPreviewResponseBytes + (16 << 10));
  EXPECT_LE(RowsJsonBytes(preview), kMaxPreviewResponseBytes);
  ASSERT_EQ(preview.splits_size(), 2);
  EXPECT_EQ(preview.splits(0).rows_size(), 4);  // the fifth would go past the cap
  EXPECT_TRUE(preview.splits(0).truncated());
  EXPECT_EQ(preview.splits(1).rows_size(), 0);  // the train rows filled the answer
  EXPECT_TRUE(preview.splits(1).truncated());
  const google::protobuf::Value& cell = preview.splits(0).rows(0).fields().at("c0");
  EXPECT_EQ(cell.string_value(), std::string(kPreviewCellBytes, 'a') + "\xE2\x80\xA6");

  // One split alone gets the whole cap.
  v1::GetDatasetPreviewResponse test_only;
  ASSERT_TRUE(Preview("wide", "", "test", &test_only).ok());
  ASSERT_EQ(test_only.splits_size(), 1);
  EXPECT_EQ(test_only.splits(0).rows_size(), 3);
  EXPECT_FALSE(test_only.splits(0).truncated());
}

TEST_F(DatasetsTest, AStoredPreviewWithHugeValuesIsCutWhenServed) {
  // As an older server stored it, or an imported document holds it: values of 5 MB and 3 MB, a row of 70000 columns,
  // 8 rows for a preview of 5.
  v1::AddDatasetResponse added = MustAdd(Local("stored", env_.WriteFile("stored.jsonl", Jsonl(0, 20)),
                                               env_.WriteFile("stored-test.jsonl", Jsonl(20, 2))));
  nlohmann::json train = nlohmann::json::array();
  train.push_back({{"text", std::string(size_t{5} << 20, 'x')}, {"n", 0}});
  nlohmann::json many = nlohmann::json::object();
  for (int c = 0; c < 70000; ++c) many["k" + std::to_string(c)] = 1;
  train.push_back(many);
  for (int i = 2; i < 8; ++i) train.push_back({{"text", "row " + std::to_string(i)}, {"n", i}});
  nlohmann::json test = nlohmann::json::array();
  for (int i = 0; i < 2; ++i) test.push_back({{"text", std::string(size_t{3} << 20, 'y')}});
  {
    pqxx::connection conn(env_.database_url());
    pqxx::work tx(conn);
    tx.exec_params("UPDATE dataset_revisions SET preview = $1::jsonb WHERE id = $2::uuid",
                   nlohmann::json{{"train", train}, {"test", test}}.dump(), added.revision().id());
    tx.commit();
  }

  v1::GetDatasetPreviewResponse preview;
  grpc::Status status = Preview("stored", "", "", &preview);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_LT(preview.ByteSizeLong(), size_t{64} << 10);
  ASSERT_EQ(preview.splits_size(), 2);
  const v1::SplitPreview& shown = preview.splits(0);
  EXPECT_TRUE(shown.truncated());
  ASSERT_EQ(shown.rows_size(), 4);  // rows 0, 2, 3, 4 of the first five: row 1 is too large even when cut
  EXPECT_EQ(shown.rows(0).fields().at("text").string_value(), std::string(kPreviewCellBytes, 'x') + "\xE2\x80\xA6");
  EXPECT_EQ(shown.rows(1).fields().at("n").number_value(), 2);
  EXPECT_EQ(shown.rows(3).fields().at("n").number_value(), 4);
  // Both rows of a test split of two: nothing left out, only values cut.
  EXPECT_EQ(preview.splits(1).rows_size(), 2);
  EXPECT_FALSE(preview.splits(1).truncated());
  EXPECT_EQ(preview.splits(1).rows(1).fields().at("text").string_value().size(), kPreviewCellBytes + 3);
}

TEST_F(DatasetsTest, TestFileGivesTheTestSplitAndPreviewKeepsFileOrder) {
  const std::string train = env_.WriteFile("d/train.csv", "text,label,score\nhello,1,0.5\n\"a, b\",0,1\nthird,1,2\n");
  const std::string test = env_.WriteFile("d/test.csv", "text,label,score\nbye,0,1.5\n");
  v1::AddDatasetResponse added = MustAdd(Local("csv", train, test));
  const v1::DatasetRevision& r = added.revision();
  EXPECT_EQ(r.format(), "csv");
  EXPECT_FALSE(r.split_generated());
  ASSERT_EQ(r.splits_size(), 2);
  EXPECT_EQ(r.splits(0).num_rows(), 3);
  EXPECT_EQ(r.splits(1).num_rows(), 1);
  EXPECT_THAT(r.splits(1).files(), ElementsAre(std::filesystem::canonical(test).string()));
  ASSERT_EQ(r.files_size(), 2);
  std::vector<std::string> features;
  for (const auto& f : r.features()) features.push_back(f.name() + ":" + f.type());
  EXPECT_THAT(features, ElementsAre("text:string", "label:int", "score:float"));

  v1::GetDatasetPreviewResponse preview;
  ASSERT_TRUE(Preview("csv", "", "train", &preview).ok());
  ASSERT_EQ(preview.splits_size(), 1);
  ASSERT_EQ(preview.splits(0).rows_size(), 3);
  EXPECT_EQ(preview.splits(0).rows(1).fields().at("text").string_value(), "a, b");
  EXPECT_EQ(preview.splits(0).rows(2).fields().at("score").number_value(), 2.0);
  ASSERT_TRUE(Preview("csv", "", "test", &preview).ok());
  EXPECT_EQ(preview.splits(0).rows(0).fields().at("text").string_value(), "bye");
}

TEST_F(DatasetsTest, SaveOrFetchReturnsExistingThenAddsRevisionsWhenContentOrSplitChanges) {
  const std::string path = env_.WriteFile("qa.jsonl", Jsonl(0, 10));
  v1::AddDatasetResponse first = MustAdd(Local("qa", path));
  v1::AddDatasetResponse again = MustAdd(Local("qa", path));
  EXPECT_EQ(again.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(again.dataset().id(), first.dataset().id());
  EXPECT_EQ(again.revision().id(), first.revision().id());
  EXPECT_EQ(again.dataset().revision_count(), 1);

  env_.WriteFile("qa.jsonl", Jsonl(0, 12));
  v1::AddDatasetResponse changed = MustAdd(Local("qa", path));
  EXPECT_EQ(changed.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_EQ(changed.dataset().id(), first.dataset().id());
  EXPECT_EQ(changed.revision().revision_number(), 2);
  EXPECT_NE(changed.revision().fingerprint(), first.revision().fingerprint());
  EXPECT_EQ(changed.dataset().revision_count(), 2);
  EXPECT_EQ(changed.dataset().latest_revision().id(), changed.revision().id());
  EXPECT_GT(TimestampMicros(changed.dataset().update_time()), TimestampMicros(first.dataset().update_time()));
  EXPECT_EQ(TimestampMicros(changed.dataset().create_time()), TimestampMicros(first.dataset().create_time()));

  // Other split settings over the same bytes are other content.
  v1::AddDatasetRequest reseeded = Local("qa", path);
  reseeded.mutable_local()->set_seed(1234);
  v1::AddDatasetResponse third = MustAdd(reseeded);
  EXPECT_EQ(third.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_EQ(third.revision().revision_number(), 3);
  EXPECT_EQ(third.revision().split_seed(), 1234u);

  // Back to the first content: the first revision, not a new one.
  env_.WriteFile("qa.jsonl", Jsonl(0, 10));
  v1::AddDatasetResponse back = MustAdd(Local("qa", path));
  EXPECT_EQ(back.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(back.revision().id(), first.revision().id());
  EXPECT_EQ(back.dataset().revision_count(), 3);

  // Older revisions keep their own preview.
  v1::GetDatasetPreviewResponse old_preview, new_preview;
  ASSERT_TRUE(Preview("qa", first.revision().id(), "", &old_preview).ok());
  ASSERT_TRUE(Preview("qa", "", "", &new_preview).ok());
  EXPECT_EQ(new_preview.revision_id(), third.revision().id());
  EXPECT_EQ(old_preview.revision_id(), first.revision().id());

  // Revisions newest first, one page at a time.
  std::vector<int> numbers;
  std::string token;
  int pages = 0;
  do {
    v1::ListDatasetRevisionsRequest list;
    list.set_dataset("qa");
    list.set_page_size(2);
    list.set_page_token(token);
    v1::ListDatasetRevisionsResponse page;
    grpc::Status status = env_.datasets()->ListDatasetRevisions(Context().get(), list, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const auto& r : page.revisions()) numbers.push_back(r.revision_number());
    token = page.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 2);
  EXPECT_THAT(numbers, ElementsAre(3, 2, 1));

  v1::ListDatasetRevisionsRequest bad;
  bad.set_dataset("qa");
  bad.set_page_token(MakePageToken("datasets", "qa"));
  v1::ListDatasetRevisionsResponse page;
  grpc::Status status = env_.datasets()->ListDatasetRevisions(Context().get(), bad, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("page_token"));
  bad.set_dataset("missing");
  bad.clear_page_token();
  status = env_.datasets()->ListDatasetRevisions(Context().get(), bad, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("dataset 'missing' not found"));
}

TEST_F(DatasetsTest, SameSourceUnderAnotherNameOrSameNameOtherSourceIsAlreadyExists) {
  const std::string path = env_.WriteFile("qa.jsonl", Jsonl(0, 10));
  v1::AddDatasetResponse first = MustAdd(Local("first", path));
  ExpectError(Local("second", path), grpc::StatusCode::ALREADY_EXISTS, "already registered as dataset 'first'");
  ExpectError(Local("first", env_.WriteFile("other.jsonl", Jsonl(0, 10))), grpc::StatusCode::ALREADY_EXISTS,
              "already exists with source local '" + first.dataset().source() + "'");
  env_.hub().AddCommit(RepoKind::kDataset, "org/qa", {{"train.jsonl", Jsonl(0, 3)}});
  ExpectError(Hub("first", "org/qa"), grpc::StatusCode::ALREADY_EXISTS, "already exists with source local");
  EXPECT_EQ(Count("datasets"), 1);
  EXPECT_EQ(Count("dataset_revisions"), 1);
}

TEST_F(DatasetsTest, HuggingFaceDatasetRecordsDataFilesPerSplitAndNewCommitsGiveRevisions) {
  const std::map<std::string, std::string> files = {{"data/train.jsonl", Jsonl(0, 8)},
                                                    {"data/test.jsonl", Jsonl(8, 2)},
                                                    {"data/validation.jsonl", Jsonl(10, 2)},
                                                    {"README.md", "# qa\n"},
                                                    {".gitattributes", "*.jsonl text\n"},
                                                    {"scripts/extra.jsonl", Jsonl(0, 1)}};
  const std::string sha1 = env_.hub().AddCommit(RepoKind::kDataset, "org/qa", files);
  v1::AddDatasetResponse added = MustAdd(Hub("hub-qa", "org/qa"));
  EXPECT_EQ(added.outcome(), v1::ADD_OUTCOME_CREATED);
  EXPECT_EQ(added.dataset().source_type(), v1::SOURCE_TYPE_HUGGINGFACE);
  EXPECT_EQ(added.dataset().source(), "org/qa");
  const v1::DatasetRevision& r = added.revision();
  EXPECT_EQ(r.commit_sha(), sha1);
  EXPECT_EQ(r.requested_revision(), "main");
  EXPECT_EQ(r.format(), "jsonl");
  EXPECT_EQ(r.fingerprint().size(), 64u);
  EXPECT_THAT(r.features(), IsEmpty()) << "without a card's dataset_info, features are unknown until a worker reads";
  EXPECT_EQ(added.dataset().config(), "default");
  EXPECT_THAT(r.available_configs(), ElementsAre("default"));
  EXPECT_EQ(r.data_revision(), "");
  EXPECT_EQ(r.data_commit_sha(), sha1);
  // The files of the two splits the revision reads (validation is a split too, but neither trained nor tested on);
  // scripts/extra.jsonl names no split while others do, so it belongs to none, as in the datasets library.
  std::vector<std::string> paths;
  for (const auto& f : r.files()) {
    paths.push_back(f.path());
    EXPECT_EQ(f.size(), static_cast<int64_t>(files.at(f.path()).size())) << f.path();
  }
  EXPECT_THAT(paths, ElementsAre("data/test.jsonl", "data/train.jsonl"));
  ASSERT_EQ(r.splits_size(), 2);
  EXPECT_EQ(r.splits(0).name(), "train");
  EXPECT_EQ(r.splits(0).source_split(), "train");
  EXPECT_THAT(r.splits(0).files(), ElementsAre("data/train.jsonl"));
  EXPECT_EQ(r.splits(0).num_rows(), 0);
  EXPECT_EQ(r.splits(1).name(), "test");
  EXPECT_EQ(r.splits(1).source_split(), "test");
  EXPECT_THAT(r.splits(1).files(), ElementsAre("data/test.jsonl"));
  for (const std::string& target : env_.hub().request_targets()) {
    EXPECT_THAT(target, Not(HasSubstr("/resolve/"))) << "a public repo's rows are not downloaded when it is added";
  }

  v1::AddDatasetResponse pinned = MustAdd(Hub("hub-qa", "org/qa", sha1));
  EXPECT_EQ(pinned.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(pinned.revision().id(), r.id());

  auto changed_files = files;
  changed_files["data/test.jsonl"] = Jsonl(8, 3);
  const std::string sha2 = env_.hub().AddCommit(RepoKind::kDataset, "org/qa", changed_files);
  v1::AddDatasetResponse updated = MustAdd(Hub("hub-qa", "org/qa"));
  EXPECT_EQ(updated.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_EQ(updated.revision().commit_sha(), sha2);
  EXPECT_EQ(updated.revision().revision_number(), 2);
  EXPECT_NE(updated.revision().fingerprint(), r.fingerprint());
  EXPECT_EQ(updated.dataset().revision_count(), 2);

  // The old commit is still the first revision.
  v1::AddDatasetResponse old = MustAdd(Hub("hub-qa", "org/qa", sha1));
  EXPECT_EQ(old.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(old.revision().revision_number(), 1);

  v1::GetDatasetPreviewResponse preview;
  grpc::Status status = Preview("hub-qa", "", "", &preview);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("Hugging Face Hub"));
  EXPECT_THAT(status.error_message(), HasSubstr("not available yet"));

  v1::ListDatasetsRequest hub_only;
  hub_only.set_source_type(v1::SOURCE_TYPE_HUGGINGFACE);
  v1::ListDatasetsResponse listed;
  ASSERT_TRUE(env_.datasets()->ListDatasets(Context().get(), hub_only, &listed).ok());
  ASSERT_EQ(listed.datasets_size(), 1);
  EXPECT_EQ(listed.datasets(0).latest_revision().commit_sha(), sha2);
}

// The dataset card's configs, as the datasets library reads them: each config is a dataset of its own, with splits
// and row counts from the card's dataset_info.
TEST_F(DatasetsTest, HuggingFaceConfigsFromTheCardAreSeparateDatasetsWithTheirSplits) {
  const std::string sha = env_.hub().AddCommit(
      RepoKind::kDataset, "org/gsm",
      {{"README.md", "---\nconfigs: ...\n---\n"},
       {"main/train-00000-of-00002.jsonl", Jsonl(0, 4)},
       {"main/train-00001-of-00002.jsonl", Jsonl(4, 4)},
       {"main/test-00000-of-00001.jsonl", Jsonl(8, 2)},
       {"socratic/train.jsonl", Jsonl(0, 3)},
       {"socratic/validation.jsonl", Jsonl(3, 2)},
       {"socratic/test.jsonl", Jsonl(5, 2)}});
  env_.hub().SetCardData(RepoKind::kDataset, "org/gsm", R"({
    "configs": [
      {"config_name": "main", "data_files": [{"split": "train", "path": "main/train-*"},
                                             {"split": "test", "path": "main/test-*"}]},
      {"config_name": "socratic", "data_dir": "socratic"}],
    "dataset_info": [
      {"config_name": "main",
       "features": [{"name": "question", "dtype": "string"}, {"name": "answer", "dtype": "string"},
                    {"name": "id", "dtype": "int64"}, {"name": "tags", "list": "string"}],
       "splits": [{"name": "train", "num_bytes": 900, "num_examples": 8},
                  {"name": "test", "num_bytes": 200, "num_examples": 2}]},
      {"config_name": "socratic", "features": [{"name": "question", "dtype": "string"}]}]})");

  // Two configs, neither the default: the user must choose, and is told the choices.
  ExpectError(Hub("gsm", "org/gsm"), grpc::StatusCode::INVALID_ARGUMENT, "none is the default (main, socratic)");
  v1::AddDatasetRequest bad = Hub("gsm", "org/gsm");
  bad.mutable_huggingface()->set_config("nope");
  ExpectError(bad, grpc::StatusCode::INVALID_ARGUMENT, "'nope' is not a config of 'org/gsm'");
  bad.mutable_huggingface()->set_config("bad/name");
  ExpectError(bad, grpc::StatusCode::INVALID_ARGUMENT, "huggingface.config");

  v1::AddDatasetRequest main = Hub("gsm-main", "org/gsm");
  main.mutable_huggingface()->set_config("main");
  v1::AddDatasetResponse added = MustAdd(main);
  EXPECT_EQ(added.dataset().config(), "main");
  const v1::DatasetRevision& r = added.revision();
  EXPECT_EQ(r.commit_sha(), sha);
  EXPECT_THAT(r.available_configs(), ElementsAre("main", "socratic"));
  ASSERT_EQ(r.splits_size(), 2);
  EXPECT_THAT(r.splits(0).files(), ElementsAre("main/train-00000-of-00002.jsonl", "main/train-00001-of-00002.jsonl"));
  EXPECT_EQ(r.splits(0).num_rows(), 8) << "from the card's dataset_info";
  EXPECT_THAT(r.splits(1).files(), ElementsAre("main/test-00000-of-00001.jsonl"));
  EXPECT_EQ(r.splits(1).num_rows(), 2);
  ASSERT_EQ(r.features_size(), 4);
  EXPECT_EQ(r.features(0).name(), "question");
  EXPECT_EQ(r.features(0).type(), "string");
  EXPECT_EQ(r.features(2).type(), "int");
  EXPECT_EQ(r.features(3).type(), "list");
  EXPECT_FALSE(r.features(0).has_null_count());

  // Another config of the same repo is another dataset; the same config under another name is not.
  v1::AddDatasetRequest socratic = Hub("gsm-socratic", "org/gsm");
  socratic.mutable_huggingface()->set_config("socratic");
  v1::AddDatasetResponse soc = MustAdd(socratic);
  EXPECT_EQ(soc.dataset().config(), "socratic");
  ASSERT_EQ(soc.revision().splits_size(), 2);
  EXPECT_THAT(soc.revision().splits(0).files(), ElementsAre("socratic/train.jsonl"));
  EXPECT_EQ(soc.revision().splits(1).source_split(), "test") << "test before validation";
  EXPECT_EQ(soc.revision().splits(0).num_rows(), 0) << "the card counts no rows of this config";
  main.set_name("gsm-main-again");
  ExpectError(main, grpc::StatusCode::ALREADY_EXISTS, "(config 'main') is already registered as dataset 'gsm-main'");
  socratic.set_name("gsm-main");
  ExpectError(socratic, grpc::StatusCode::ALREADY_EXISTS, "(config 'main')");

  // Splits chosen by name: validation to evaluate on, or none.
  v1::AddDatasetRequest val = Hub("gsm-socratic", "org/gsm");
  val.mutable_huggingface()->set_config("socratic");
  val.mutable_huggingface()->set_test_split("validation");
  v1::AddDatasetResponse with_val = MustAdd(val);
  EXPECT_EQ(with_val.outcome(), v1::ADD_OUTCOME_NEW_REVISION) << "another split is another revision";
  EXPECT_EQ(with_val.revision().splits(1).name(), "test");
  EXPECT_EQ(with_val.revision().splits(1).source_split(), "validation");
  EXPECT_THAT(with_val.revision().splits(1).files(), ElementsAre("socratic/validation.jsonl"));
  val.mutable_huggingface()->set_test_split("none");
  v1::AddDatasetResponse no_test = MustAdd(val);
  ASSERT_EQ(no_test.revision().splits_size(), 1);
  EXPECT_EQ(no_test.revision().splits(0).name(), "train");
  val.mutable_huggingface()->set_test_split("dev");
  ExpectError(val, grpc::StatusCode::INVALID_ARGUMENT, "'dev' is not a split of 'org/gsm'");
  ExpectError(val, grpc::StatusCode::INVALID_ARGUMENT, "has the splits train, validation, test");
  val.mutable_huggingface()->set_test_split("");
  val.mutable_huggingface()->set_train_split("validation");
  v1::AddDatasetResponse train_on_val = MustAdd(val);
  EXPECT_THAT(train_on_val.revision().splits(0).files(), ElementsAre("socratic/validation.jsonl"));
  EXPECT_EQ(train_on_val.revision().splits(1).source_split(), "test");
  val.mutable_huggingface()->set_test_split("validation");
  ExpectError(val, grpc::StatusCode::INVALID_ARGUMENT, "is the train split too");

  // A card whose configs name files that are not there.
  env_.hub().AddCommit(RepoKind::kDataset, "org/broken", {{"data/a.jsonl", Jsonl(0, 2)}});
  env_.hub().SetCardData(RepoKind::kDataset, "org/broken",
                         R"({"configs": [{"config_name": "x", "data_files": "data/missing.jsonl"}]})");
  ExpectError(Hub("broken", "org/broken"), grpc::StatusCode::INVALID_ARGUMENT, "data/missing.jsonl");
  env_.hub().SetCardData(RepoKind::kDataset, "org/broken",
                         R"({"configs": [{"config_name": "a", "default": true}, {"config_name": "default"}]})");
  ExpectError(Hub("broken", "org/broken"), grpc::StatusCode::INVALID_ARGUMENT, "both 'a' and 'default'");
}

// Repos whose files tuneforge cannot read (scripts, text files, compressed files) are read from the Hub's Parquet
// conversion branch, pinned to that branch's commit.
TEST_F(DatasetsTest, HuggingFaceUnreadableReposUseTheParquetConversionBranch) {
  const std::string parquet = "PAR1 rows PAR1";  // the service lists files; workers read them
  const std::string main_sha = env_.hub().AddCommit(
      RepoKind::kDataset, "org/texts",
      {{"data/train.txt", "a\nb\n"}, {"data/test.txt", "c\n"}, {"README.md", "# t\n"}});
  env_.hub().SetCardData(RepoKind::kDataset, "org/texts",
                         R"({"dataset_info": {"features": [{"name": "text", "dtype": "string"}],
                             "splits": [{"name": "train", "num_examples": 2}, {"name": "test", "num_examples": 1}]}})");
  const std::string converted_sha = env_.hub().AddCommit(
      RepoKind::kDataset, "org/texts",
      {{"default/train/0000.parquet", parquet}, {"default/train/0001.parquet", parquet + "1"},
       {"default/partial-test/0000.parquet", parquet + "2"}, {".gitattributes", "*.parquet lfs\n"}},
      "refs/convert/parquet");

  v1::AddDatasetResponse added = MustAdd(Hub("texts", "org/texts"));
  const v1::DatasetRevision& r = added.revision();
  EXPECT_EQ(r.commit_sha(), main_sha) << "the revision stays pinned to the repo's commit";
  EXPECT_EQ(r.data_revision(), "refs/convert/parquet");
  EXPECT_EQ(r.data_commit_sha(), converted_sha);
  EXPECT_NE(converted_sha, main_sha);
  EXPECT_EQ(r.format(), "parquet");
  EXPECT_EQ(added.dataset().config(), "default");
  ASSERT_EQ(r.splits_size(), 2);
  EXPECT_THAT(r.splits(0).files(), ElementsAre("default/train/0000.parquet", "default/train/0001.parquet"));
  EXPECT_EQ(r.splits(0).num_rows(), 2);
  EXPECT_THAT(r.splits(1).files(), ElementsAre("default/partial-test/0000.parquet"));
  EXPECT_EQ(r.splits(1).source_split(), "test");
  ASSERT_EQ(r.features_size(), 1);
  EXPECT_EQ(r.features(0).type(), "string");

  // The repo's own files only: refused, saying why and what to do.
  v1::AddDatasetRequest repo_only = Hub("texts-repo", "org/texts");
  repo_only.mutable_huggingface()->set_data_files(v1::HUB_DATA_FILES_REPO);
  ExpectError(repo_only, grpc::StatusCode::FAILED_PRECONDITION, "'text' builder");
  ExpectError(repo_only, grpc::StatusCode::FAILED_PRECONDITION, "HUB_DATA_FILES_PARQUET_CONVERSION");
  repo_only.mutable_huggingface()->set_data_files(static_cast<v1::HubDataFiles>(7));
  ExpectError(repo_only, grpc::StatusCode::INVALID_ARGUMENT, "huggingface.data_files 7");

  // The conversion is of main's newest commit: an older commit has none.
  env_.hub().AddCommit(RepoKind::kDataset, "org/texts", {{"data/train.txt", "a\nb\nc\n"}});
  ExpectError(Hub("texts", "org/texts", main_sha), grpc::StatusCode::FAILED_PRECONDITION,
              "of the main branch's newest commit");

  // A readable repo may still be read from its conversion when asked, and by naming the branch as the revision.
  const std::string jsonl_sha = env_.hub().AddCommit(RepoKind::kDataset, "org/qa", {{"train.jsonl", Jsonl(0, 3)}});
  const std::string qa_converted = env_.hub().AddCommit(
      RepoKind::kDataset, "org/qa", {{"default/qa-train.parquet", parquet}}, "refs/convert/parquet");
  v1::AddDatasetRequest conversion = Hub("qa-parquet", "org/qa");
  conversion.mutable_huggingface()->set_data_files(v1::HUB_DATA_FILES_PARQUET_CONVERSION);
  v1::AddDatasetResponse converted = MustAdd(conversion);
  EXPECT_EQ(converted.revision().commit_sha(), jsonl_sha);
  EXPECT_EQ(converted.revision().data_commit_sha(), qa_converted);
  EXPECT_THAT(converted.revision().splits(0).files(), ElementsAre("default/qa-train.parquet")) << "older layout";
  v1::AddDatasetResponse by_branch = MustAdd(Hub("qa-parquet", "org/qa", "refs/convert/parquet"));
  EXPECT_EQ(by_branch.revision().data_commit_sha(), qa_converted);
  // The repo's own files are another revision of the same dataset (the same repo and config).
  v1::AddDatasetResponse own = MustAdd(Hub("qa-parquet", "org/qa"));
  EXPECT_EQ(own.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_EQ(own.revision().data_revision(), "");
  EXPECT_EQ(own.revision().format(), "jsonl");

  // No conversion either: the answer says both.
  env_.hub().AddCommit(RepoKind::kDataset, "org/gz", {{"train.jsonl.gz", "\x1f\x8b"}});
  ExpectError(Hub("gz", "org/gz"), grpc::StatusCode::FAILED_PRECONDITION, "not a plain jsonl, json, csv or parquet");
  ExpectError(Hub("gz", "org/gz"), grpc::StatusCode::FAILED_PRECONDITION, "has no Parquet conversion");
}

TEST_F(DatasetsTest, HuggingFaceRootFilesWithoutSplitNamesAreTheTrainSplit) {
  env_.hub().AddCommit(RepoKind::kDataset, "org/flat",
                       {{"qa.csv", "q,a\n1,2\n"}, {"more.csv", "q,a\n3,4\n"}, {"dataset_infos.json", "{}"},
                        {"constraints.csv", "q,a\n5,6\n"}});
  v1::AddDatasetResponse added = MustAdd(Hub("flat", "org/flat"));
  EXPECT_EQ(added.revision().format(), "csv");
  ASSERT_EQ(added.revision().files_size(), 3) << "dataset_infos.json is metadata, not rows";
  ASSERT_EQ(added.revision().splits_size(), 1);
  EXPECT_EQ(added.revision().splits(0).name(), "train");
  EXPECT_THAT(added.revision().splits(0).files(), ElementsAre("constraints.csv", "more.csv", "qa.csv"));

  env_.hub().AddCommit(RepoKind::kDataset, "org/mixed",
                       {{"train-00000-of-00001.jsonl", Jsonl(0, 2)}, {"test.json", "[{\"q\": 1}]"}});
  v1::AddDatasetResponse mixed = MustAdd(Hub("mixed", "org/mixed"));
  EXPECT_EQ(mixed.revision().format(), "mixed");
  ASSERT_EQ(mixed.revision().splits_size(), 2);
  EXPECT_THAT(mixed.revision().splits(0).files(), ElementsAre("train-00000-of-00001.jsonl"));
  EXPECT_THAT(mixed.revision().splits(1).files(), ElementsAre("test.json"));
}

TEST_F(DatasetsTest, HuggingFaceErrorsMapToSpecificCodesAndTokensAreNeverStored) {
  const std::map<std::string, std::string> files = {{"data/train.jsonl", Jsonl(0, 4)}};
  env_.hub().AddCommit(RepoKind::kDataset, "org/gated", files);
  env_.hub().SetGated("org/gated", true);
  env_.hub().AddCommit(RepoKind::kDataset, "org/private", files);
  env_.hub().SetPrivate("org/private", true);
  env_.hub().AllowToken("hf_secret_token_for_tests_0123456789");
  env_.hub().AddCommit(RepoKind::kDataset, "org/empty", {{"README.md", "# x\n"}, {"build.py", "print(1)\n"}});

  ExpectError(Hub("d", "org/missing"), grpc::StatusCode::NOT_FOUND, "org/missing");
  ExpectError(Hub("d", "org/missing", "", "hf_secret_token_for_tests_0123456789"), grpc::StatusCode::NOT_FOUND,
              "dataset repository 'org/missing' not found");
  ExpectError(Hub("d", "org/gated"), grpc::StatusCode::PERMISSION_DENIED, "gated");
  ExpectError(Hub("d", "org/gated", "", "hf_wrong_token_aaaaaaaaaaaaaaaaaaaaaaa"), grpc::StatusCode::PERMISSION_DENIED,
              "gated");
  ExpectError(Hub("d", "org/private", "", "hf_wrong_token_aaaaaaaaaaaaaaaaaaaaaaa"),
              grpc::StatusCode::UNAUTHENTICATED, "token");
  ExpectError(Hub("d", "org/empty"), grpc::StatusCode::FAILED_PRECONDITION, "has no data files");
  ExpectError(Hub("d", "org/empty"), grpc::StatusCode::FAILED_PRECONDITION, "has no Parquet conversion");
  ExpectError(Hub("d", "org/empty", "no-such-branch"), grpc::StatusCode::NOT_FOUND, "no-such-branch");
  ExpectError(Hub("d", "a/b/c"), grpc::StatusCode::INVALID_ARGUMENT, "huggingface.repo_id");
  ExpectError(Hub("d", ""), grpc::StatusCode::INVALID_ARGUMENT, "huggingface.repo_id");
  ExpectError(Hub("d", "org/empty", "bad..rev"), grpc::StatusCode::INVALID_ARGUMENT, "huggingface.revision");
  ExpectError(Hub("d", "org/empty", "", std::string(2000, 't')), grpc::StatusCode::INVALID_ARGUMENT,
              "huggingface.token");
  EXPECT_EQ(Count("datasets"), 0) << "a failed add must leave nothing behind";

  v1::AddDatasetResponse gated = MustAdd(Hub("gated", "org/gated", "", "hf_secret_token_for_tests_0123456789"));
  EXPECT_EQ(gated.revision().files_size(), 1);
  v1::AddDatasetResponse priv = MustAdd(Hub("private", "org/private", "", "hf_secret_token_for_tests_0123456789"));
  EXPECT_EQ(priv.dataset().source(), "org/private");
  EXPECT_THAT(env_.hub().authorization_headers(), ::testing::Contains("Bearer hf_secret_token_for_tests_0123456789"));

  pqxx::connection conn(env_.database_url());
  pqxx::work tx(conn);
  for (const char* table : {"datasets", "dataset_revisions"}) {
    pqxx::result rows = tx.exec(std::string("SELECT count(*) FROM ") + table + " t WHERE t::text LIKE '%hf_secret%'");
    EXPECT_EQ(rows[0][0].as<int>(), 0) << table;
  }
}

TEST_F(DatasetsTest, LocalFileErrorsNameTheFieldAndSayWhatToDo) {
  const std::string good = env_.WriteFile("good.jsonl", Jsonl(0, 10));
  ExpectError(Local("d", ""), grpc::StatusCode::INVALID_ARGUMENT, "local.train_path is required");
  ExpectError(Local("d", "relative/file.jsonl"), grpc::StatusCode::INVALID_ARGUMENT, "absolute");
  ExpectError(Local("d", env_.root() + "/missing.jsonl"), grpc::StatusCode::NOT_FOUND, "does not exist");
  ExpectError(Local("d", good, env_.root() + "/missing.jsonl"), grpc::StatusCode::NOT_FOUND, "local.test_path");
  ExpectError(Local("d", good, good), grpc::StatusCode::INVALID_ARGUMENT, "same file as local.train_path");
  if (ParquetSupported()) {
    ExpectError(Local("d", env_.WriteFile("rows.parquet", "PAR1")), grpc::StatusCode::INVALID_ARGUMENT,
                "is not a readable Parquet file");
  } else {
    ExpectError(Local("d", env_.WriteFile("rows.parquet", "PAR1")), grpc::StatusCode::UNIMPLEMENTED,
                "built without Parquet support");
  }
  ExpectError(Local("d", env_.WriteFile("rows.txt", "hello\n")), grpc::StatusCode::INVALID_ARGUMENT,
              "local.train_path");
  ExpectError(Local("d", env_.WriteFile("broken.jsonl", Jsonl(0, 2) + "{not json\n")),
              grpc::StatusCode::INVALID_ARGUMENT, "local.train_path");
  ExpectError(Local("d", env_.WriteFile("broken2.jsonl", Jsonl(0, 2) + "{not json\n")),
              grpc::StatusCode::INVALID_ARGUMENT, ":3");
  ExpectError(Local("d", good, env_.WriteFile("broken-test.jsonl", "[1]\n")), grpc::StatusCode::INVALID_ARGUMENT,
              "local.test_path");
  ExpectError(Local("d", good, env_.WriteFile("other-cols.jsonl", "{\"x\": 1}\n")),
              grpc::StatusCode::INVALID_ARGUMENT, "local.test_path");
  ExpectError(Local("d", good, env_.WriteFile("test.csv", "a\n1\n")), grpc::StatusCode::INVALID_ARGUMENT,
              "local.test_path");
  ExpectError(Local("d", env_.WriteFile("one.jsonl", Jsonl(0, 1))), grpc::StatusCode::INVALID_ARGUMENT,
              "add rows or give local.test_path");
  ExpectError(Local("d", env_.WriteFile("empty.jsonl", "")), grpc::StatusCode::INVALID_ARGUMENT, "has no rows");

  v1::AddDatasetRequest big_split = Local("d", good);
  big_split.mutable_local()->set_test_size(0.7);
  ExpectError(big_split, grpc::StatusCode::INVALID_ARGUMENT, "local.test_size");
  v1::AddDatasetRequest zero_split = Local("d", good);
  zero_split.mutable_local()->set_test_size(0);  // explicitly zero, not the default
  ExpectError(zero_split, grpc::StatusCode::INVALID_ARGUMENT, "local.test_size");
  v1::AddDatasetRequest huge_seed = Local("d", good);
  huge_seed.mutable_local()->set_seed(uint64_t{1} << 63);
  ExpectError(huge_seed, grpc::StatusCode::INVALID_ARGUMENT, "local.seed 9223372036854775808");
  EXPECT_EQ(Count("datasets"), 0) << "a failed add must leave nothing behind";

  v1::AddDatasetRequest max_seed = Local("max-seed", good);
  max_seed.mutable_local()->set_seed(std::numeric_limits<int64_t>::max());
  EXPECT_EQ(MustAdd(max_seed).revision().split_seed(), static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
}

TEST_F(DatasetsTest, LocalPathsAreConfinedToTheAllowedRoots) {
  const std::string good = env_.WriteFile("good.jsonl", Jsonl(0, 10));
  const std::string outside = env_.outside() + "/rows.jsonl";
  std::ofstream(outside) << Jsonl(0, 10);
  ExpectError(Local("d", outside), grpc::StatusCode::PERMISSION_DENIED, "outside the allowed roots");
  ExpectError(Local("d", good, outside), grpc::StatusCode::PERMISSION_DENIED, "local.test_path");
  const std::string outside_name = std::filesystem::path(env_.outside()).filename().string();
  ExpectError(Local("d", env_.root() + "/../" + outside_name + "/rows.jsonl"), grpc::StatusCode::PERMISSION_DENIED,
              "outside the allowed roots");
  std::filesystem::create_symlink(outside, env_.root() + "/escape.jsonl");
  ExpectError(Local("d", env_.root() + "/escape.jsonl"), grpc::StatusCode::PERMISSION_DENIED,
              "outside the allowed roots");
  ExpectError(Local("d", "/etc/passwd"), grpc::StatusCode::PERMISSION_DENIED, "--allowed-roots");
  ExpectError(Local("d", std::string(5000, 'a')), grpc::StatusCode::INVALID_ARGUMENT, "local.train_path");
  EXPECT_EQ(Count("datasets"), 0);
}

TEST_F(DatasetsTest, BadNamesAndFieldsAreInvalidArgumentAndFreeTextIsStoredVerbatim) {
  const std::string good = env_.WriteFile("good.jsonl", Jsonl(0, 10));
  ExpectError(Local("", good), grpc::StatusCode::INVALID_ARGUMENT, "name is required");
  ExpectError(Local(std::string(129, 'a'), good), grpc::StatusCode::INVALID_ARGUMENT, "at most 128");
  ExpectError(Local("x'; DROP TABLE datasets;--", good), grpc::StatusCode::INVALID_ARGUMENT, "not allowed");
  ExpectError(Local("0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10", good), grpc::StatusCode::INVALID_ARGUMENT, "UUID");
  v1::AddDatasetRequest no_source;
  no_source.set_name("x");
  ExpectError(no_source, grpc::StatusCode::INVALID_ARGUMENT, "source is required");
  v1::AddDatasetRequest long_description = Local("x", good);
  long_description.set_description(std::string(5000, 'd'));
  ExpectError(long_description, grpc::StatusCode::INVALID_ARGUMENT, "description");

  v1::AddDatasetRequest tricky = Local("tricky", good);
  tricky.set_description("it's \"quoted\"; DROP TABLE datasets; -- \\ %_ ünïcödé");
  MustAdd(tricky);
  const std::string tricky_rows = "{\"q\": \"'); DROP TABLE datasets; --\", \"a\": \"\\u0000 nul\"}\n"
                                  "{\"q\": \"%_\\\\\", \"a\": \"b\"}\n";
  MustAdd(Local("tricky-rows", env_.WriteFile("tricky.jsonl", tricky_rows), env_.WriteFile("tricky-test.jsonl",
                                                                                           tricky_rows)));
  v1::GetDatasetRequest get;
  get.set_dataset("tricky");
  v1::GetDatasetResponse got;
  ASSERT_TRUE(env_.datasets()->GetDataset(Context().get(), get, &got).ok());
  EXPECT_EQ(got.dataset().description(), tricky.description());
  v1::GetDatasetPreviewResponse preview;
  ASSERT_TRUE(Preview("tricky-rows", "", "train", &preview).ok());
  ASSERT_EQ(preview.splits(0).rows_size(), 2);
  EXPECT_EQ(preview.splits(0).rows(0).fields().at("q").string_value(), "'); DROP TABLE datasets; --");
  EXPECT_EQ(preview.splits(0).rows(1).fields().at("q").string_value(), "%_\\");
  // PostgreSQL's jsonb cannot hold U+0000: the stored preview shows U+FFFD in its place.
  EXPECT_EQ(preview.splits(0).rows(0).fields().at("a").string_value(), "\xEF\xBF\xBD nul");
}

TEST_F(DatasetsTest, GetAcceptsIdOrNameAndSaysHowToFindDatasets) {
  v1::AddDatasetResponse added = MustAdd(Local("qa", env_.WriteFile("qa.jsonl", Jsonl(0, 10))));
  for (const std::string& ref : {added.dataset().id(), std::string("qa")}) {
    v1::GetDatasetRequest get;
    get.set_dataset(ref);
    v1::GetDatasetResponse got;
    ASSERT_TRUE(env_.datasets()->GetDataset(Context().get(), get, &got).ok());
    EXPECT_EQ(got.dataset().id(), added.dataset().id());
    EXPECT_EQ(got.dataset().revision_count(), 1);
    EXPECT_EQ(got.dataset().latest_revision().id(), added.revision().id());
    EXPECT_EQ(got.dataset().latest_revision().features_size(), 7);
  }
  struct Case {
    std::string ref;
    grpc::StatusCode code;
    std::string fragment;
  };
  for (const Case& c : {Case{"", grpc::StatusCode::INVALID_ARGUMENT, "dataset is required"},
                        Case{"00000000-0000-0000-0000-000000000000", grpc::StatusCode::NOT_FOUND, "ListDatasets"},
                        Case{"nope", grpc::StatusCode::NOT_FOUND, "dataset 'nope' not found"},
                        Case{"bad id!", grpc::StatusCode::INVALID_ARGUMENT, "takes an id or a name"}}) {
    v1::GetDatasetRequest get;
    get.set_dataset(c.ref);
    v1::GetDatasetResponse got;
    grpc::Status status = env_.datasets()->GetDataset(Context().get(), get, &got);
    EXPECT_EQ(status.error_code(), c.code) << c.ref;
    EXPECT_THAT(status.error_message(), HasSubstr(c.fragment)) << c.ref;
  }
}

TEST_F(DatasetsTest, ListPagesInNameOrderWithFilters) {
  for (int i = 0; i < 7; ++i) {
    MustAdd(Local("set-" + std::to_string(i), env_.WriteFile("d" + std::to_string(i) + ".jsonl", Jsonl(i, 5))));
  }
  env_.hub().AddCommit(RepoKind::kDataset, "org/qa", {{"train.jsonl", Jsonl(0, 3)}});
  MustAdd(Hub("hub-set", "org/qa"));

  std::vector<std::string> names;
  std::string token;
  int pages = 0;
  do {
    v1::ListDatasetsRequest request;
    request.set_page_size(3);
    request.set_page_token(token);
    request.set_source_type(v1::SOURCE_TYPE_LOCAL);
    v1::ListDatasetsResponse response;
    grpc::Status status = env_.datasets()->ListDatasets(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(response.datasets_size(), 3);
    for (const auto& d : response.datasets()) {
      names.push_back(d.name());
      EXPECT_EQ(d.revision_count(), 1);
      EXPECT_EQ(d.latest_revision().revision_number(), 1);
    }
    token = response.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(names, ElementsAre("set-0", "set-1", "set-2", "set-3", "set-4", "set-5", "set-6"));

  v1::ListDatasetsResponse all;
  ASSERT_TRUE(env_.datasets()->ListDatasets(Context().get(), v1::ListDatasetsRequest(), &all).ok());
  ASSERT_EQ(all.datasets_size(), 8);
  EXPECT_EQ(all.datasets(0).name(), "hub-set");
  EXPECT_TRUE(all.next_page_token().empty());

  v1::ListDatasetsRequest prefix;
  prefix.set_name_prefix("set-1");
  v1::ListDatasetsResponse one;
  ASSERT_TRUE(env_.datasets()->ListDatasets(Context().get(), prefix, &one).ok());
  ASSERT_EQ(one.datasets_size(), 1);
  EXPECT_EQ(one.datasets(0).name(), "set-1");
  prefix.set_name_prefix("%");
  ASSERT_TRUE(env_.datasets()->ListDatasets(Context().get(), prefix, &one).ok());
  EXPECT_EQ(one.datasets_size(), 0) << "LIKE wildcards in a prefix are literal";

  struct Bad {
    v1::ListDatasetsRequest request;
    std::string fragment;
  };
  std::vector<Bad> bad(5);
  bad[0].request.set_page_size(1001);
  bad[0].fragment = "page_size";
  bad[1].request.set_page_size(-1);
  bad[1].fragment = "page_size";
  bad[2].request.set_page_token("garbage!");
  bad[2].fragment = "page_token";
  bad[3].request.set_source_type(static_cast<v1::SourceType>(42));
  bad[3].fragment = "source_type 42";
  bad[4].request.set_source_type(v1::SOURCE_TYPE_TRAINED);
  bad[4].fragment = "does not apply to datasets";
  for (const Bad& b : bad) {
    v1::ListDatasetsResponse response;
    grpc::Status status = env_.datasets()->ListDatasets(Context().get(), b.request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << b.fragment;
    EXPECT_THAT(status.error_message(), HasSubstr(b.fragment));
  }
}

TEST_F(DatasetsTest, RemoveRefusesWhilePromptsUseTheDatasetUnlessForced) {
  const std::string path = env_.WriteFile("qa.jsonl", Jsonl(0, 10));
  v1::AddDatasetResponse first = MustAdd(Local("qa", path));
  const std::string prompt1 = AddPrompt("qa-prompt", "qa", "{answer}");
  env_.WriteFile("qa.jsonl", Jsonl(0, 11));
  MustAdd(Local("qa", path));
  const std::string prompt2 = AddPrompt("qa-prompt", "qa", "{answer}");  // the same text over revision 2
  ASSERT_NE(prompt1, prompt2);
  MustAdd(Local("unused", env_.WriteFile("unused.jsonl", Jsonl(0, 4))));

  v1::RemoveDatasetRequest remove;
  remove.set_dataset("qa");
  v1::RemoveDatasetResponse removed;
  grpc::Status status = env_.datasets()->RemoveDataset(Context().get(), remove, &removed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("prompt 'qa-prompt' (" + prompt1 + ")"));
  EXPECT_THAT(status.error_message(), HasSubstr("prompt 'qa-prompt' (" + prompt2 + ")"));
  EXPECT_THAT(status.error_message(), HasSubstr("force"));
  EXPECT_EQ(Count("dataset_revisions"), 3);

  remove.set_force(true);
  remove.set_dataset(first.dataset().id());
  status = env_.datasets()->RemoveDataset(Context().get(), remove, &removed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(removed.removed_dependents(),
              ElementsAre("prompt 'qa-prompt' (" + prompt1 + ")", "prompt 'qa-prompt' (" + prompt2 + ")"));
  EXPECT_EQ(Count("prompts"), 0);
  EXPECT_EQ(Count("dataset_revisions"), 1);
  EXPECT_EQ(Count("datasets"), 1);

  v1::GetDatasetRequest get;
  get.set_dataset("qa");
  v1::GetDatasetResponse got;
  EXPECT_EQ(env_.datasets()->GetDataset(Context().get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(env_.datasets()->RemoveDataset(Context().get(), remove, &removed).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Nothing depends on "unused": removed without force, nothing else listed.
  v1::RemoveDatasetRequest plain;
  plain.set_dataset("unused");
  v1::RemoveDatasetResponse plain_removed;
  ASSERT_TRUE(env_.datasets()->RemoveDataset(Context().get(), plain, &plain_removed).ok());
  EXPECT_EQ(plain_removed.removed_dependents_size(), 0);
  EXPECT_EQ(Count("datasets"), 0);

  // The name and the file can be registered again afterwards.
  EXPECT_EQ(MustAdd(Local("qa", path)).outcome(), v1::ADD_OUTCOME_CREATED);
}

}  // namespace
}  // namespace tuneforge::testing
