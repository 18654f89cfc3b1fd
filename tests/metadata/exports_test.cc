// Model exports end to end over gRPC against a real PostgreSQL: ExportModel's checks, and an export job's life with a
// fake trainer that leases it, writes the exported directory into the lease's output_dir and completes it; the
// server publishes it to the destination (overwrite, failures), registers merged models, and keeps the export's
// state through cancel and removal. The real trainer's merge is tested with the trainer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "services/metadata/server.h"
#include "tests/metadata/support/job_fixtures.h"
#include "tests/metadata/support/metadata_test_env.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge::testing {
namespace {

namespace fs = std::filesystem;
namespace iv1 = ::tuneforge::internal::v1;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

constexpr char kWorker[] = "fake-trainer";
constexpr int64_t kFiveGb = 5'000'000'000;
constexpr char kUnknownId[] = "0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10";

// Every regular file under `dir` by its relative path, with the sha256 of its content (short in failure messages).
std::map<std::string, std::string> DirContents(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) {
      out[fs::relative(entry.path(), dir).string()] = Sha256Hex(ReadFileBytes(entry.path().string()));
    }
  }
  return out;
}

// The names in a directory (not recursive).
std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) out.push_back(entry.path().filename().string());
  return out;
}

// Copies the files of `from` into `to`, creating it.
void CopyInto(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    fs::copy(entry.path(), fs::path(to) / entry.path().filename(), fs::copy_options::recursive);
  }
}

class ExportsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
    base_ = env_.AddReferenceModel("llama", "ref-llama");
    AddAdapter("llama-lora", "ref-llama", "llama", &adapter_);
    if (HasFatalFailure()) return;
    fs::create_directories(env_.root() + "/exports");
    exports_dir_ = fs::canonical(env_.root() + "/exports").string();
  }

  // Registers a copy of the reference case's PEFT adapter as `name` on `model`.
  void AddAdapter(const std::string& name, const std::string& model, const std::string& reference_case,
                  v1::Adapter* out) {
    v1::AddAdapterRequest request;
    request.set_name(name);
    request.set_model(model);
    request.mutable_local()->set_path(env_.CopyDir(GeneratedReference() + "/" + reference_case + "/lora",
                                                   "adapters/" + name));
    v1::AddAdapterResponse response;
    ASSERT_THAT(FromGrpcStatus(env_.adapters()->AddAdapter(Context().get(), request, &response)), IsOk());
    *out = response.adapter();
  }

  // The canonical path of exports/<dir>, as the server records destinations.
  std::string Destination(const std::string& dir) const { return exports_dir_ + "/" + dir; }

  // llama-lora merged into ref-llama, written to exports/<dir> and registered as `name`.
  v1::ExportModelRequest Merged(const std::string& dir, const std::string& name) const {
    v1::ExportModelRequest request;
    request.set_model("ref-llama");
    request.set_adapter("llama-lora");
    request.set_type(v1::EXPORT_TYPE_MERGED);
    request.set_destination_path(env_.root() + "/exports/" + dir);
    request.set_exported_model_name(name);
    return request;
  }

  // llama-lora copied to exports/<dir>.
  v1::ExportModelRequest AdapterCopy(const std::string& dir) const {
    v1::ExportModelRequest request;
    request.set_model("ref-llama");
    request.set_adapter("llama-lora");
    request.set_type(v1::EXPORT_TYPE_ADAPTER);
    request.set_destination_path(env_.root() + "/exports/" + dir);
    return request;
  }

  absl::Status Export(const v1::ExportModelRequest& request, v1::ModelExport* out = nullptr) {
    v1::ExportModelResponse response;
    absl::Status status = FromGrpcStatus(env_.models()->ExportModel(Context().get(), request, &response));
    if (out != nullptr) *out = response.export_();
    return status;
  }

  absl::StatusOr<v1::ModelExport> GetExport(const std::string& id) {
    v1::GetModelExportRequest request;
    request.set_id(id);
    v1::GetModelExportResponse response;
    absl::Status status = FromGrpcStatus(env_.models()->GetModelExport(Context().get(), request, &response));
    if (!status.ok()) return status;
    return response.export_();
  }

  absl::Status ListExports(const v1::ListModelExportsRequest& request, v1::ListModelExportsResponse* response) {
    return FromGrpcStatus(env_.models()->ListModelExports(Context().get(), request, response));
  }

  // The ids of every export (all pages) filtered by model and adapter, newest first.
  std::vector<std::string> ExportIds(const std::string& model = "", const std::string& adapter = "") {
    v1::ListModelExportsRequest request;
    request.set_model(model);
    request.set_adapter(adapter);
    std::vector<std::string> ids;
    for (int page = 0; page < 100; ++page) {
      v1::ListModelExportsResponse response;
      EXPECT_THAT(ListExports(request, &response), IsOk());
      for (const v1::ModelExport& e : response.exports()) ids.push_back(e.id());
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return ids;
  }

  absl::StatusOr<v1::FineTuningJob> GetJob(const std::string& ref) {
    v1::GetFineTuningJobRequest request;
    request.set_job(ref);
    v1::GetFineTuningJobResponse response;
    absl::Status status = FromGrpcStatus(env_.jobs()->GetFineTuningJob(Context().get(), request, &response));
    if (!status.ok()) return status;
    return response.job();
  }

  // The names of the jobs of the given kinds (every kind when empty).
  std::vector<std::string> JobNames(const std::vector<v1::JobKind>& kinds = {}) {
    v1::ListFineTuningJobsRequest request;
    for (v1::JobKind kind : kinds) request.add_kinds(kind);
    v1::ListFineTuningJobsResponse response;
    EXPECT_THAT(FromGrpcStatus(env_.jobs()->ListFineTuningJobs(Context().get(), request, &response)), IsOk());
    std::vector<std::string> names;
    for (const v1::FineTuningJob& job : response.jobs()) names.push_back(job.name());
    return names;
  }

  absl::Status CancelJob(const std::string& ref) {
    v1::CancelFineTuningJobRequest request;
    request.set_job(ref);
    v1::CancelFineTuningJobResponse response;
    return FromGrpcStatus(env_.jobs()->CancelFineTuningJob(Context().get(), request, &response));
  }

  absl::Status RemoveJob(const std::string& ref) {
    v1::RemoveFineTuningJobRequest request;
    request.set_job(ref);
    v1::RemoveFineTuningJobResponse response;
    return FromGrpcStatus(env_.jobs()->RemoveFineTuningJob(Context().get(), request, &response));
  }

  absl::StatusOr<v1::Model> GetModel(const std::string& ref) {
    v1::GetModelRequest request;
    request.set_model(ref);
    v1::GetModelResponse response;
    absl::Status status = FromGrpcStatus(env_.models()->GetModel(Context().get(), request, &response));
    if (!status.ok()) return status;
    return response.model();
  }

  std::vector<std::string> ModelNames() {
    v1::ListModelsResponse response;
    EXPECT_THAT(FromGrpcStatus(env_.models()->ListModels(Context().get(), v1::ListModelsRequest(), &response)), IsOk());
    std::vector<std::string> names;
    for (const v1::Model& m : response.models()) names.push_back(m.name());
    return names;
  }

  // Every event of job `job` from its first, streamed by WatchFineTuningJob until the job is final.
  std::vector<v1::WatchFineTuningJobResponse> Watch(const std::string& job, absl::Status* status) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::WatchFineTuningJobRequest request;
    request.set_job(job);
    auto reader = env_.jobs()->WatchFineTuningJob(&context, request);
    std::vector<v1::WatchFineTuningJobResponse> seen;
    v1::WatchFineTuningJobResponse response;
    while (reader->Read(&response)) seen.push_back(response);
    *status = FromGrpcStatus(reader->Finish());
    return seen;
  }

  // The fake trainer's steps: lease the next queued job, write into its output_dir what the merge or the adapter copy
  // writes, and report it done.
  iv1::JobLease Lease() {
    const iv1::LeaseJobResponse response = LeaseJob(env_, kWorker, 0);
    EXPECT_TRUE(response.has_lease()) << "no job was queued";
    return response.lease();
  }
  // A merged model directory: the base model's files (the weights a merge writes have the same names and shapes),
  // plus `extra` files by name.
  void WriteMergedModel(const iv1::JobLease& lease, const std::map<std::string, std::string>& extra = {}) {
    CopyInto(base_.source(), lease.output_dir());
    for (const auto& [name, content] : extra) WriteFileBytes(lease.output_dir() + "/" + name, content);
  }
  void WriteAdapterCopy(const iv1::JobLease& lease) { CopyInto(adapter_.source(), lease.output_dir()); }
  absl::Status Complete(const iv1::JobLease& lease, iv1::CompleteJobResponse* out = nullptr) {
    iv1::CompleteJobRequest request;
    request.set_job_id(lease.job_id());
    request.set_attempt(lease.attempt());
    request.set_worker_id(kWorker);
    request.set_adapter_dir(lease.output_dir());
    iv1::CompleteJobResponse response;
    absl::Status status = FromGrpcStatus(env_.queue()->CompleteJob(WorkerContext().get(), request, &response));
    if (out != nullptr) *out = response;
    return status;
  }

  // ExportModel and the whole fake trainer run of a merged export; the export as GetModelExport shows it after.
  v1::ModelExport RunMergedExport(const v1::ExportModelRequest& request,
                                  const std::map<std::string, std::string>& extra = {}) {
    v1::ModelExport queued;
    EXPECT_THAT(Export(request, &queued), IsOk());
    const iv1::JobLease lease = Lease();
    EXPECT_EQ(lease.job_id(), queued.job_id());
    WriteMergedModel(lease, extra);
    EXPECT_THAT(Complete(lease), IsOk());
    absl::StatusOr<v1::ModelExport> done = GetExport(queued.id());
    EXPECT_THAT(done, IsOk());
    return done.ok() ? *done : v1::ModelExport();
  }

  MetadataTestEnv env_;
  v1::Model base_;
  v1::Adapter adapter_;
  std::string exports_dir_;
};

TEST_F(ExportsTest, ExportModelRefusesBadRequestsNamingTheFieldAndRecordsNothing) {
  env_.WriteFile("exports/taken/config.json", "{}");
  env_.WriteFile("exports/a-file", "x");
  // Each case changes one field of a valid merged or adapter export.
  struct Case {
    std::string what;
    v1::ExportModelRequest request;
    absl::StatusCode code;
    std::vector<std::string> fragments;
  };
  std::vector<Case> cases;
  auto merged = [&](const std::function<void(v1::ExportModelRequest&)>& change) {
    v1::ExportModelRequest r = Merged("new", "merged");
    change(r);
    return r;
  };
  auto copy = [&](const std::function<void(v1::ExportModelRequest&)>& change) {
    v1::ExportModelRequest r = AdapterCopy("new");
    change(r);
    return r;
  };
  using Request = v1::ExportModelRequest;
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  cases.push_back({"no model", merged([](Request& r) { r.set_model(""); }), kInvalid, {"model is required"}});
  cases.push_back({"unknown model", merged([](Request& r) { r.set_model("nope"); }), absl::StatusCode::kNotFound,
                   {"model 'nope' not found", "ListModels"}});
  cases.push_back({"no adapter", merged([](Request& r) { r.set_adapter(""); }), kInvalid, {"adapter is required"}});
  cases.push_back({"unknown adapter", merged([](Request& r) { r.set_adapter("nope"); }), absl::StatusCode::kNotFound,
                   {"adapter 'nope' not found", "ListAdapters"}});
  cases.push_back({"adapter that is no name", merged([](Request& r) { r.set_adapter("bad name!"); }), kInvalid,
                   {"adapter 'bad name!' contains a character that is not allowed", "takes an id or a name"}});
  cases.push_back({"revision_id that is no id", merged([](Request& r) { r.set_revision_id("first"); }), kInvalid,
                   {"revision_id 'first' is not an id"}});
  cases.push_back({"unknown revision_id", merged([](Request& r) { r.set_revision_id(kUnknownId); }),
                   absl::StatusCode::kNotFound,
                   {absl::StrCat("revision_id ", kUnknownId, " is not a revision of model 'ref-llama'"),
                    "ListModelRevisions"}});
  cases.push_back({"bad job_name", merged([](Request& r) { r.set_job_name("-x"); }), kInvalid,
                   {"job_name '-x' must start with a letter or digit"}});
  cases.push_back({"no type", merged([](Request& r) { r.set_type(v1::EXPORT_TYPE_UNSPECIFIED); }), kInvalid,
                   {"type is required", "EXPORT_TYPE_MERGED", "EXPORT_TYPE_ADAPTER"}});
  cases.push_back({"unknown type", merged([](Request& r) { r.set_type(static_cast<v1::ExportType>(7)); }), kInvalid,
                   {"type 7 is not an export type", "EXPORT_TYPE_MERGED"}});
  cases.push_back({"merged without a name", merged([](Request& r) { r.set_exported_model_name(""); }), kInvalid,
                   {"exported_model_name is required"}});
  cases.push_back({"merged with a bad name", merged([](Request& r) { r.set_exported_model_name("a b"); }), kInvalid,
                   {"exported_model_name 'a b' contains a character that is not allowed"}});
  cases.push_back({"merged into a taken name", merged([](Request& r) { r.set_exported_model_name("ref-llama"); }),
                   absl::StatusCode::kAlreadyExists,
                   {"exported_model_name 'ref-llama' is already the name of model " + base_.id(),
                    "choose a name for the merged model that is not taken"}});
  cases.push_back({"unknown dtype", merged([](Request& r) { r.set_dtype("int8"); }), kInvalid,
                   {"dtype: 'int8' is not fp32, bf16 or fp16", "leave it empty"}});
  cases.push_back({"dtype in capitals", merged([](Request& r) { r.set_dtype("FP16"); }), kInvalid, {"dtype: 'FP16'"}});
  cases.push_back({"negative max_shard_size", merged([](Request& r) { r.set_max_shard_size(-1); }), kInvalid,
                   {"max_shard_size is -1", "0 for the default 5 GB"}});
  for (const auto& [what, change] : std::vector<std::pair<std::string, std::function<void(Request&)>>>{
           {"adapter export with a name", [](Request& r) { r.set_exported_model_name("copy"); }},
           {"adapter export with a dtype", [](Request& r) { r.set_dtype("bf16"); }},
           {"adapter export with a shard size", [](Request& r) { r.set_max_shard_size(1000); }}}) {
    cases.push_back({what, copy(change), kInvalid,
                     {"exported_model_name, dtype and max_shard_size apply to merged exports only",
                      "leave them empty for an adapter export"}});
  }
  cases.push_back({"no destination", merged([](Request& r) { r.set_destination_path(""); }), kInvalid,
                   {"destination_path is required"}});
  cases.push_back({"relative destination", merged([](Request& r) { r.set_destination_path("exports/new"); }), kInvalid,
                   {"destination_path: 'exports/new' must be an absolute path"}});
  cases.push_back({"destination outside the roots",
                   merged([&](Request& r) { r.set_destination_path(env_.outside() + "/new"); }),
                   absl::StatusCode::kPermissionDenied,
                   {"destination_path: '" + env_.outside() + "/new' is outside the allowed roots", "--allowed-roots"}});
  cases.push_back({"destination escaping the root",
                   merged([&](Request& r) { r.set_destination_path(env_.root() + "/exports/../../escape"); }),
                   absl::StatusCode::kPermissionDenied, {"destination_path", "is outside the allowed roots"}});
  cases.push_back({"destination without a parent",
                   merged([&](Request& r) { r.set_destination_path(env_.root() + "/missing/new"); }),
                   absl::StatusCode::kNotFound,
                   {"destination_path: the parent directory '" + env_.root() + "/missing'",
                    "does not exist; create it first"}});
  cases.push_back({"destination under a file",
                   merged([&](Request& r) { r.set_destination_path(env_.root() + "/exports/a-file/new"); }), kInvalid,
                   {"destination_path: the parent", "is not a directory"}});
  cases.push_back({"destination ending in ..",
                   merged([&](Request& r) { r.set_destination_path(env_.root() + "/exports/.."); }), kInvalid,
                   {"destination_path", "must end in the name of a new file or directory"}});
  cases.push_back({"existing destination",
                   merged([&](Request& r) { r.set_destination_path(env_.root() + "/exports/taken"); }),
                   absl::StatusCode::kAlreadyExists,
                   {"destination_path: '" + env_.root() + "/exports/taken' already exists",
                    "set overwrite to replace a directory an earlier export wrote"}});
  cases.push_back({"existing destination of an adapter export",
                   copy([&](Request& r) { r.set_destination_path(env_.root() + "/exports/taken"); }),
                   absl::StatusCode::kAlreadyExists, {"already exists", "set overwrite"}});
  cases.push_back({"overwriting a file", merged([&](Request& r) {
                     r.set_destination_path(env_.root() + "/exports/a-file");
                     r.set_overwrite(true);
                   }),
                   kInvalid,
                   {"destination_path", "exists and is not a directory", "overwrite replaces directories only"}});

  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    absl::Status status = Export(c.request);
    EXPECT_EQ(status.code(), c.code) << status;
    for (const std::string& fragment : c.fragments) EXPECT_THAT(std::string(status.message()), HasSubstr(fragment));
  }
  // Nothing was recorded or queued, and nothing was written.
  EXPECT_THAT(ExportIds(), IsEmpty());
  EXPECT_THAT(JobNames(), IsEmpty());
  EXPECT_FALSE(LeaseJob(env_, kWorker, 0).has_lease());
  EXPECT_THAT(Entries(exports_dir_), UnorderedElementsAre("taken", "a-file"));
  EXPECT_THAT(Entries(exports_dir_ + "/taken"), ElementsAre("config.json"));
  EXPECT_THAT(ModelNames(), ElementsAre("ref-llama"));
}

TEST_F(ExportsTest, ExportModelChecksTheRevisionNamesAndUnfinishedExportsAgainstTheRecords) {
  // The adapter belongs to revision 1; a changed directory makes revision 2 the latest.
  const std::string first_revision = base_.latest_revision().id();
  WriteFileBytes(base_.source() + "/NOTES.md", "a second revision\n");
  ASSERT_TRUE(AddLocalModel(env_, "ref-llama", base_.source()));
  absl::StatusOr<v1::Model> base = GetModel("ref-llama");
  ASSERT_THAT(base, IsOk());
  ASSERT_EQ(base->revision_count(), 2);
  const std::string second_revision = base->latest_revision().id();

  EXPECT_THAT(Export(Merged("new", "merged")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("adapter 'llama-lora' was made for model revision " + first_revision),
                             HasSubstr("not " + second_revision),
                             HasSubstr("export it with its own base model revision"))));
  EXPECT_THAT(ExportIds(), IsEmpty());

  // With the adapter's own revision it is queued, for that revision.
  v1::ExportModelRequest on_first = Merged("new", "merged");
  on_first.set_revision_id(first_revision);
  on_first.set_job_name("export-one");
  v1::ModelExport queued;
  ASSERT_THAT(Export(on_first, &queued), IsOk());
  EXPECT_EQ(queued.model_revision_id(), first_revision);
  EXPECT_EQ(queued.model_id(), base_.id());

  // A second export into a destination whose export has not finished, with or without overwrite.
  v1::ExportModelRequest same_destination = AdapterCopy("new");
  same_destination.set_revision_id(first_revision);
  for (bool overwrite : {false, true}) {
    same_destination.set_overwrite(overwrite);
    EXPECT_THAT(Export(same_destination),
                StatusIs(absl::StatusCode::kAlreadyExists,
                         AllOf(HasSubstr("destination_path '" + Destination("new") + "' is the destination of export " +
                                         queued.id()),
                               HasSubstr("wait for it or cancel its job"))))
        << "overwrite " << overwrite;
  }
  // A job name that is taken.
  v1::ExportModelRequest named = AdapterCopy("named");
  named.set_revision_id(first_revision);
  named.set_job_name("export-one");
  EXPECT_THAT(Export(named), StatusIs(absl::StatusCode::kAlreadyExists,
                                      AllOf(HasSubstr("job_name: a job named '"), HasSubstr("choose another name"))));
  EXPECT_THAT(ExportIds(), ElementsAre(queued.id()));
  EXPECT_EQ(JobNames().size(), 1u);

  // Once that export's job is cancelled the destination is free again.
  ASSERT_THAT(CancelJob(queued.job_id()), IsOk());
  same_destination.set_overwrite(false);
  v1::ModelExport second;
  EXPECT_THAT(Export(same_destination, &second), IsOk());
  EXPECT_THAT(ExportIds(), ElementsAre(second.id(), queued.id()));
}

TEST_F(ExportsTest, ANameOfAModelAtTheDestinationIsTakenUnlessOverwriteIsSet) {
  // A local model registered at exports/gone, whose directory was then deleted.
  env_.CopyDir(base_.source(), "exports/gone");
  ASSERT_TRUE(AddLocalModel(env_, "gone-model", env_.root() + "/exports/gone"));
  absl::StatusOr<v1::Model> gone = GetModel("gone-model");
  ASSERT_THAT(gone, IsOk());
  fs::remove_all(env_.root() + "/exports/gone");

  EXPECT_THAT(Export(Merged("gone", "gone-model")),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("exported_model_name 'gone-model' is already the name of model " + gone->id()),
                             HasSubstr("set overwrite to replace its directory and give it a new revision"))));
  EXPECT_THAT(ExportIds(), IsEmpty());
  v1::ExportModelRequest overwrite = Merged("gone", "gone-model");
  overwrite.set_overwrite(true);
  const v1::ModelExport done = RunMergedExport(overwrite);
  EXPECT_EQ(done.state(), v1::EXPORT_STATE_SUCCEEDED) << done.error_message();
  EXPECT_EQ(done.exported_model_id(), gone->id());
}

TEST_F(ExportsTest, AMergedExportRunsAsAJobAndRegistersTheMergedModel) {
  // A fine-tuning job beside it, for the kinds filter.
  std::string rows;
  for (int i = 0; i < 10; ++i) rows += absl::StrCat("{\"question\": \"", i, "+1?\", \"answer\": \"", i + 1, "\"}\n");
  ASSERT_TRUE(AddLocalDataset(env_, "qa", env_.WriteFile("qa.jsonl", rows)));
  ASSERT_TRUE(AddQaPrompt(env_, "qa", "qa"));
  ASSERT_TRUE(StartJob(env_, ShortQaJob("fine-tune", "ref-llama", "qa", 1)));
  ASSERT_THAT(CancelJob("fine-tune"), IsOk());

  v1::ExportModelRequest request = Merged("merged", "llama-merged");
  request.set_dtype("bf16");
  request.set_job_name("merge-it");
  v1::ModelExport queued;
  ASSERT_THAT(Export(request, &queued), IsOk());
  EXPECT_EQ(queued.state(), v1::EXPORT_STATE_QUEUED);
  EXPECT_EQ(queued.type(), v1::EXPORT_TYPE_MERGED);
  EXPECT_EQ(queued.model_id(), base_.id());
  EXPECT_EQ(queued.model_revision_id(), base_.latest_revision().id());
  EXPECT_EQ(queued.adapter_id(), adapter_.id());
  EXPECT_EQ(queued.destination_path(), Destination("merged"));
  EXPECT_EQ(queued.exported_model_name(), "llama-merged");
  EXPECT_EQ(queued.dtype(), "bf16");
  EXPECT_EQ(queued.max_shard_size(), kFiveGb);  // 0 asks for transformers' default
  EXPECT_FALSE(queued.overwrite());
  EXPECT_THAT(queued.exported_model_id(), IsEmpty());
  ASSERT_THAT(queued.job_id(), Not(IsEmpty()));
  EXPECT_FALSE(fs::exists(Destination("merged")));

  absl::StatusOr<v1::FineTuningJob> job = GetJob(queued.job_id());
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->name(), "merge-it");
  EXPECT_EQ(job->kind(), v1::JOB_KIND_EXPORT);
  EXPECT_EQ(job->export_id(), queued.id());
  EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(job->model_id(), base_.id());
  EXPECT_THAT(job->dataset_id(), IsEmpty());
  EXPECT_THAT(job->prompt_id(), IsEmpty());
  EXPECT_THAT(job->description(), HasSubstr("merged export of adapter 'llama-lora' to " + Destination("merged")));
  absl::StatusOr<v1::FineTuningJob> fine_tune = GetJob("fine-tune");
  ASSERT_THAT(fine_tune, IsOk());
  EXPECT_EQ(fine_tune->kind(), v1::JOB_KIND_FINE_TUNE);
  EXPECT_THAT(fine_tune->export_id(), IsEmpty());
  EXPECT_THAT(JobNames({v1::JOB_KIND_EXPORT}), ElementsAre("merge-it"));
  EXPECT_THAT(JobNames({v1::JOB_KIND_FINE_TUNE}), ElementsAre("fine-tune"));
  EXPECT_THAT(JobNames({v1::JOB_KIND_FINE_TUNE, v1::JOB_KIND_EXPORT}), ElementsAre("merge-it", "fine-tune"));
  EXPECT_THAT(JobNames(), ElementsAre("merge-it", "fine-tune"));
  v1::ListFineTuningJobsRequest bad_kind;
  bad_kind.add_kinds(static_cast<v1::JobKind>(9));
  v1::ListFineTuningJobsResponse ignored;
  EXPECT_THAT(FromGrpcStatus(env_.jobs()->ListFineTuningJobs(Context().get(), bad_kind, &ignored)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kinds: 9 is not a job kind")));

  const iv1::JobLease lease = Lease();
  EXPECT_EQ(lease.job_id(), queued.job_id());
  EXPECT_EQ(lease.job_name(), "merge-it");
  EXPECT_EQ(lease.attempt(), 1);
  EXPECT_EQ(lease.kind(), "export");
  EXPECT_EQ(lease.model().type(), "local");
  EXPECT_EQ(lease.model().source(), base_.source());
  EXPECT_EQ(lease.base_model_name(), "ref-llama");
  EXPECT_FALSE(lease.has_dataset());
  EXPECT_EQ(lease.export_().type(), "merged");
  EXPECT_EQ(lease.export_().adapter().type(), "local");
  EXPECT_EQ(lease.export_().adapter().source(), adapter_.source());
  EXPECT_EQ(lease.export_().dtype(), "bf16");
  EXPECT_EQ(lease.export_().max_shard_size(), kFiveGb);
  EXPECT_EQ(lease.output_dir(), absl::StrCat(env_.root(), "/artifacts/jobs/", queued.job_id(), "/export"));

  absl::StatusOr<v1::ModelExport> running = GetExport(queued.id());
  ASSERT_THAT(running, IsOk());
  EXPECT_EQ(running->state(), v1::EXPORT_STATE_RUNNING);
  job = GetJob(queued.job_id());
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job->worker_id(), kWorker);

  // A watcher follows the job until the publish ends it.
  absl::Status watch_status;
  std::vector<v1::WatchFineTuningJobResponse> seen;
  std::thread watcher([&] { seen = Watch(queued.job_id(), &watch_status); });
  WriteMergedModel(lease);
  iv1::CompleteJobResponse completed;
  ASSERT_THAT(Complete(lease, &completed), IsOk());
  watcher.join();

  EXPECT_EQ(completed.export_destination(), Destination("merged"));
  ASSERT_THAT(completed.exported_model_id(), Not(IsEmpty()));
  EXPECT_THAT(completed.adapter_id(), IsEmpty());
  // The files moved from the job's folder to the destination, and nothing was left beside it.
  EXPECT_EQ(DirContents(Destination("merged")), DirContents(base_.source()));
  EXPECT_FALSE(fs::exists(lease.output_dir()));
  EXPECT_THAT(Entries(exports_dir_), ElementsAre("merged"));

  absl::StatusOr<v1::Model> merged = GetModel("llama-merged");
  ASSERT_THAT(merged, IsOk());
  EXPECT_EQ(merged->id(), completed.exported_model_id());
  EXPECT_EQ(merged->source_type(), v1::SOURCE_TYPE_LOCAL);
  EXPECT_EQ(merged->source(), Destination("merged"));
  EXPECT_EQ(merged->family(), "llama");
  EXPECT_EQ(merged->revision_count(), 1);
  EXPECT_THAT(merged->description(), AllOf(HasSubstr(adapter_.id()), HasSubstr(queued.id())));

  absl::StatusOr<v1::ModelExport> done = GetExport(queued.id());
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->state(), v1::EXPORT_STATE_SUCCEEDED);
  EXPECT_EQ(done->exported_model_id(), merged->id());
  EXPECT_EQ(done->exported_model_revision_id(), merged->latest_revision().id());
  EXPECT_THAT(done->error_code(), IsEmpty());
  EXPECT_EQ(done->job_id(), queued.job_id());

  job = GetJob(queued.job_id());
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(job->error().code(), IsEmpty());
  EXPECT_TRUE(job->has_end_time());

  EXPECT_THAT(watch_status, IsOk());
  std::vector<v1::JobState> states;
  for (const auto& r : seen) states.push_back(r.event().state());
  EXPECT_THAT(states, ElementsAre(v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED));
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_THAT(seen[0].event().message(),
              HasSubstr("export queued: merged export of adapter 'llama-lora' into " + Destination("merged")));
  EXPECT_THAT(seen[1].event().message(), HasSubstr("started on trainer fake-trainer"));
  EXPECT_THAT(seen[2].event().message(),
              HasSubstr("merged model 'llama-merged' (" + merged->id() + ") registered at " + Destination("merged")));
  EXPECT_EQ(seen[2].job().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(seen[2].job().export_id(), queued.id());

  // Removing the job keeps what the export did.
  ASSERT_THAT(RemoveJob("merge-it"), IsOk());
  EXPECT_THAT(GetJob(queued.job_id()), StatusIs(absl::StatusCode::kNotFound, HasSubstr(queued.job_id())));
  done = GetExport(queued.id());
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->state(), v1::EXPORT_STATE_SUCCEEDED);
  EXPECT_THAT(done->job_id(), IsEmpty());
  EXPECT_EQ(done->exported_model_id(), merged->id());
}

TEST_F(ExportsTest, AnAdapterExportCopiesTheAdapterAndRegistersNoModel) {
  v1::ModelExport queued;
  ASSERT_THAT(Export(AdapterCopy("lora-copy"), &queued), IsOk());
  EXPECT_EQ(queued.type(), v1::EXPORT_TYPE_ADAPTER);
  EXPECT_EQ(queued.max_shard_size(), 0);
  absl::StatusOr<v1::FineTuningJob> job = GetJob(queued.job_id());
  ASSERT_THAT(job, IsOk());
  EXPECT_THAT(job->name(), StartsWith("export-llama-lora-"));  // the default name

  const iv1::JobLease lease = Lease();
  EXPECT_EQ(lease.kind(), "export");
  EXPECT_EQ(lease.export_().type(), "adapter");
  EXPECT_EQ(lease.export_().adapter().source(), adapter_.source());
  EXPECT_THAT(lease.export_().dtype(), IsEmpty());
  EXPECT_EQ(lease.export_().max_shard_size(), 0);
  WriteAdapterCopy(lease);
  iv1::CompleteJobResponse completed;
  ASSERT_THAT(Complete(lease, &completed), IsOk());
  EXPECT_EQ(completed.export_destination(), Destination("lora-copy"));
  EXPECT_THAT(completed.exported_model_id(), IsEmpty());

  const std::map<std::string, std::string> copied = DirContents(Destination("lora-copy"));
  EXPECT_EQ(copied, DirContents(adapter_.source()));
  EXPECT_EQ(copied.count("adapter_config.json"), 1u);
  EXPECT_FALSE(fs::exists(lease.output_dir()));
  EXPECT_THAT(ModelNames(), ElementsAre("ref-llama"));

  absl::StatusOr<v1::ModelExport> done = GetExport(queued.id());
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->state(), v1::EXPORT_STATE_SUCCEEDED);
  EXPECT_THAT(done->exported_model_id(), IsEmpty());
  EXPECT_THAT(done->exported_model_revision_id(), IsEmpty());
  job = GetJob(queued.job_id());
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  absl::Status watch_status;
  const std::vector<v1::WatchFineTuningJobResponse> seen = Watch(queued.job_id(), &watch_status);
  EXPECT_THAT(watch_status, IsOk());
  ASSERT_FALSE(seen.empty());
  EXPECT_THAT(seen.back().event().message(), HasSubstr("adapter exported to " + Destination("lora-copy")));
}

TEST_F(ExportsTest, OverwriteReplacesTheDirectoryAndGivesTheModelARevisionWhenItChanged) {
  const v1::ModelExport first = RunMergedExport(Merged("merged", "llama-merged"));
  ASSERT_EQ(first.state(), v1::EXPORT_STATE_SUCCEEDED) << first.error_message();
  const std::string first_revision = first.exported_model_revision_id();

  // Without overwrite the destination is taken.
  EXPECT_THAT(Export(Merged("merged", "llama-merged")),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("destination_path"), HasSubstr("already exists"), HasSubstr("set overwrite"))));
  EXPECT_EQ(ExportIds().size(), 1u);

  // The same content again: AddModel finds the revision it has (outcome EXISTING), so the model keeps one revision.
  v1::ExportModelRequest overwrite = Merged("merged", "llama-merged");
  overwrite.set_overwrite(true);
  const v1::ModelExport same = RunMergedExport(overwrite);
  EXPECT_EQ(same.state(), v1::EXPORT_STATE_SUCCEEDED) << same.error_message();
  EXPECT_TRUE(same.overwrite());
  EXPECT_EQ(same.exported_model_id(), first.exported_model_id());
  EXPECT_EQ(same.exported_model_revision_id(), first_revision);
  absl::StatusOr<v1::Model> model = GetModel("llama-merged");
  ASSERT_THAT(model, IsOk());
  EXPECT_EQ(model->revision_count(), 1);

  // Changed content: the old directory is replaced as a whole and the model gets revision 2.
  WriteFileBytes(Destination("merged") + "/stale.txt", "from before");
  const v1::ModelExport changed = RunMergedExport(overwrite, {{"README.md", "# merged again\n"}});
  EXPECT_EQ(changed.state(), v1::EXPORT_STATE_SUCCEEDED) << changed.error_message();
  EXPECT_EQ(changed.exported_model_id(), first.exported_model_id());
  EXPECT_NE(changed.exported_model_revision_id(), first_revision);
  model = GetModel("llama-merged");
  ASSERT_THAT(model, IsOk());
  EXPECT_EQ(model->revision_count(), 2);
  EXPECT_EQ(model->latest_revision().id(), changed.exported_model_revision_id());
  EXPECT_EQ(model->latest_revision().revision_number(), 2);
  std::map<std::string, std::string> expected = DirContents(base_.source());
  expected["README.md"] = Sha256Hex("# merged again\n");
  EXPECT_EQ(DirContents(Destination("merged")), expected);
  EXPECT_THAT(Entries(exports_dir_), ElementsAre("merged"));  // no staging or replaced directory left beside it
  EXPECT_THAT(ModelNames(), UnorderedElementsAre("ref-llama", "llama-merged"));
}

TEST_F(ExportsTest, ADestinationThatAppearsWhileTheJobRunsFailsTheJobAndIsLeftAlone) {
  v1::ModelExport queued;
  ASSERT_THAT(Export(Merged("merged", "llama-merged"), &queued), IsOk());
  const iv1::JobLease lease = Lease();
  WriteMergedModel(lease);
  env_.WriteFile("exports/merged/mine.txt", "someone else's");

  EXPECT_THAT(Complete(lease), StatusIs(absl::StatusCode::kAlreadyExists,
                                        AllOf(HasSubstr("destination_path '" + Destination("merged") + "'"),
                                              HasSubstr("appeared while the export ran"),
                                              HasSubstr("remove it, or export again with overwrite"))));
  EXPECT_EQ(DirContents(Destination("merged")),
            (std::map<std::string, std::string>{{"mine.txt", Sha256Hex("someone else's")}}));
  EXPECT_THAT(Entries(exports_dir_), ElementsAre("merged"));
  EXPECT_THAT(GetModel("llama-merged"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("llama-merged")));

  absl::StatusOr<v1::FineTuningJob> job = GetJob(queued.job_id());
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(job->error().code(), "ALREADY_EXISTS");
  EXPECT_THAT(job->error().message(), HasSubstr("appeared while the export ran"));
  absl::StatusOr<v1::ModelExport> failed = GetExport(queued.id());
  ASSERT_THAT(failed, IsOk());
  EXPECT_EQ(failed->state(), v1::EXPORT_STATE_FAILED);
  EXPECT_EQ(failed->error_code(), "ALREADY_EXISTS");
  EXPECT_THAT(failed->error_message(), HasSubstr("appeared while the export ran"));
  EXPECT_THAT(failed->exported_model_id(), IsEmpty());
  absl::Status watch_status;
  const std::vector<v1::WatchFineTuningJobResponse> seen = Watch(queued.job_id(), &watch_status);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().event().state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(seen.back().event().level(), "error");
  EXPECT_THAT(seen.back().event().message(), HasSubstr("ALREADY_EXISTS: destination_path"));

  // The job is over: a second completion is refused, and removing the job keeps the state.
  EXPECT_THAT(Complete(lease), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  ASSERT_THAT(RemoveJob(queued.job_id()), IsOk());
  failed = GetExport(queued.id());
  ASSERT_THAT(failed, IsOk());
  EXPECT_EQ(failed->state(), v1::EXPORT_STATE_FAILED);
  EXPECT_THAT(failed->job_id(), IsEmpty());
}

TEST_F(ExportsTest, OutputThatIsIncompleteOrElsewhereFailsTheJob) {
  // A merged model without config.json.
  v1::ModelExport no_config;
  ASSERT_THAT(Export(Merged("no-config", "no-config"), &no_config), IsOk());
  iv1::JobLease lease = Lease();
  WriteMergedModel(lease);
  fs::remove(lease.output_dir() + "/config.json");
  // Only the job's own folder is accepted.
  iv1::CompleteJobRequest elsewhere;
  elsewhere.set_job_id(lease.job_id());
  elsewhere.set_attempt(lease.attempt());
  elsewhere.set_worker_id(kWorker);
  elsewhere.set_adapter_dir(base_.source());
  iv1::CompleteJobResponse ignored;
  EXPECT_THAT(FromGrpcStatus(env_.queue()->CompleteJob(WorkerContext().get(), elsewhere, &ignored)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("adapter_dir must be the job's output_dir " + lease.output_dir())));
  EXPECT_THAT(Complete(lease), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        AllOf(HasSubstr(lease.output_dir() + " has no config.json"),
                                              HasSubstr("run the export again"))));
  absl::StatusOr<v1::FineTuningJob> job = GetJob(no_config.job_id());
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(job->error().code(), "FAILED_PRECONDITION");
  EXPECT_THAT(job->error().message(), HasSubstr("has no config.json"));
  absl::StatusOr<v1::ModelExport> failed = GetExport(no_config.id());
  ASSERT_THAT(failed, IsOk());
  EXPECT_EQ(failed->state(), v1::EXPORT_STATE_FAILED);
  EXPECT_EQ(failed->error_code(), "FAILED_PRECONDITION");

  // A merged model without weights.
  v1::ModelExport no_weights;
  ASSERT_THAT(Export(Merged("no-weights", "no-weights"), &no_weights), IsOk());
  lease = Lease();
  WriteMergedModel(lease);
  fs::remove(lease.output_dir() + "/model.safetensors");
  EXPECT_THAT(Complete(lease), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("has no model.safetensors or index; run the export again")));

  // An adapter copy without adapter_config.json.
  v1::ModelExport no_adapter_config;
  ASSERT_THAT(Export(AdapterCopy("no-adapter-config"), &no_adapter_config), IsOk());
  lease = Lease();
  WriteAdapterCopy(lease);
  fs::remove(lease.output_dir() + "/adapter_config.json");
  EXPECT_THAT(Complete(lease),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has no adapter_config.json")));
  job = GetJob(no_adapter_config.job_id());
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->state(), v1::JOB_STATE_FAILED);

  // Removing a failed export's job keeps the export's state and the reason.
  ASSERT_THAT(RemoveJob(no_config.job_id()), IsOk());
  failed = GetExport(no_config.id());
  ASSERT_THAT(failed, IsOk());
  EXPECT_EQ(failed->state(), v1::EXPORT_STATE_FAILED);
  EXPECT_EQ(failed->error_code(), "FAILED_PRECONDITION");
  EXPECT_THAT(failed->error_message(), HasSubstr("has no config.json"));
  EXPECT_THAT(failed->job_id(), IsEmpty());

  EXPECT_THAT(Entries(exports_dir_), IsEmpty());
  EXPECT_THAT(ModelNames(), ElementsAre("ref-llama"));
}

TEST_F(ExportsTest, CancelAndRemoveKeepTheExportsFinalState) {
  v1::ModelExport queued;
  ASSERT_THAT(Export(Merged("merged", "llama-merged"), &queued), IsOk());
  v1::CancelFineTuningJobRequest cancel;
  cancel.set_job(queued.job_id());
  v1::CancelFineTuningJobResponse cancelled;
  ASSERT_THAT(FromGrpcStatus(env_.jobs()->CancelFineTuningJob(Context().get(), cancel, &cancelled)), IsOk());
  EXPECT_EQ(cancelled.job().state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(cancelled.job().export_id(), queued.id());
  absl::StatusOr<v1::ModelExport> e = GetExport(queued.id());
  ASSERT_THAT(e, IsOk());
  EXPECT_EQ(e->state(), v1::EXPORT_STATE_CANCELLED);
  EXPECT_EQ(e->job_id(), queued.job_id());
  EXPECT_FALSE(LeaseJob(env_, kWorker, 0).has_lease());  // no trainer gets it

  ASSERT_THAT(RemoveJob(queued.job_id()), IsOk());
  EXPECT_THAT(GetJob(queued.job_id()), StatusIs(absl::StatusCode::kNotFound, HasSubstr(queued.job_id())));
  e = GetExport(queued.id());
  ASSERT_THAT(e, IsOk());
  EXPECT_EQ(e->state(), v1::EXPORT_STATE_CANCELLED);
  EXPECT_THAT(e->job_id(), IsEmpty());
  EXPECT_EQ(e->destination_path(), Destination("merged"));
  EXPECT_THAT(ExportIds(), ElementsAre(queued.id()));
  EXPECT_THAT(JobNames(), IsEmpty());

  // A running export's job cannot be removed before it ends.
  v1::ModelExport running;
  ASSERT_THAT(Export(AdapterCopy("copy"), &running), IsOk());
  ASSERT_EQ(Lease().job_id(), running.job_id());
  EXPECT_THAT(RemoveJob(running.job_id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, AllOf(HasSubstr("is RUNNING"), HasSubstr("cancel it"))));
  ASSERT_THAT(CancelJob(running.job_id()), IsOk());
  e = GetExport(running.id());
  ASSERT_THAT(e, IsOk());
  EXPECT_EQ(e->state(), v1::EXPORT_STATE_CANCELLING);
}

TEST_F(ExportsTest, ListFiltersAndPagesAndGetChecksTheId) {
  env_.AddReferenceModel("mistral", "ref-mistral");
  v1::Adapter second, mistral_adapter;
  AddAdapter("llama-lora-2", "ref-llama", "llama", &second);
  AddAdapter("mistral-lora", "ref-mistral", "mistral", &mistral_adapter);
  ASSERT_FALSE(HasFatalFailure());
  v1::ModelExport first_export, second_export, mistral_export;
  ASSERT_THAT(Export(AdapterCopy("one"), &first_export), IsOk());
  v1::ExportModelRequest request = AdapterCopy("two");
  request.set_adapter("llama-lora-2");
  ASSERT_THAT(Export(request, &second_export), IsOk());
  request = AdapterCopy("three");
  request.set_model("ref-mistral");
  request.set_adapter(mistral_adapter.id());
  ASSERT_THAT(Export(request, &mistral_export), IsOk());

  EXPECT_THAT(ExportIds(), ElementsAre(mistral_export.id(), second_export.id(), first_export.id()));
  EXPECT_THAT(ExportIds("ref-llama"), ElementsAre(second_export.id(), first_export.id()));
  EXPECT_THAT(ExportIds(base_.id()), ElementsAre(second_export.id(), first_export.id()));
  EXPECT_THAT(ExportIds("ref-mistral"), ElementsAre(mistral_export.id()));
  EXPECT_THAT(ExportIds("", "llama-lora-2"), ElementsAre(second_export.id()));
  EXPECT_THAT(ExportIds("", adapter_.id()), ElementsAre(first_export.id()));
  EXPECT_THAT(ExportIds("ref-mistral", "llama-lora"), IsEmpty());

  // One at a time: each page has one export and a token for the next, the last none.
  v1::ListModelExportsRequest paged;
  paged.set_page_size(1);
  std::vector<std::string> ids;
  for (int page = 0; page < 5; ++page) {
    v1::ListModelExportsResponse response;
    ASSERT_THAT(ListExports(paged, &response), IsOk());
    ASSERT_EQ(response.exports_size(), 1);
    ids.push_back(response.exports(0).id());
    if (page < 2) {
      EXPECT_THAT(response.next_page_token(), Not(IsEmpty()));
    }
    if (response.next_page_token().empty()) break;
    paged.set_page_token(response.next_page_token());
  }
  EXPECT_THAT(ids, ElementsAre(mistral_export.id(), second_export.id(), first_export.id()));

  v1::ListModelExportsResponse response;
  v1::ListModelExportsRequest bad;
  bad.set_adapter("nope");
  EXPECT_THAT(ListExports(bad, &response),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("adapter 'nope' not found"), HasSubstr("ListAdapters"))));
  bad = v1::ListModelExportsRequest();
  bad.set_model("nope");
  EXPECT_THAT(ListExports(bad, &response), StatusIs(absl::StatusCode::kNotFound, HasSubstr("model 'nope' not found")));
  bad = v1::ListModelExportsRequest();
  bad.set_page_token("not-a-token");
  EXPECT_THAT(ListExports(bad, &response),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("page_token is not a token returned by this List")));
  bad = v1::ListModelExportsRequest();
  bad.set_page_size(-1);
  EXPECT_THAT(ListExports(bad, &response), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_size -1")));

  absl::StatusOr<v1::ModelExport> got = GetExport(second_export.id());
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->adapter_id(), second.id());
  EXPECT_EQ(got->destination_path(), Destination("two"));
  EXPECT_EQ(got->state(), v1::EXPORT_STATE_QUEUED);
  EXPECT_THAT(GetExport(kUnknownId), StatusIs(absl::StatusCode::kNotFound,
                                              AllOf(HasSubstr(absl::StrCat("export ", kUnknownId, " not found")),
                                                    HasSubstr("ListModelExports"))));
  EXPECT_THAT(GetExport("not-an-id"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("id 'not-an-id' is not an id")));
  EXPECT_THAT(GetExport(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("id is required")));
}

// Overwrite replaces a directory that the export registers; a directory that is another model's stays that model's.
TEST_F(ExportsTest, OverwriteDoesNotReplaceTheDirectoryOfAnotherModel) {
  const std::map<std::string, std::string> before = DirContents(base_.source());
  v1::ExportModelRequest request = Merged("unused", "llama-merged");
  request.set_destination_path(base_.source());
  request.set_overwrite(true);
  EXPECT_THAT(Export(request), StatusIs(absl::StatusCode::kAlreadyExists,
                                        AllOf(HasSubstr("is the directory of model 'ref-llama'"),
                                              HasSubstr("only replace the directory of the model it registers"))));
  // A directory no export wrote (here: one holding an unregistered file) is not replaced either.
  const std::string other = Destination("hand-made");
  fs::create_directories(other);
  WriteFileBytes(other + "/notes.txt", "mine\n");
  request.set_destination_path(other);
  EXPECT_THAT(Export(request), StatusIs(absl::StatusCode::kAlreadyExists,
                                        AllOf(HasSubstr("exists and no export wrote it"),
                                              HasSubstr("choose a new directory"))));
  EXPECT_EQ(ReadFileBytes(other + "/notes.txt"), "mine\n");
  EXPECT_THAT(ExportIds(), IsEmpty());
  EXPECT_EQ(DirContents(base_.source()), before) << "the base model's registered directory was replaced";
}

// Without the reference data: destination checks happen before any record is read.
TEST(ExportDestinationTest, AnAllowedRootIsNoDestinationEvenWithOverwrite) {
  std::string inner;
  MetadataTestEnv env([&](MetadataServerOptions& options) {
    inner = options.allowed_roots[0] + "/shared";
    fs::create_directories(inner);
    options.allowed_roots.push_back(inner);
  });
  v1::ExportModelRequest request;
  request.set_model("ref-llama");
  request.set_adapter("llama-lora");
  request.set_type(v1::EXPORT_TYPE_ADAPTER);
  request.set_overwrite(true);
  v1::ExportModelResponse response;
  for (const std::string& root : {inner, env.root()}) {
    SCOPED_TRACE(root);
    request.set_destination_path(root);
    const absl::Status status = FromGrpcStatus(env.models()->ExportModel(Context().get(), request, &response));
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                                 AllOf(HasSubstr("destination_path: '" + root + "' is an allowed root"),
                                       HasSubstr("export into a directory below it"))));
  }
  EXPECT_TRUE(fs::is_directory(inner));
}

}  // namespace
}  // namespace tuneforge::testing
