// Evaluation jobs end to end over gRPC against a real PostgreSQL: StartEvaluationJob's checks and resolved settings,
// the lease a trainer gets (the adapters in order with their sources), CompleteJob's checks of the results, results
// shown by Get (with samples), List (without) and Watch, cancel and remove, lineage, and an adapter removed after
// the job. A fake trainer leases and reports here; the real trainer's losses are checked against transformers by
// tests/reference/peft_roundtrip.py.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "services/metadata/server.h"
#include "tests/metadata/support/job_fixtures.h"
#include "tests/metadata/support/metadata_test_env.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"
#include "tuneforge/v1/lineage.grpc.pb.h"

namespace tuneforge::testing {
namespace {

namespace iv1 = ::tuneforge::internal::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr char kWorker[] = "fake-trainer";

class EvaluationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
    env_.AddReferenceModel("llama", "ref-llama");
    AddAdapter("lora-a", "ref-llama", "llama");
    AddAdapter("lora-b", "ref-llama", "llama");
    env_.AddReferenceModel("mistral", "ref-mistral");
    AddAdapter("mistral-lora", "ref-mistral", "mistral");
    std::string rows;
    for (int i = 0; i < 20; ++i) {
      absl::StrAppend(&rows, "{\"question\": \"what is ", i, " + 1?\", \"answer\": \"", i + 1, "\"}\n");
    }
    const std::string path = env_.root() + "/qa.jsonl";
    WriteFileBytes(path, rows);
    ASSERT_TRUE(AddLocalDataset(env_, "qa-data", path));
    ASSERT_TRUE(AddQaPrompt(env_, "qa", "qa-data"));
  }

  void AddAdapter(const std::string& name, const std::string& model, const std::string& reference_case) {
    v1::AddAdapterRequest request;
    request.set_name(name);
    request.set_model(model);
    request.mutable_local()->set_path(
        env_.CopyDir(GeneratedReference() + "/" + reference_case + "/lora", "adapters/" + name));
    v1::AddAdapterResponse response;
    ASSERT_THAT(FromGrpcStatus(env_.adapters()->AddAdapter(Context().get(), request, &response)), IsOk());
    adapter_ids_[name] = response.adapter().id();
  }

  // ref-llama with lora-a then lora-b, on the test split of qa-data.
  static v1::StartEvaluationJobRequest Request(const std::string& name) {
    v1::StartEvaluationJobRequest request;
    request.set_name(name);
    request.set_model("ref-llama");
    request.add_adapters("lora-a");
    request.add_adapters("lora-b");
    request.set_dataset("qa-data");
    request.set_prompt("qa");
    return request;
  }

  absl::Status Start(const v1::StartEvaluationJobRequest& request, v1::EvaluationJob* out = nullptr) {
    v1::StartEvaluationJobResponse response;
    absl::Status status =
        FromGrpcStatus(env_.evaluations()->StartEvaluationJob(Context().get(), request, &response));
    if (out != nullptr) *out = response.job();
    return status;
  }

  absl::StatusOr<v1::EvaluationJob> Get(const std::string& ref) {
    v1::GetEvaluationJobRequest request;
    request.set_job(ref);
    v1::GetEvaluationJobResponse response;
    absl::Status status = FromGrpcStatus(env_.evaluations()->GetEvaluationJob(Context().get(), request, &response));
    if (!status.ok()) return status;
    return response.job();
  }

  iv1::JobLease Lease() {
    const iv1::LeaseJobResponse response = LeaseJob(env_, kWorker, 0);
    EXPECT_TRUE(response.has_lease()) << "no job was queued";
    return response.lease();
  }

  // What a trainer reports for candidate `i` of `adapters` (0 the base): loss 2 - i/4, two samples.
  static v1::CandidateResult Result(const std::string& adapter_id, int i) {
    v1::CandidateResult r;
    r.set_adapter_id(adapter_id);
    r.set_adapter_name(adapter_id.empty() ? "" : "as the trainer named it");
    r.set_loss(2.0 - i / 4.0);
    r.set_perplexity(std::exp(r.loss()));
    r.set_examples(4);
    r.set_tokens(100);
    r.set_label_tokens(12);
    r.set_generation_tokens_per_second(50);
    for (int k = 0; k < 2; ++k) {
      v1::EvaluationSample* s = r.add_samples();
      s->set_row(k);
      s->set_prompt(absl::StrCat("Q: what is ", k, " + 1?\nA: "));
      s->set_reference(absl::StrCat(k + 1));
      s->set_output(absl::StrCat("candidate ", i, " says ", k + 1));
      s->set_stop_reason("eos");
    }
    return r;
  }

  absl::Status Complete(const iv1::JobLease& lease, const std::vector<v1::CandidateResult>& results) {
    iv1::CompleteJobRequest request;
    request.set_job_id(lease.job_id());
    request.set_attempt(lease.attempt());
    request.set_worker_id(kWorker);
    request.set_adapter_dir(lease.output_dir());
    request.mutable_progress()->set_step(static_cast<int64_t>(results.size()));
    request.mutable_progress()->set_total_steps(static_cast<int64_t>(results.size()));
    for (const v1::CandidateResult& r : results) *request.add_evaluation_results() = r;
    iv1::CompleteJobResponse response;
    return FromGrpcStatus(env_.queue()->CompleteJob(WorkerContext().get(), request, &response));
  }

  // The correct report for `lease`: the base, then its adapters in order.
  static std::vector<v1::CandidateResult> ResultsFor(const iv1::JobLease& lease) {
    std::vector<v1::CandidateResult> out = {Result("", 0)};
    for (int i = 0; i < lease.evaluation().adapters_size(); ++i) {
      out.push_back(Result(lease.evaluation().adapters(i).id(), i + 1));
    }
    return out;
  }

  MetadataTestEnv env_;
  std::map<std::string, std::string> adapter_ids_;
};

TEST_F(EvaluationsTest, StartResolvesEveryDefaultAndQueuesTheJob) {
  v1::EvaluationJob job;
  v1::StartEvaluationJobRequest request = Request("");
  ASSERT_THAT(Start(request, &job), IsOk());
  EXPECT_THAT(job.name(), ::testing::StartsWith("eval-ref-llama-qa-data-"));
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(job.split(), "test");
  EXPECT_THAT(job.adapter_ids(), ElementsAre(adapter_ids_["lora-a"], adapter_ids_["lora-b"]));
  EXPECT_THAT(job.results(), IsEmpty());
  const auto& evaluation = job.settings().fields().at("evaluation").struct_value().fields();
  EXPECT_EQ(evaluation.at("num_samples").number_value(), 3);
  EXPECT_EQ(evaluation.at("max_seq_len").number_value(), 2048);
  EXPECT_EQ(evaluation.at("batch_size").number_value(), 8);
  EXPECT_EQ(evaluation.at("dtype").string_value(), "fp32");
  EXPECT_EQ(evaluation.at("device").string_value(), "auto");
  const auto& generation = job.settings().fields().at("generation").struct_value().fields();
  EXPECT_EQ(generation.at("max_new_tokens").number_value(), 64);

  // Shown among all jobs with its kind, and alone by the evaluations' list.
  v1::ListFineTuningJobsRequest all;
  all.add_kinds(v1::JOB_KIND_EVALUATION);
  v1::ListFineTuningJobsResponse listed;
  ASSERT_THAT(FromGrpcStatus(env_.jobs()->ListFineTuningJobs(Context().get(), all, &listed)), IsOk());
  ASSERT_THAT(listed.jobs(), SizeIs(1));
  EXPECT_EQ(listed.jobs(0).kind(), v1::JOB_KIND_EVALUATION);
  v1::ListEvaluationJobsResponse evaluations;
  ASSERT_THAT(FromGrpcStatus(env_.evaluations()->ListEvaluationJobs(Context().get(), v1::ListEvaluationJobsRequest(),
                                                                     &evaluations)),
              IsOk());
  ASSERT_THAT(evaluations.jobs(), SizeIs(1));
  EXPECT_EQ(evaluations.jobs(0).id(), job.id());

  // A second job without a name gets a name of its own.
  v1::EvaluationJob second;
  ASSERT_THAT(Start(request, &second), IsOk());
  EXPECT_NE(second.name(), job.name());
  // A name taken by any job is refused.
  request.set_name(job.name());
  EXPECT_THAT(Start(request), StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("name")));
}

TEST_F(EvaluationsTest, BadRequestsNameTheFieldAndQueueNothing) {
  struct Case {
    std::string what;
    std::function<void(v1::StartEvaluationJobRequest*)> change;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"no model", [](auto* r) { r->clear_model(); }, absl::StatusCode::kInvalidArgument, "model"},
      {"unknown model", [](auto* r) { r->set_model("nope"); }, absl::StatusCode::kNotFound, "nope"},
      {"no prompt", [](auto* r) { r->clear_prompt(); }, absl::StatusCode::kInvalidArgument, "prompt"},
      {"bad split", [](auto* r) { r->set_split("validation"); }, absl::StatusCode::kInvalidArgument, "split"},
      {"negative max_examples", [](auto* r) { r->set_max_examples(-1); }, absl::StatusCode::kInvalidArgument,
       "max_examples"},
      {"too many samples", [](auto* r) { r->set_num_samples(101); }, absl::StatusCode::kInvalidArgument,
       "num_samples"},
      {"max_seq_len", [](auto* r) { r->set_max_seq_len(200000); }, absl::StatusCode::kInvalidArgument,
       "max_seq_len"},
      {"batch_size", [](auto* r) { r->set_batch_size(-2); }, absl::StatusCode::kInvalidArgument, "batch_size"},
      {"device", [](auto* r) { r->set_device("tpu"); }, absl::StatusCode::kInvalidArgument, "device"},
      {"dtype", [](auto* r) { r->set_dtype("int4"); }, absl::StatusCode::kInvalidArgument, "dtype"},
      {"max_attempts", [](auto* r) { r->set_max_attempts(11); }, absl::StatusCode::kInvalidArgument,
       "max_attempts"},
      {"generation key",
       [](auto* r) { (*r->mutable_generation()->mutable_fields())["top_p"].set_number_value(2); },
       absl::StatusCode::kInvalidArgument, "generation.top_p"},
      {"unknown generation key",
       [](auto* r) { (*r->mutable_generation()->mutable_fields())["beams"].set_number_value(2); },
       absl::StatusCode::kInvalidArgument, "beams"},
      {"unknown adapter", [](auto* r) { r->add_adapters("missing-lora"); }, absl::StatusCode::kNotFound,
       "adapters[2]"},
      {"adapter of another model", [](auto* r) { r->add_adapters("mistral-lora"); },
       absl::StatusCode::kInvalidArgument, "adapters[2]"},
      {"adapter twice", [](auto* r) { r->add_adapters("lora-a"); }, absl::StatusCode::kInvalidArgument,
       "adapters[2]"},
      {"malformed adapter reference", [](auto* r) { r->add_adapters(""); }, absl::StatusCode::kInvalidArgument,
       "adapters[2]"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    v1::StartEvaluationJobRequest request = Request(absl::StrCat("bad-", c.what.size()));
    c.change(&request);
    EXPECT_THAT(Start(request), StatusIs(c.code, HasSubstr(c.message)));
  }
  v1::ListEvaluationJobsResponse evaluations;
  ASSERT_THAT(FromGrpcStatus(env_.evaluations()->ListEvaluationJobs(Context().get(), v1::ListEvaluationJobsRequest(),
                                                                     &evaluations)),
              IsOk());
  EXPECT_THAT(evaluations.jobs(), IsEmpty());
  EXPECT_FALSE(LeaseJob(env_, kWorker, 0).has_lease());
}

TEST_F(EvaluationsTest, TrainerGetsTheCandidatesAndItsResultsAreChecked) {
  v1::StartEvaluationJobRequest request = Request("eval-1");
  request.set_num_samples(2);
  (*request.mutable_generation()->mutable_fields())["max_new_tokens"].set_number_value(8);
  v1::EvaluationJob job;
  ASSERT_THAT(Start(request, &job), IsOk());
  const iv1::JobLease lease = Lease();
  ASSERT_EQ(lease.job_id(), job.id());
  EXPECT_EQ(lease.kind(), "evaluation");
  EXPECT_FALSE(lease.dataset().source().empty());
  EXPECT_EQ(lease.prompt().input_template(), "Q: {question}\nA: ");
  ASSERT_THAT(lease.evaluation().adapters(), SizeIs(2));
  EXPECT_EQ(lease.evaluation().adapters(0).name(), "lora-a");
  EXPECT_EQ(lease.evaluation().adapters(1).name(), "lora-b");
  EXPECT_EQ(lease.evaluation().adapters(0).source().type(), "local");
  EXPECT_FALSE(lease.evaluation().adapters(0).source().source().empty());
  EXPECT_EQ(lease.settings().fields().at("generation").struct_value().fields().at("max_new_tokens").number_value(), 8);

  // Wrong reports are refused and leave the job running.
  std::vector<v1::CandidateResult> results = ResultsFor(lease);
  EXPECT_THAT(Complete(lease, {results[0], results[1]}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("3 candidates")));
  EXPECT_THAT(Complete(lease, {results[0], results[2], results[1]}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("evaluation_results[1].adapter_id")));
  std::vector<v1::CandidateResult> nan = results;
  nan[1].set_loss(std::numeric_limits<double>::quiet_NaN());
  EXPECT_THAT(Complete(lease, nan), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("evaluation_results[1].loss")));
  std::vector<v1::CandidateResult> negative = results;
  negative[2].set_label_tokens(-1);
  EXPECT_THAT(Complete(lease, negative), StatusIs(absl::StatusCode::kInvalidArgument,
                                                  HasSubstr("evaluation_results[2].label_tokens")));
  ASSERT_THAT(Get("eval-1"), IsOk());
  EXPECT_EQ(Get("eval-1")->state(), v1::JOB_STATE_RUNNING);
  EXPECT_THAT(Get("eval-1")->results(), IsEmpty());

  ASSERT_THAT(Complete(lease, results), IsOk());
  absl::StatusOr<v1::EvaluationJob> done = Get("eval-1");
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_THAT(done->results(), SizeIs(3));
  EXPECT_EQ(done->results(0).adapter_id(), "");
  EXPECT_EQ(done->results(1).adapter_id(), adapter_ids_["lora-a"]);
  EXPECT_EQ(done->results(1).adapter_name(), "lora-a");  // the registered name, not the trainer's
  EXPECT_EQ(done->results(2).adapter_name(), "lora-b");
  EXPECT_DOUBLE_EQ(done->results(2).loss(), 1.5);
  EXPECT_EQ(done->results(1).label_tokens(), 12);
  ASSERT_THAT(done->results(1).samples(), SizeIs(2));
  EXPECT_EQ(done->results(1).samples(1).output(), "candidate 1 says 2");
  EXPECT_EQ(done->results(1).samples(1).stop_reason(), "eos");

  // List shows the numbers without the samples.
  v1::ListEvaluationJobsResponse listed;
  ASSERT_THAT(FromGrpcStatus(env_.evaluations()->ListEvaluationJobs(Context().get(), v1::ListEvaluationJobsRequest(),
                                                                     &listed)),
              IsOk());
  ASSERT_THAT(listed.jobs(), SizeIs(1));
  ASSERT_THAT(listed.jobs(0).results(), SizeIs(3));
  EXPECT_DOUBLE_EQ(listed.jobs(0).results(1).loss(), 1.75);
  EXPECT_THAT(listed.jobs(0).results(1).samples(), IsEmpty());

  // Watch replays the history and its last message carries the results.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::WatchEvaluationJobRequest watch;
  watch.set_job("eval-1");
  auto reader = env_.evaluations()->WatchEvaluationJob(&context, watch);
  std::vector<v1::WatchEvaluationJobResponse> seen;
  v1::WatchEvaluationJobResponse response;
  while (reader->Read(&response)) seen.push_back(response);
  ASSERT_THAT(FromGrpcStatus(reader->Finish()), IsOk());
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen.front().event().state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(seen.back().job().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(seen.back().job().results(), SizeIs(3));

  // Removing an adapter keeps its result, by name.
  v1::RemoveAdapterRequest remove;
  remove.set_adapter("lora-b");
  v1::RemoveAdapterResponse removed;
  ASSERT_THAT(FromGrpcStatus(env_.adapters()->RemoveAdapter(Context().get(), remove, &removed)), IsOk());
  done = Get("eval-1");
  ASSERT_THAT(done, IsOk());
  ASSERT_THAT(done->results(), SizeIs(3));
  EXPECT_EQ(done->results(2).adapter_id(), "");
  EXPECT_EQ(done->results(2).adapter_name(), "lora-b");
}

TEST_F(EvaluationsTest, ResultsAreForEvaluationJobsOnly) {
  ASSERT_TRUE(StartJob(env_, ShortQaJob("train-1", "ref-llama", "qa-data", 1)));
  const iv1::JobLease lease = Lease();
  EXPECT_EQ(lease.kind(), "fine_tune");
  EXPECT_THAT(Complete(lease, {Result("", 0)}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("evaluation_results are for evaluation jobs")));
  // The evaluation service does not show other kinds.
  EXPECT_THAT(Get("train-1"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("ListEvaluationJobs")));
}

TEST_F(EvaluationsTest, CancelRemoveAndAdapterRemovedBeforeTheLease) {
  v1::EvaluationJob queued;
  ASSERT_THAT(Start(Request("eval-cancel"), &queued), IsOk());
  v1::CancelEvaluationJobRequest cancel;
  cancel.set_job("eval-cancel");
  v1::CancelEvaluationJobResponse cancelled;
  ASSERT_THAT(FromGrpcStatus(env_.evaluations()->CancelEvaluationJob(Context().get(), cancel, &cancelled)), IsOk());
  EXPECT_EQ(cancelled.job().state(), v1::JOB_STATE_CANCELLED);
  v1::RemoveEvaluationJobRequest remove;
  remove.set_job("eval-cancel");
  v1::RemoveEvaluationJobResponse removed;
  ASSERT_THAT(FromGrpcStatus(env_.evaluations()->RemoveEvaluationJob(Context().get(), remove, &removed)), IsOk());
  EXPECT_THAT(Get("eval-cancel"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("eval-cancel")));

  // A running job cannot be removed; the message names the evaluations' cancel.
  ASSERT_THAT(Start(Request("eval-running")), IsOk());
  Lease();
  remove.set_job("eval-running");
  EXPECT_THAT(FromGrpcStatus(env_.evaluations()->RemoveEvaluationJob(Context().get(), remove, &removed)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("CancelEvaluationJob")));

  // An adapter removed while the job waits: the job fails at its lease, naming the adapter.
  ASSERT_THAT(Start(Request("eval-orphan")), IsOk());
  v1::RemoveAdapterRequest remove_adapter;
  remove_adapter.set_adapter("lora-a");
  remove_adapter.set_force(true);
  v1::RemoveAdapterResponse adapter_removed;
  ASSERT_THAT(FromGrpcStatus(env_.adapters()->RemoveAdapter(Context().get(), remove_adapter, &adapter_removed)),
              IsOk());
  EXPECT_FALSE(LeaseJob(env_, kWorker, 0).has_lease());
  absl::StatusOr<v1::EvaluationJob> orphan = Get("eval-orphan");
  ASSERT_THAT(orphan, IsOk());
  EXPECT_EQ(orphan->state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(orphan->error().message(), HasSubstr(adapter_ids_["lora-a"]));
}

TEST_F(EvaluationsTest, LineageLinksAdaptersToTheirEvaluations) {
  v1::EvaluationJob job;
  ASSERT_THAT(Start(Request("eval-lineage"), &job), IsOk());
  auto lineage = v1::Lineage::NewStub(env_.channel());
  v1::GetLineageRequest request;
  request.set_kind(v1::LINEAGE_KIND_ADAPTER);
  request.set_ref("lora-a");
  v1::GetLineageResponse response;
  ASSERT_THAT(FromGrpcStatus(lineage->GetLineage(Context().get(), request, &response)), IsOk());
  bool evaluated = false;
  for (const v1::LineageEdge& e : response.edges()) {
    evaluated = evaluated || (e.from_id() == adapter_ids_["lora-a"] && e.to_id() == job.id() &&
                              e.relation() == "evaluated");
  }
  EXPECT_TRUE(evaluated) << response.DebugString();

  request.set_kind(v1::LINEAGE_KIND_JOB);
  request.set_ref("eval-lineage");
  ASSERT_THAT(FromGrpcStatus(lineage->GetLineage(Context().get(), request, &response)), IsOk());
  std::vector<std::string> relations;
  for (const v1::LineageEdge& e : response.edges()) {
    if (e.to_id() == job.id()) relations.push_back(e.relation());
  }
  EXPECT_THAT(relations, ::testing::IsSupersetOf({"base model", "dataset", "prompt", "evaluated", "evaluated"}));
}

}  // namespace
}  // namespace tuneforge::testing
