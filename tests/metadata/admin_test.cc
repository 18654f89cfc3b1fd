// End-to-end tests of tuneforge.v1.Admin: export one database, import the document into another (a second
// MetadataTestEnv), whole or streamed in pieces, and every way an import must refuse a document without writing
// anything.
#include <gmock/gmock.h>
#include <google/protobuf/wrappers.pb.h>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "nlohmann/json.hpp"
#include "common/allowed_roots.h"
#include "services/metadata/admin_service.h"
#include "services/metadata/request_limits.h"
#include "services/metadata/store.h"
#include "tests/metadata/support/job_fixtures.h"
#include "tests/metadata/support/metadata_test_env.h"
#include "tests/support/status_matchers.h"

namespace tuneforge::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using nlohmann::json;

const std::vector<std::string> kTables = {"models",          "model_revisions",    "datasets",      "dataset_revisions",
                                          "prompts",         "configs",            "adapters",      "fine_tuning_jobs",
                                          "evaluation_results", "model_exports",   "job_events",    "job_checkpoints"};
// Seeded by migrations/V002 into every database: 5 families x 4 config types.
constexpr int kDefaultConfigs = 20;
const char kSqlText[] = "x'); DROP TABLE models; --";
const std::string kDatasetDescription = std::string("questions \xc3\xa9t r\xc3\xa9ponses ") + kSqlText;

std::map<std::string, int64_t> CountRows(const std::string& url) {
  pqxx::connection conn(url);
  pqxx::work work(conn);
  std::map<std::string, int64_t> counts;
  for (const std::string& table : kTables) {
    counts[table] = work.exec1("SELECT count(*) FROM " + table)[0].as<int64_t>();
  }
  return counts;
}

int SchemaVersion(const std::string& url) {
  pqxx::connection conn(url);
  pqxx::work work(conn);
  return work.exec1("SELECT max(version) FROM tuneforge_schema_migrations")[0].as<int>();
}

absl::Status Export(const MetadataTestEnv& env, v1::ExportDatabaseResponse* response) {
  return FromGrpcStatus(env.admin()->ExportDatabase(Context().get(), v1::ExportDatabaseRequest(), response));
}

absl::Status Import(const MetadataTestEnv& env, const std::string& document,
                    v1::ImportDatabaseResponse* response = nullptr) {
  v1::ImportDatabaseRequest request;
  request.set_document(document);
  v1::ImportDatabaseResponse ignored;
  return FromGrpcStatus(env.admin()->ImportDatabase(Context().get(), request, response ? response : &ignored));
}

std::map<std::string, int64_t> ToMap(const google::protobuf::Map<std::string, int64_t>& m) {
  return std::map<std::string, int64_t>(m.begin(), m.end());
}

absl::StatusOr<v1::Model> GetModel(const MetadataTestEnv& env, const std::string& ref) {
  v1::GetModelRequest request;
  request.set_model(ref);
  v1::GetModelResponse response;
  absl::Status status = FromGrpcStatus(env.models()->GetModel(Context().get(), request, &response));
  if (!status.ok()) return status;
  return response.model();
}

// One record of every table, each added through its resource's public RPC.
void Populate(MetadataTestEnv& env) {
  env.AddReferenceModel("llama", "ref-llama");
  const std::string train = env.WriteFile("data/qa.jsonl",
                                          "{\"question\": \"2+2?\", \"answer\": \"4\"}\n"
                                          "{\"question\": \"capital of France?\", \"answer\": \"Paris\"}\n"
                                          "{\"question\": \"3*3?\", \"answer\": \"9\"}\n");
  v1::AddDatasetRequest dataset;
  dataset.set_name("qa");
  dataset.set_description(kDatasetDescription);
  dataset.mutable_local()->set_train_path(train);
  dataset.mutable_local()->set_test_size(0.34);
  v1::AddDatasetResponse dataset_response;
  ASSERT_THAT(FromGrpcStatus(env.datasets()->AddDataset(Context().get(), dataset, &dataset_response)), IsOk());

  v1::AddPromptRequest prompt;
  prompt.set_name("qa-prompt");
  prompt.set_dataset("qa");
  prompt.mutable_template_()->set_input_template("Q: {question}\nA:");
  prompt.mutable_template_()->set_completion_template(" {answer}");
  v1::AddPromptResponse prompt_response;
  ASSERT_THAT(FromGrpcStatus(env.prompts()->AddPrompt(Context().get(), prompt, &prompt_response)), IsOk());

  v1::AddConfigRequest config;
  config.set_name("my-lora");
  config.set_type(v1::CONFIG_TYPE_LORA);
  (*config.mutable_content()->mutable_fields())["r"].set_number_value(8);
  (*config.mutable_content()->mutable_fields())["lora_alpha"].set_number_value(16.5);
  v1::AddConfigResponse config_response;
  ASSERT_THAT(FromGrpcStatus(env.configs()->AddConfig(Context().get(), config, &config_response)), IsOk());

  const std::string adapter_dir = env.CopyDir(GeneratedReference() + "/llama/lora", "adapters/llama-lora");
  v1::AddAdapterRequest adapter;
  adapter.set_name("llama-lora");
  adapter.set_model("ref-llama");
  adapter.mutable_local()->set_path(adapter_dir);
  v1::AddAdapterResponse adapter_response;
  ASSERT_THAT(FromGrpcStatus(env.adapters()->AddAdapter(Context().get(), adapter, &adapter_response)), IsOk());

  std::filesystem::create_directories(env.root() + "/exports");
  v1::ExportModelRequest export_request;
  export_request.set_model("ref-llama");
  export_request.set_adapter("llama-lora");
  export_request.set_type(v1::EXPORT_TYPE_ADAPTER);
  export_request.set_destination_path(env.root() + "/exports/llama-lora");
  v1::ExportModelResponse export_response;
  ASSERT_THAT(FromGrpcStatus(env.models()->ExportModel(Context().get(), export_request, &export_response)), IsOk());
  // No trainer runs here: the export's job ends CANCELLED (queued, cancelled, both events kept).
  v1::CancelFineTuningJobRequest cancel;
  cancel.set_job(export_response.export_().job_id());
  v1::CancelFineTuningJobResponse cancelled;
  ASSERT_THAT(FromGrpcStatus(env.jobs()->CancelFineTuningJob(Context().get(), cancel, &cancelled)), IsOk());

  // An evaluation of the base and the adapter, leased and completed by a stand-in trainer: its job, three events
  // (queued, running, succeeded) and two results.
  v1::StartEvaluationJobRequest evaluation;
  evaluation.set_name("eval-1");
  evaluation.set_model("ref-llama");
  evaluation.add_adapters("llama-lora");
  evaluation.set_dataset("qa");
  evaluation.set_prompt("qa-prompt");
  v1::StartEvaluationJobResponse evaluation_response;
  ASSERT_THAT(FromGrpcStatus(env.evaluations()->StartEvaluationJob(Context().get(), evaluation, &evaluation_response)),
              IsOk());
  const internal::v1::LeaseJobResponse leased = LeaseJob(env, "stand-in", 0);
  ASSERT_TRUE(leased.has_lease());
  internal::v1::CompleteJobRequest complete;
  complete.set_job_id(leased.lease().job_id());
  complete.set_attempt(leased.lease().attempt());
  complete.set_worker_id("stand-in");
  complete.set_adapter_dir(leased.lease().output_dir());
  for (const std::string& adapter_id : {std::string(), adapter_response.adapter().id()}) {
    v1::CandidateResult* result = complete.add_evaluation_results();
    result->set_adapter_id(adapter_id);
    result->set_loss(adapter_id.empty() ? 2.5 : 1.25);
    result->set_perplexity(adapter_id.empty() ? 12.18 : 3.49);
    result->set_examples(1);
    result->set_tokens(9);
    result->set_label_tokens(2);
    v1::EvaluationSample* sample = result->add_samples();
    sample->set_prompt("Q: 2+2?\nA:");
    sample->set_reference(" 4");
    sample->set_output(adapter_id.empty() ? " 5" : " 4");
    sample->set_stop_reason("eos");
  }
  internal::v1::CompleteJobResponse completed;
  ASSERT_THAT(FromGrpcStatus(env.queue()->CompleteJob(WorkerContext().get(), complete, &completed)), IsOk());
}

class AdminTest : public ::testing::Test {
 protected:
  // Populates source_ and returns its export.
  std::string PopulatedDocument() {
    Populate(source_);
    v1::ExportDatabaseResponse response;
    EXPECT_THAT(Export(source_, &response), IsOk());
    return response.document();
  }

  MetadataTestEnv source_;
  // Another database on the same files (allowed root and artifacts directory), as a restore on a new server is.
  MetadataTestEnv target_{30, &source_};
};

TEST_F(AdminTest, ExportWritesEveryTableFromTheDatabase) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Populate(source_);
  v1::ExportDatabaseResponse response;
  ASSERT_THAT(Export(source_, &response), IsOk());

  const std::map<std::string, int64_t> expected = {
      {"models", 1},  {"model_revisions", 1},           {"datasets", 1}, {"dataset_revisions", 1},
      {"prompts", 1}, {"configs", kDefaultConfigs + 1}, {"adapters", 1}, {"model_exports", 1},
      {"fine_tuning_jobs", 2}, {"job_events", 5}, {"job_checkpoints", 0}, {"evaluation_results", 2}};
  EXPECT_EQ(ToMap(response.row_counts()), expected);
  EXPECT_EQ(CountRows(source_.database_url()), expected);

  const json doc = json::parse(response.document());
  EXPECT_EQ(doc["format"], "tuneforge-database");
  EXPECT_EQ(doc["schema_version"], SchemaVersion(source_.database_url()));
  absl::Time exported_at;
  std::string error;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, doc["exported_at"].get<std::string>(), &exported_at, &error))
      << doc["exported_at"] << ": " << error;
  EXPECT_LT(absl::AbsDuration(absl::Now() - exported_at), absl::Minutes(5));
  ASSERT_TRUE(doc["tables"].is_object());
  std::vector<std::string> names;
  for (const auto& [name, rows] : doc["tables"].items()) {
    names.push_back(name);
    EXPECT_EQ(static_cast<int64_t>(rows.size()), expected.at(name)) << name;
    EXPECT_EQ(doc["row_counts"][name], expected.at(name)) << name;
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAreArray(kTables));

  const json& model = doc["tables"]["models"][0];
  const absl::StatusOr<v1::Model> got = GetModel(source_, "ref-llama");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(model["id"], got->id());
  EXPECT_EQ(model["name"], "ref-llama");
  EXPECT_EQ(model["family"], "llama");
  EXPECT_EQ(doc["tables"]["model_revisions"][0]["model_id"], got->id());
  EXPECT_EQ(doc["tables"]["datasets"][0]["description"],
            kDatasetDescription);
  const json& tables = doc["tables"];
  EXPECT_EQ(tables["dataset_revisions"][0]["dataset_id"], tables["datasets"][0]["id"]);
  EXPECT_EQ(tables["prompts"][0]["dataset_revision_id"], tables["dataset_revisions"][0]["id"]);
  EXPECT_EQ(tables["adapters"][0]["model_revision_id"], tables["model_revisions"][0]["id"]);
  EXPECT_EQ(tables["model_exports"][0]["adapter_id"], tables["adapters"][0]["id"]);
  EXPECT_EQ(doc["tables"]["model_exports"][0]["type"], "adapter");
}

TEST_F(AdminTest, EveryTableOfTheSchemaIsExported) {
  // A table added by a later migration must be added to the document too, or exports silently lose it. API tokens
  // alone stay out: credentials belong to the server that issued them, and a restore gets its own bootstrap token.
  pqxx::connection conn(source_.database_url());
  pqxx::work work(conn);
  std::set<std::string> schema_tables;
  for (const auto& row : work.exec("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                                   "AND table_type = 'BASE TABLE' AND table_name NOT IN "
                                   "('tuneforge_schema_migrations', 'api_tokens')")) {
    schema_tables.insert(row[0].as<std::string>());
  }
  EXPECT_EQ(schema_tables, std::set<std::string>(DatabaseDocumentTables().begin(), DatabaseDocumentTables().end()));
  EXPECT_EQ(DatabaseDocumentTables(), kTables);  // dependency order
}

TEST_F(AdminTest, ImportIntoAnEmptyDatabaseReproducesTheExport) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string first = PopulatedDocument();
  v1::ImportDatabaseResponse imported;
  ASSERT_THAT(Import(target_, first, &imported), IsOk());
  const std::map<std::string, int64_t> expected_counts = {
      {"models", 1},   {"model_revisions", 1}, {"datasets", 1},      {"dataset_revisions", 1},
      {"prompts", 1},  {"configs", 1},         {"adapters", 1},      {"model_exports", 1},
      {"fine_tuning_jobs", 2}, {"job_events", 5}, {"job_checkpoints", 0}, {"evaluation_results", 2},
      {"configs_skipped_defaults", kDefaultConfigs}};
  EXPECT_EQ(ToMap(imported.row_counts()), expected_counts);
  EXPECT_EQ(CountRows(target_.database_url()), CountRows(source_.database_url()));

  v1::ExportDatabaseResponse second_response;
  ASSERT_THAT(Export(target_, &second_response), IsOk());
  const json a = json::parse(first);
  const json b = json::parse(second_response.document());
  EXPECT_EQ(a["schema_version"], b["schema_version"]);
  EXPECT_EQ(a["row_counts"], b["row_counts"]);
  for (const std::string& table : kTables) {
    if (table == "configs") continue;
    EXPECT_EQ(a["tables"][table], b["tables"][table]) << table;
  }
  // The defaults were seeded separately in each database (own ids and times); the rest is identical.
  auto split = [](const json& configs, json* user, std::map<std::string, json>* defaults) {
    for (json row : configs) {
      if (!row["is_default"].get<bool>()) {
        user->push_back(row);
        continue;
      }
      for (const char* volatile_column : {"id", "create_time", "update_time"}) row.erase(volatile_column);
      (*defaults)[row["name"].get<std::string>()] = row;
    }
  };
  json user_a = json::array(), user_b = json::array();
  std::map<std::string, json> defaults_a, defaults_b;
  split(a["tables"]["configs"], &user_a, &defaults_a);
  split(b["tables"]["configs"], &user_b, &defaults_b);
  EXPECT_EQ(user_a, user_b);
  EXPECT_EQ(user_a.size(), 1u);
  EXPECT_EQ(defaults_a, defaults_b);
  EXPECT_EQ(defaults_a.size(), static_cast<size_t>(kDefaultConfigs));

  // The records keep their ids and are served by the other resources.
  const absl::StatusOr<v1::Model> original = GetModel(source_, "ref-llama");
  const absl::StatusOr<v1::Model> copy = GetModel(target_, "ref-llama");
  ASSERT_THAT(copy, IsOk());
  EXPECT_EQ(copy->id(), original->id());
  EXPECT_EQ(copy->latest_revision().fingerprint(), original->latest_revision().fingerprint());
}

TEST_F(AdminTest, ImportingTwiceIsAlreadyExistsAndChangesNothing) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string document = PopulatedDocument();
  ASSERT_THAT(Import(target_, document), IsOk());
  const std::map<std::string, int64_t> before = CountRows(target_.database_url());

  EXPECT_THAT(Import(target_, document),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("document.tables.models"), HasSubstr("import into an empty database"),
                             HasSubstr("remove the conflicting records"))));
  EXPECT_EQ(CountRows(target_.database_url()), before);
}

TEST_F(AdminTest, ImportIntoTheExportingDatabaseIsAlreadyExists) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string document = PopulatedDocument();
  const std::map<std::string, int64_t> before = CountRows(source_.database_url());
  EXPECT_THAT(Import(source_, document),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("document.tables.models")));
  EXPECT_EQ(CountRows(source_.database_url()), before);
}

TEST_F(AdminTest, ARowConflictingOnAUniqueNameIsAlreadyExists) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string document = PopulatedDocument();
  v1::AddModelRequest same_name;  // same name, another id
  same_name.set_name("ref-llama");
  same_name.mutable_local()->set_path(target_.root() + "/models/ref-llama");
  v1::AddModelResponse added;
  ASSERT_THAT(FromGrpcStatus(target_.models()->AddModel(Context().get(), same_name, &added)), IsOk());
  const std::map<std::string, int64_t> before = CountRows(target_.database_url());
  EXPECT_THAT(Import(target_, document),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("document.tables.models"), HasSubstr("nothing was imported"))));
  EXPECT_EQ(CountRows(target_.database_url()), before);
}

TEST_F(AdminTest, EmptyDatabaseRoundTrips) {
  v1::ExportDatabaseResponse exported;
  ASSERT_THAT(Export(source_, &exported), IsOk());
  EXPECT_EQ(exported.row_counts().at("models"), 0);
  EXPECT_EQ(exported.row_counts().at("configs"), kDefaultConfigs);
  v1::ImportDatabaseResponse imported;
  ASSERT_THAT(Import(target_, exported.document(), &imported), IsOk());
  EXPECT_EQ(imported.row_counts().at("configs"), 0);
  EXPECT_EQ(imported.row_counts().at("configs_skipped_defaults"), kDefaultConfigs);
  EXPECT_EQ(CountRows(target_.database_url()).at("configs"), kDefaultConfigs);
}

TEST_F(AdminTest, MalformedJsonNamesTheByteOffset) {
  const std::string document = "{\"format\": oops}";
  EXPECT_THAT(Import(target_, document),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("document is not JSON"), HasSubstr("at byte 12"))));
  EXPECT_THAT(Import(target_, ""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("document is required")));
  EXPECT_THAT(Import(target_, "[1, 2]"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("document must be a JSON object")));
}

class AdminDocumentTest : public AdminTest {
 protected:
  void SetUp() override {
    TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
    document_ = json::parse(PopulatedDocument());
    before_ = CountRows(target_.database_url());
  }
  void TearDown() override {
    if (IsSkipped()) return;
    EXPECT_EQ(CountRows(target_.database_url()), before_) << "the import wrote rows";
  }

  json document_;
  std::map<std::string, int64_t> before_;
};

TEST_F(AdminDocumentTest, WrongFormat) {
  document_["format"] = "tuneforge-db";
  EXPECT_THAT(Import(target_, document_.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("document.format"), HasSubstr("'tuneforge-db'"),
                             HasSubstr("expected 'tuneforge-database'"))));
  document_.erase("format");
  EXPECT_THAT(Import(target_, document_.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("document.format is missing")));
}

TEST_F(AdminDocumentTest, WrongSchemaVersion) {
  const int server = SchemaVersion(target_.database_url());
  document_["schema_version"] = server + 1;
  EXPECT_THAT(Import(target_, document_.dump()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("document.schema_version is " + std::to_string(server + 1)),
                             HasSubstr("at schema version " + std::to_string(server)), HasSubstr("upgrade this server"))));
  document_["schema_version"] = server - 1;
  EXPECT_THAT(Import(target_, document_.dump()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("document.schema_version is " + std::to_string(server - 1)),
                             HasSubstr("export again"))));
  document_["schema_version"] = "2";
  EXPECT_THAT(Import(target_, document_.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("document.schema_version")));
}

TEST_F(AdminDocumentTest, UnknownTable) {
  document_["tables"]["jobs"] = json::array();
  EXPECT_THAT(Import(target_, document_.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("unknown table 'jobs'"), HasSubstr("models, model_revisions"))));
}

TEST_F(AdminDocumentTest, UnknownColumn) {
  document_["tables"]["adapters"][0]["secret"] = "x";
  EXPECT_THAT(Import(target_, document_.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("document.tables.adapters[0] has unknown column 'secret'")));
}

TEST_F(AdminDocumentTest, MissingColumnAndWrongTypes) {
  json missing = document_;
  missing["tables"]["models"][0].erase("family");
  EXPECT_THAT(Import(target_, missing.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("document.tables.models[0] lacks column 'family'")));

  json wrong = document_;
  wrong["tables"]["adapters"][0]["rank"] = "eight";
  EXPECT_THAT(Import(target_, wrong.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("document.tables.adapters[0].rank must be a whole number; got string 'eight'")));

  wrong = document_;
  wrong["tables"]["models"][0]["id"] = "1; DROP TABLE models";
  EXPECT_THAT(Import(target_, wrong.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("document.tables.models[0].id must be a UUID")));

  wrong = document_;
  wrong["tables"]["models"][0]["name"] = nullptr;
  EXPECT_THAT(Import(target_, wrong.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("document.tables.models[0].name is null")));

  wrong = document_;
  wrong["tables"]["datasets"] = json::object();
  EXPECT_THAT(Import(target_, wrong.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("document.tables.datasets must be an array")));

  wrong = document_;
  wrong["row_counts"]["models"] = 2;
  EXPECT_THAT(Import(target_, wrong.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("document.row_counts.models is number 2")));
}

TEST_F(AdminDocumentTest, ARowTheDatabaseRefusesIsInvalidArgument) {
  document_["tables"]["models"][0]["source_type"] = "ftp";  // CHECK constraint
  EXPECT_THAT(Import(target_, document_.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("document.tables.models"), HasSubstr("nothing was imported"))));
}

TEST_F(AdminDocumentTest, ASecondTableThatFailsLeavesTheDatabaseAsBefore) {
  // models inserts fine, then model_revisions refers to a model that exists nowhere.
  json tables = json::object();
  tables["models"] = document_["tables"]["models"];
  tables["model_revisions"] = document_["tables"]["model_revisions"];
  tables["model_revisions"][0]["model_id"] = "00000000-0000-4000-8000-000000000001";
  document_["tables"] = tables;
  document_.erase("row_counts");
  EXPECT_THAT(Import(target_, document_.dump()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("document.tables.model_revisions"), HasSubstr("nothing was imported"))));
  EXPECT_THAT(GetModel(target_, "ref-llama"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("ref-llama")));
}

// Index of the row of `table` whose `column` is `value`.
size_t RowWhere(const json& document, const std::string& table, const std::string& column, const std::string& value) {
  const json& rows = document["tables"][table];
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i][column] == value) return i;
  }
  ADD_FAILURE() << "no row of " << table << " has " << column << " = " << value;
  return 0;
}

TEST_F(AdminDocumentTest, JsonNestedDeeperThanTheLimitIsInvalidArgumentNotACrash) {
  const size_t config = RowWhere(document_, "configs", "name", "my-lora");
  document_["tables"]["configs"][config]["content"] = "DEEP";
  const std::string text = document_.dump();
  for (const size_t depth : {600, 20000, 100000}) {
    std::string deep = text;
    deep.replace(deep.find("\"DEEP\""), 6, std::string(depth, '[') + "1" + std::string(depth, ']'));
    EXPECT_THAT(Import(target_, deep),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("document nests arrays and objects deeper than 516 levels (the limit is 516)")))
        << depth;
  }
}

TEST_F(AdminDocumentTest, RecordsAreCheckedAsTheirAddRpcsCheckThem) {
  auto expect = [&](json document, absl::StatusCode code, const std::string& message) {
    EXPECT_THAT(Import(target_, document.dump()), StatusIs(code, HasSubstr(message)));
  };
  json d = document_;
  d["tables"]["models"][0]["name"] = "../../etc x";
  expect(d, absl::StatusCode::kInvalidArgument,
         "document.tables.models[0].name '../../etc x' must start with a letter or digit");
  d = document_;
  d["tables"]["models"][0]["family"] = "evilfam";
  expect(d, absl::StatusCode::kInvalidArgument,
         "document.tables.models[0].family is 'evilfam'; expected one of llama, mistral");
  d = document_;
  d["tables"]["models"][0]["source"] = "/etc";
  expect(d, absl::StatusCode::kPermissionDenied, "document.tables.models[0].source: '/etc' is outside the allowed roots");
  d = document_;
  d["tables"]["datasets"][0]["source"] = "../../../../etc/shadow";
  expect(d, absl::StatusCode::kInvalidArgument,
         "document.tables.datasets[0].source: '../../../../etc/shadow' must be an absolute path");
  d = document_;
  d["tables"]["model_exports"][0]["destination_path"] = "/etc/exports";
  expect(d, absl::StatusCode::kPermissionDenied, "document.tables.model_exports[0].destination_path: '/etc/exports'");
  d = document_;
  d["tables"]["model_revisions"][0]["files"] = json::array({1});
  expect(d, absl::StatusCode::kInvalidArgument, "document.tables.model_revisions[0].files[0] must be an object");
  d = document_;
  d["tables"]["model_revisions"][0]["config_json"] = "{\"model_type\": \"bert\"}";
  expect(d, absl::StatusCode::kInvalidArgument, "document.tables.model_revisions[0].config_json");
  d = document_;
  d["tables"]["prompts"][0]["input_template"] = "Q: {question";
  expect(d, absl::StatusCode::kInvalidArgument, "document.tables.prompts[0].input_template");
  d = document_;
  d["tables"]["prompts"][0]["mode"] = "alpaca";
  d["tables"]["prompts"][0]["instruction_column"] = "question";
  d["tables"]["prompts"][0]["output_column"] = "answer";
  expect(d, absl::StatusCode::kInvalidArgument,
         "document.tables.prompts[0].input_column is empty; an alpaca prompt names its columns");

  const size_t config = RowWhere(document_, "configs", "name", "my-lora");
  d = document_;
  d["tables"]["configs"][config]["content"] = json::array({1});
  expect(d, absl::StatusCode::kInvalidArgument, absl::StrCat("document.tables.configs[", config, "].content"));
  d = document_;
  d["tables"]["configs"][config]["content"]["r"] = 100000;
  expect(d, absl::StatusCode::kInvalidArgument, absl::StrCat("document.tables.configs[", config, "].content.r"));
  d = document_;
  d["tables"]["adapters"][0]["source_type"] = "trained";
  d["tables"]["adapters"][0]["source"] = "/srv/not-the-artifacts";
  expect(d, absl::StatusCode::kInvalidArgument,
         "document.tables.adapters[0].source: '/srv/not-the-artifacts' is outside this server's artifacts directory");

  // Nothing of the above was imported, and the config lists still answer.
  v1::ListConfigsRequest list;
  v1::ListConfigsResponse listed;
  EXPECT_TRUE(target_.configs()->ListConfigs(Context().get(), list, &listed).ok());
}

TEST_F(AdminTest, ImportedJobsKeepTheirOwnFoldersAndConsistentAttempts) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Populate(source_);
  v1::StartFineTuningJobRequest start;
  start.set_name("imported-job");
  start.set_model("ref-llama");
  start.set_dataset("qa");
  start.set_prompt("qa-prompt");
  v1::StartFineTuningJobResponse started;
  ASSERT_THAT(FromGrpcStatus(source_.jobs()->StartFineTuningJob(Context().get(), start, &started)), IsOk());
  v1::ExportDatabaseResponse exported;
  ASSERT_THAT(Export(source_, &exported), IsOk());
  const json document = json::parse(exported.document());
  // The fine-tuning job's row (the populated database also holds an export's job).
  size_t i = 0;
  while (i < document["tables"]["fine_tuning_jobs"].size() &&
         document["tables"]["fine_tuning_jobs"][i]["name"] != "imported-job") {
    ++i;
  }
  ASSERT_LT(i, document["tables"]["fine_tuning_jobs"].size());
  const std::string row = absl::StrCat("document.tables.fine_tuning_jobs[", i, "]");
  const std::map<std::string, int64_t> before = CountRows(target_.database_url());

  json d = document;
  d["tables"]["fine_tuning_jobs"][i]["output_dir"] = "/etc/cron.d";
  EXPECT_THAT(Import(target_, d.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(row + ".output_dir: '/etc/cron.d' is outside this "
                                 "server's artifacts directory (tuneforge-metadata --artifacts-dir)")));
  d = document;
  d["tables"]["fine_tuning_jobs"][i]["checkpoint_dir"] = "/srv/not-the-artifacts";
  EXPECT_THAT(Import(target_, d.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(row + ".checkpoint_dir: '/srv/not-the-artifacts' is outside")));
  d = document;
  d["tables"]["fine_tuning_jobs"][i]["checkpoint_dir"] = target_.root() + "/artifacts/jobs/other/checkpoints";
  EXPECT_THAT(Import(target_, d.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(row + ".checkpoint_dir must be the job's own folder")));
  d = document;
  d["tables"]["fine_tuning_jobs"][i]["state"] = "RUNNING";
  d["tables"]["fine_tuning_jobs"][i]["attempts"] = 99;
  d["tables"]["fine_tuning_jobs"][i]["max_attempts"] = 1;
  EXPECT_THAT(Import(target_, d.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(row + ".attempts is 99; a job makes 0 to max_attempts "
                                 "(1) attempts")));
  d = document;
  d["tables"]["fine_tuning_jobs"][i]["settings"]["training"]["learning_rate"] = "fast";
  EXPECT_THAT(Import(target_, d.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(row + ".settings.training.learning_rate")));
  EXPECT_EQ(CountRows(target_.database_url()), before) << "a refused import wrote rows";

  // The document as exported imports, and the job is leased with its own folders.
  ASSERT_THAT(Import(target_, exported.document()), IsOk());
  internal::v1::LeaseJobRequest lease;
  lease.set_worker_id("w1");
  internal::v1::LeaseJobResponse leased;
  auto context = Context();
  context->AddMetadata("authorization", std::string("Bearer ") + kTestWorkerToken);
  ASSERT_THAT(FromGrpcStatus(target_.queue()->LeaseJob(context.get(), lease, &leased)), IsOk());
  ASSERT_TRUE(leased.has_lease());
  EXPECT_EQ(leased.lease().output_dir(), target_.root() + "/artifacts/jobs/" + started.job().id() + "/adapter");
}

TEST_F(AdminTest, SqlInAStringIsStoredVerbatim) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  json document = json::parse(PopulatedDocument());
  document["tables"]["models"][0]["description"] = kSqlText;
  document["tables"]["model_exports"][0]["exported_model_name"] = "'; DELETE FROM adapters; --";
  ASSERT_THAT(Import(target_, document.dump()), IsOk());

  const absl::StatusOr<v1::Model> model = GetModel(target_, "ref-llama");
  ASSERT_THAT(model, IsOk());
  EXPECT_EQ(model->description(), kSqlText);
  EXPECT_EQ(CountRows(target_.database_url()), CountRows(source_.database_url()));
  v1::ExportDatabaseResponse exported;
  ASSERT_THAT(Export(target_, &exported), IsOk());
  const json again = json::parse(exported.document());
  EXPECT_EQ(again["tables"]["models"][0]["description"], kSqlText);
  EXPECT_EQ(again["tables"]["model_exports"][0]["exported_model_name"], "'; DELETE FROM adapters; --");
  EXPECT_EQ(again["tables"]["datasets"][0]["description"],
            kDatasetDescription);
}

TEST_F(AdminTest, DocumentsLargerThanGrpcsDefaultLimitArrive) {
  // gRPC refuses messages over 4 MiB unless the server raises its limit (kAdminMaxMessageBytes).
  const std::string document = "{\"format\": \"tuneforge-database\", \"schema_version\": " +
                               std::to_string(SchemaVersion(target_.database_url())) + ", \"tables\": {}}" +
                               std::string(size_t{5} << 20, ' ');
  v1::ImportDatabaseResponse imported;
  ASSERT_THAT(Import(target_, document, &imported), IsOk());
  EXPECT_EQ(imported.row_counts().at("models"), 0);
  EXPECT_EQ(imported.row_counts().at("configs_skipped_defaults"), 0);
}

TEST(AdminServiceTest, DocumentsOverTheLimitAreResourceExhausted) {
  EXPECT_EQ(kMaxDatabaseDocumentBytes, size_t{256} * 1024 * 1024);
  EXPECT_GT(static_cast<size_t>(kAdminMaxMessageBytes), kMaxDatabaseDocumentBytes);

  MetadataTestEnv env;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(env.database_url(), 1);
  ASSERT_THAT(store, IsOk());
  absl::StatusOr<AllowedRoots> roots = AllowedRoots::Create({env.root()});
  ASSERT_THAT(roots, IsOk());
  AdminService small(**store, *roots, env.root() + "/artifacts", 1000);
  EXPECT_THAT(small.ImportDatabase(std::string(1001, ' ')),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("document is 1001 bytes"), HasSubstr("at most 1000 bytes"),
                             HasSubstr("--max-document-bytes"))));
  // The 20 default configs alone make a document over 1000 bytes.
  EXPECT_THAT(small.ExportDatabase(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("over the 1000 bytes that ImportDatabase accepts"),
                             HasSubstr("--max-document-bytes"))));
}

// ExportDatabaseStream read to its end.
struct StreamedExport {
  std::vector<v1::DatabaseChunk> chunks;
  absl::Status status;

  std::string Document() const {
    std::string document;
    for (const v1::DatabaseChunk& chunk : chunks) document += chunk.data();
    return document;
  }
};

StreamedExport ExportStream(const MetadataTestEnv& env) {
  auto context = Context();
  std::unique_ptr<grpc::ClientReader<v1::ExportDatabaseStreamResponse>> reader =
      env.admin()->ExportDatabaseStream(context.get(), v1::ExportDatabaseStreamRequest());
  StreamedExport out;
  v1::ExportDatabaseStreamResponse piece;
  while (reader->Read(&piece)) {
    EXPECT_LT(piece.ByteSizeLong(), kDefaultMaxRequestBytes);
    out.chunks.push_back(piece.chunk());
  }
  out.status = FromGrpcStatus(reader->Finish());
  return out;
}

// Sends `chunks` through ImportDatabaseStream, stopping when the server has ended the call.
absl::Status ImportStream(const MetadataTestEnv& env, const std::vector<v1::DatabaseChunk>& chunks,
                          v1::ImportDatabaseStreamResponse* response = nullptr) {
  auto context = Context();
  v1::ImportDatabaseStreamResponse ignored;
  std::unique_ptr<grpc::ClientWriter<v1::ImportDatabaseStreamRequest>> writer =
      env.admin()->ImportDatabaseStream(context.get(), response ? response : &ignored);
  for (const v1::DatabaseChunk& chunk : chunks) {
    v1::ImportDatabaseStreamRequest request;
    *request.mutable_chunk() = chunk;
    if (!writer->Write(request)) break;
  }
  writer->WritesDone();
  return FromGrpcStatus(writer->Finish());
}

v1::DatabaseChunk Chunk(int64_t document_bytes, const std::string& data) {
  v1::DatabaseChunk chunk;
  chunk.set_document_bytes(document_bytes);
  chunk.set_data(data);
  return chunk;
}

// `document` in pieces of `piece_bytes`, the first declaring `declared_bytes` (the document's size when -1).
std::vector<v1::DatabaseChunk> Pieces(const std::string& document, size_t piece_bytes, int64_t declared_bytes = -1) {
  std::vector<v1::DatabaseChunk> chunks;
  for (size_t offset = 0; offset < document.size(); offset += piece_bytes) {
    const int64_t declared = declared_bytes >= 0 ? declared_bytes : static_cast<int64_t>(document.size());
    chunks.push_back(Chunk(offset == 0 ? declared : 0, document.substr(offset, piece_bytes)));
  }
  return chunks;
}

json UserConfigsById(const json& document) {
  std::map<std::string, json> by_id;
  for (const json& row : document["tables"]["configs"]) {
    if (!row["is_default"].get<bool>()) by_id[row["id"].get<std::string>()] = row;
  }
  json out = json::array();
  for (auto& [id, row] : by_id) out.push_back(std::move(row));
  return out;
}

TEST_F(AdminTest, StreamsCarryADocumentLargerThanAClientReceivesByDefault) {
  // 1200 configs with 4000-byte descriptions (the longest allowed) make a document of about 5.3 MB.
  std::string description = "\"quoted\"\nline \xc3\xa9t\xc3\xa9 " + std::string(kSqlText) + " ";
  description += std::string(4000 - description.size(), 'd');
  constexpr int kConfigs = 1200, kThreads = 4;
  std::vector<std::future<absl::Status>> adding;
  for (int t = 0; t < kThreads; ++t) {
    adding.push_back(std::async(std::launch::async, [&, t]() -> absl::Status {
      for (int i = t; i < kConfigs; i += kThreads) {
        v1::AddConfigRequest config;
        config.set_name("wide-" + std::to_string(i));
        config.set_type(v1::CONFIG_TYPE_LORA);
        config.set_description(description);
        (*config.mutable_content()->mutable_fields())["r"].set_number_value(8);
        // Content of its own: a config with the same content as another is that one.
        (*config.mutable_content()->mutable_fields())["lora_alpha"].set_number_value(i + 1);
        v1::AddConfigResponse added;
        absl::Status status = FromGrpcStatus(source_.configs()->AddConfig(Context().get(), config, &added));
        if (!status.ok()) return status;
      }
      return absl::OkStatus();
    }));
  }
  for (std::future<absl::Status>& done : adding) ASSERT_THAT(done.get(), IsOk());

  // The test's channel keeps gRPC's default receive limit of 4 MiB: the whole document in one message cannot arrive.
  v1::ExportDatabaseResponse whole;
  EXPECT_THAT(Export(source_, &whole), StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("larger than max")));

  const StreamedExport exported = ExportStream(source_);
  ASSERT_THAT(exported.status, IsOk());
  const std::string document = exported.Document();
  EXPECT_GT(document.size(), size_t{5} << 20);
  ASSERT_GE(exported.chunks.size(), 6u);
  EXPECT_EQ(exported.chunks[0].document_bytes(), static_cast<int64_t>(document.size()));
  EXPECT_EQ(exported.chunks[0].row_counts().at("configs"), kDefaultConfigs + kConfigs);
  EXPECT_EQ(exported.chunks[0].row_counts().at("models"), 0);
  for (size_t i = 0; i < exported.chunks.size(); ++i) {
    const v1::DatabaseChunk& chunk = exported.chunks[i];
    EXPECT_FALSE(chunk.data().empty()) << i;
    EXPECT_LE(chunk.data().size(), kDatabaseChunkBytes) << i;
    if (i == 0) continue;
    EXPECT_EQ(chunk.document_bytes(), 0) << i;
    EXPECT_TRUE(chunk.row_counts().empty()) << i;
  }
  const json doc = json::parse(document);
  EXPECT_EQ(doc["format"], "tuneforge-database");
  EXPECT_EQ(doc["tables"]["configs"].size(), static_cast<size_t>(kDefaultConfigs + kConfigs));

  // The chunks go to another server as they came, through the same default-limit channel.
  v1::ImportDatabaseStreamResponse imported;
  ASSERT_THAT(ImportStream(target_, exported.chunks, &imported), IsOk());
  EXPECT_EQ(imported.row_counts().at("configs"), kConfigs);
  EXPECT_EQ(imported.row_counts().at("configs_skipped_defaults"), kDefaultConfigs);
  EXPECT_EQ(imported.row_counts().at("models"), 0);
  EXPECT_EQ(CountRows(target_.database_url()), CountRows(source_.database_url()));

  const StreamedExport again = ExportStream(target_);
  ASSERT_THAT(again.status, IsOk());
  const json copy = json::parse(again.Document());
  const json configs = UserConfigsById(doc);
  ASSERT_EQ(configs.size(), static_cast<size_t>(kConfigs));
  EXPECT_EQ(configs[0]["description"], description);
  EXPECT_EQ(UserConfigsById(copy), configs);
  EXPECT_EQ(copy["row_counts"], doc["row_counts"]);
}

TEST(AdminStreamLimitTest, AStreamPastTheDocumentLimitIsResourceExhaustedAndImportsNothing) {
  MetadataTestEnv small(30, nullptr, 64 << 10);
  const std::map<std::string, int64_t> before = CountRows(small.database_url());
  // A document declared larger than the limit is refused at its first message.
  EXPECT_THAT(ImportStream(small, {Chunk(1 << 20, std::string(1000, ' '))}),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("document is 1048576 bytes"), HasSubstr("at most 65536 bytes"),
                             HasSubstr("--max-document-bytes"))));
  // Pieces that go past it are refused when they get there (the fifth piece of 16 KiB), not buffered on.
  EXPECT_THAT(ImportStream(small, Pieces(std::string(size_t{1} << 20, ' '), 16 << 10, 64 << 10)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("the stream is past 65536 bytes at message 5"),
                             HasSubstr("--max-document-bytes"))));
  EXPECT_EQ(CountRows(small.database_url()), before);
}

TEST_F(AdminTest, AStreamMessageOverThePerMethodLimitIsResourceExhausted) {
  const std::map<std::string, int64_t> before = CountRows(target_.database_url());
  const std::string big(kDefaultMaxRequestBytes + 1000, ' ');
  const std::string kRefused = "/tuneforge.v1.Admin/ImportDatabaseStream accepts messages of at most 4194304 bytes";
  // As the first message, and after a first message that was fine.
  EXPECT_THAT(ImportStream(target_, {Chunk(static_cast<int64_t>(big.size()), big)}),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("a message of the stream is 419"), HasSubstr(kRefused),
                             HasSubstr("--max-request-bytes"))));
  EXPECT_THAT(ImportStream(target_, {Chunk(static_cast<int64_t>(big.size()) + 5, "{\"a\":"), Chunk(0, big)}),
              StatusIs(absl::StatusCode::kResourceExhausted, AllOf(HasSubstr(kRefused), HasSubstr("--max-request-bytes"))));
  EXPECT_EQ(CountRows(target_.database_url()), before);
}

TEST_F(AdminTest, AMalformedDocumentSentInPiecesIsInvalidArgumentAndImportsNothing) {
  const StreamedExport exported = ExportStream(source_);  // the default configs only
  ASSERT_THAT(exported.status, IsOk());
  const std::string document = exported.Document();
  const int64_t size = static_cast<int64_t>(document.size());
  const std::map<std::string, int64_t> before = CountRows(target_.database_url());

  std::string broken = document;
  const size_t tables = broken.find("\"tables\":");
  ASSERT_NE(tables, std::string::npos);
  broken[tables + 8] = '=';
  EXPECT_THAT(ImportStream(target_, Pieces(broken, 100)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("document is not JSON"), HasSubstr("at byte " + std::to_string(tables + 9)))));
  json bad_row = json::parse(document);
  bad_row["tables"]["configs"][0]["type"] = "bogus";
  EXPECT_THAT(ImportStream(target_, Pieces(bad_row.dump(), 100)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("document.tables.configs[0].type")));

  // The stream's own rules.
  EXPECT_THAT(ImportStream(target_, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the stream carried no document")));
  EXPECT_THAT(ImportStream(target_, Pieces(document, 1000, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the first message of the stream must set chunk.document_bytes")));
  EXPECT_THAT(ImportStream(target_, Pieces(document.substr(0, document.size() - 10), 1000, size)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(absl::StrCat("the stream ended after ", size - 10, " of the ", size, " bytes"))));
  EXPECT_THAT(ImportStream(target_, Pieces(document, 1000, size - 10)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(absl::StrCat("past the ", size - 10, " bytes its first message declared")))));
  std::vector<v1::DatabaseChunk> chunks = Pieces(document, 1000);
  chunks[1].set_document_bytes(5);
  EXPECT_THAT(ImportStream(target_, chunks),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("message 2 of the stream sets chunk.document_bytes to 5")));
  chunks = Pieces(document, 1000);
  chunks.insert(chunks.begin() + 1, Chunk(0, ""));
  EXPECT_THAT(ImportStream(target_, chunks),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("message 2 of the stream has no chunk.data")));

  // A message gRPC cannot read as an ImportDatabaseStreamRequest ends the stream for the server: it is short.
  {
    auto context = Context();
    v1::ImportDatabaseStreamResponse response;
    const grpc::internal::RpcMethod method("/tuneforge.v1.Admin/ImportDatabaseStream",
                                           grpc::internal::RpcMethod::CLIENT_STREAMING);
    std::unique_ptr<grpc::ClientWriter<google::protobuf::BytesValue>> writer(
        grpc::internal::ClientWriterFactory<google::protobuf::BytesValue>::Create(source_.channel().get(), method,
                                                                                  context.get(), &response));
    // Field 1 (chunk) holding bytes that are no DatabaseChunk, after a first message that is fine.
    v1::ImportDatabaseStreamRequest first;
    *first.mutable_chunk() = Chunk(size, document.substr(0, 100));
    google::protobuf::BytesValue valid, garbage;
    valid.set_value(first.chunk().SerializeAsString());
    garbage.set_value(std::string("\xff\xff\xff\xff\x0f garbage", 13));
    writer->Write(valid);
    writer->Write(garbage);
    writer->WritesDone();
    EXPECT_THAT(FromGrpcStatus(writer->Finish()),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(absl::StrCat("the stream ended after 100 of the ", size, " bytes")),
                               HasSubstr("could not be read"))));
  }
  EXPECT_EQ(CountRows(target_.database_url()), before) << "a refused import wrote rows";

  // The document as exported, in pieces of any size, imports.
  v1::ImportDatabaseStreamResponse imported;
  ASSERT_THAT(ImportStream(target_, Pieces(document, 777), &imported), IsOk());
  EXPECT_EQ(imported.row_counts().at("configs_skipped_defaults"), kDefaultConfigs);
}

TEST(StreamedDocumentTest, HoldsNoMoreThanTheLimitAndNeedsTheDeclaredSize) {
  StreamedDocument whole(10);
  ASSERT_THAT(whole.Add(7, "abc"), IsOk());
  ASSERT_THAT(whole.Add(0, "de"), IsOk());
  ASSERT_THAT(whole.Add(7, "f"), IsOk());
  ASSERT_THAT(whole.Add(0, "g"), IsOk());
  absl::StatusOr<std::string> document = std::move(whole).Finish();
  ASSERT_THAT(document, IsOk());
  EXPECT_EQ(*document, "abcdefg");

  StreamedDocument over(10);
  EXPECT_THAT(over.Add(11, "a"), StatusIs(absl::StatusCode::kResourceExhausted,
                                          AllOf(HasSubstr("document is 11 bytes"), HasSubstr("at most 10 bytes"))));
  StreamedDocument past(10);
  ASSERT_THAT(past.Add(10, "0123456789"), IsOk());
  EXPECT_THAT(past.Add(0, "a"), StatusIs(absl::StatusCode::kResourceExhausted,
                                         AllOf(HasSubstr("the stream is past 10 bytes at message 2"),
                                               HasSubstr("--max-document-bytes"))));
  StreamedDocument none(10);
  EXPECT_THAT(std::move(none).Finish(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no document")));
  StreamedDocument negative(10);
  EXPECT_THAT(negative.Add(-1, "a"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got -1")));
}

}  // namespace
}  // namespace tuneforge::testing
