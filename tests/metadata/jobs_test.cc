// FineTuningJobs and the WorkerQueue end to end over gRPC against a real PostgreSQL: Start's checks and resolved
// settings, the lease / heartbeat / complete / fail state machine with attempt fencing, cancel, expiry, Watch
// streaming pushed events, checkpoints and removal.
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "absl/strings/escaping.h"
#include "tests/metadata/support/job_fixtures.h"
#include "tests/metadata/support/metadata_test_env.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::AddLocalDataset;
using ::tuneforge::testing::AddQaPrompt;
using ::tuneforge::testing::Context;
using ::tuneforge::testing::LeaseJob;
using ::tuneforge::testing::MetadataTestEnv;
using ::tuneforge::testing::WorkerContext;
namespace iv1 = ::tuneforge::internal::v1;

nlohmann::json ToJson(const google::protobuf::Message& m) {
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(m, &text);
  return nlohmann::json::parse(text);
}

std::string QaRows(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += nlohmann::json{{"question", "What is " + std::to_string(i) + " plus one?"},
                          {"answer", std::to_string(i + 1)}}
               .dump() +
           "\n";
  }
  return out;
}

class JobsTest : public ::testing::Test {
 protected:
  explicit JobsTest(double lease_seconds = 30) : env_(lease_seconds) {}

  void SetUp() override {
    TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
    env_.AddReferenceModel("llama", "tiny-llama");
    ASSERT_TRUE(AddLocalDataset(env_, "qa", env_.WriteFile("qa.jsonl", QaRows(20))));
    ASSERT_TRUE(AddQaPrompt(env_, "qa-prompt", "qa"));
  }

  v1::StartFineTuningJobRequest Request(const std::string& name) {
    v1::StartFineTuningJobRequest r;
    r.set_name(name);
    r.set_model("tiny-llama");
    r.set_dataset("qa");
    r.set_prompt("qa-prompt");
    return r;
  }

  grpc::Status Start(const v1::StartFineTuningJobRequest& r, v1::FineTuningJob* job) {
    v1::StartFineTuningJobResponse response;
    grpc::Status s = env_.jobs()->StartFineTuningJob(Context().get(), r, &response);
    *job = response.job();
    return s;
  }

  v1::FineTuningJob MustStart(const std::string& name) {
    v1::FineTuningJob job;
    grpc::Status s = Start(Request(name), &job);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return job;
  }

  void ExpectStartError(const v1::StartFineTuningJobRequest& r, grpc::StatusCode code, const std::string& fragment) {
    v1::FineTuningJob job;
    grpc::Status s = Start(r, &job);
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(fragment));
  }

  iv1::LeaseJobResponse Lease(const std::string& worker, int wait_seconds = 0) {
    return LeaseJob(env_, worker, wait_seconds);
  }

  grpc::Status Beat(const iv1::JobLease& lease, const std::string& worker, iv1::HeartbeatResponse* response,
                    int step = 0) {
    iv1::HeartbeatRequest r;
    r.set_job_id(lease.job_id());
    r.set_attempt(lease.attempt());
    r.set_worker_id(worker);
    if (step > 0) {
      r.set_progress_updated(true);
      r.mutable_progress()->set_step(step);
      r.mutable_progress()->set_total_steps(10);
      r.mutable_metrics()->set_train_loss(2.5);
    }
    return env_.queue()->Heartbeat(WorkerContext().get(), r, response);
  }

  // FailJob from `worker` for attempt `attempt`; returns the state the job went to (UNSPECIFIED on error).
  v1::JobState Fail(const std::string& job_id, int attempt, const std::string& worker, const std::string& code,
                    const std::string& message, bool retryable, bool cancelled) {
    iv1::FailJobRequest fail;
    fail.set_job_id(job_id);
    fail.set_attempt(attempt);
    fail.set_worker_id(worker);
    fail.set_code(code);
    fail.set_message(message);
    fail.set_retryable(retryable);
    fail.set_cancelled(cancelled);
    iv1::FailJobResponse failed;
    grpc::Status s = env_.queue()->FailJob(WorkerContext().get(), fail, &failed);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return failed.state();
  }

  v1::FineTuningJob Get(const std::string& ref) {
    v1::GetFineTuningJobRequest r;
    r.set_job(ref);
    v1::GetFineTuningJobResponse response;
    EXPECT_TRUE(env_.jobs()->GetFineTuningJob(Context().get(), r, &response).ok());
    return response.job();
  }

  MetadataTestEnv env_;
};

TEST_F(JobsTest, StartResolvesReferencesAndMergesFamilyDefaultsWithOverrides) {
  v1::StartFineTuningJobRequest r = Request("first");
  (*r.mutable_lora()->mutable_fields())["r"].set_number_value(4);
  (*r.mutable_training()->mutable_fields())["num_epochs"].set_number_value(2);
  v1::FineTuningJob job;
  ASSERT_TRUE(Start(r, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(job.name(), "first");
  EXPECT_EQ(job.adapter_name(), "first");
  EXPECT_EQ(job.max_attempts(), 3);
  EXPECT_EQ(job.config_ids_size(), 2);  // the llama lora and training defaults
  const nlohmann::json settings = ToJson(job.settings());
  EXPECT_EQ(settings["lora"]["r"], 4);             // override
  EXPECT_EQ(settings["lora"]["lora_alpha"], 32);   // family default
  EXPECT_EQ(settings["training"]["num_epochs"], 2);
  EXPECT_EQ(settings["training"]["lr_scheduler"], "cosine");
  EXPECT_EQ(Get("first").id(), job.id());
  EXPECT_EQ(Get(job.id()).name(), "first");
}

TEST_F(JobsTest, BadStartRequestsNameTheField) {
  auto r = Request("bad");
  r.clear_model();
  ExpectStartError(r, grpc::StatusCode::INVALID_ARGUMENT, "model");
  r = Request("bad");
  r.set_model("no-such-model");
  ExpectStartError(r, grpc::StatusCode::NOT_FOUND, "model 'no-such-model' not found");
  r = Request("bad");
  r.set_dataset("missing");
  ExpectStartError(r, grpc::StatusCode::NOT_FOUND, "dataset 'missing' not found");
  r = Request("bad");
  r.set_prompt("missing");
  ExpectStartError(r, grpc::StatusCode::NOT_FOUND, "prompt 'missing' not found");
  r = Request("bad");
  (*r.mutable_lora()->mutable_fields())["r"].set_number_value(0);
  ExpectStartError(r, grpc::StatusCode::INVALID_ARGUMENT, "lora.r");
  r = Request("bad");
  (*r.mutable_training()->mutable_fields())["learning_rate"].set_string_value("fast");
  ExpectStartError(r, grpc::StatusCode::INVALID_ARGUMENT, "training.learning_rate");
  r = Request("bad");
  (*r.mutable_training()->mutable_fields())["epochs"].set_number_value(2);
  ExpectStartError(r, grpc::StatusCode::INVALID_ARGUMENT, "training.epochs: unknown key");
  r = Request("bad");
  auto* targets = (*r.mutable_lora()->mutable_fields())["target_modules"].mutable_list_value();
  targets->add_values()->set_string_value("qkv_proj");
  ExpectStartError(r, grpc::StatusCode::INVALID_ARGUMENT, "lora.target_modules: 'qkv_proj' is not a linear layer");
  r = Request("bad");
  r.add_configs("llama-generation-default");
  ExpectStartError(r, grpc::StatusCode::INVALID_ARGUMENT, "configs[0]: config 'llama-generation-default' is a generation");
  r = Request("bad");
  r.add_configs("nope");
  ExpectStartError(r, grpc::StatusCode::NOT_FOUND, "configs[0]: config 'nope' not found");
  r = Request("bad");
  r.set_max_attempts(11);
  ExpectStartError(r, grpc::StatusCode::INVALID_ARGUMENT, "max_attempts");
  r = Request("bad");
  r.set_model_revision_id("not-a-uuid");
  ExpectStartError(r, grpc::StatusCode::INVALID_ARGUMENT, "model_revision_id");
  MustStart("taken");
  ExpectStartError(Request("taken"), grpc::StatusCode::ALREADY_EXISTS, "a fine-tuning job named 'taken' exists");
  v1::ListFineTuningJobsRequest list;
  v1::ListFineTuningJobsResponse listed;
  ASSERT_TRUE(env_.jobs()->ListFineTuningJobs(Context().get(), list, &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 1);  // failed Starts stored nothing
}

TEST_F(JobsTest, TheLeaseCarriesAnAlpacaPrompt) {
  v1::AddPromptRequest alpaca;
  alpaca.set_name("alpaca-prompt");
  alpaca.set_dataset("qa");
  alpaca.mutable_alpaca()->set_instruction_column("question");
  alpaca.mutable_alpaca()->set_output_column("answer");
  alpaca.mutable_alpaca()->set_use_chat_template(true);
  v1::AddPromptResponse added;
  ASSERT_TRUE(env_.prompts()->AddPrompt(Context().get(), alpaca, &added).ok());
  v1::StartFineTuningJobRequest r = Request("alpaca-job");
  r.set_prompt("alpaca-prompt");
  v1::FineTuningJob job;
  ASSERT_TRUE(Start(r, &job).ok());
  iv1::LeaseJobResponse leased = Lease("w1");
  ASSERT_TRUE(leased.has_lease());
  const iv1::PromptSpec& prompt = leased.lease().prompt();
  EXPECT_EQ(prompt.mode(), "alpaca");
  EXPECT_EQ(prompt.instruction_column(), "question");
  EXPECT_EQ(prompt.input_column(), "input");  // the default; rows without it have no input
  EXPECT_EQ(prompt.output_column(), "answer");
  EXPECT_TRUE(prompt.use_chat_template());
  EXPECT_EQ(prompt.message_format(), "");
}

TEST_F(JobsTest, WorkerCallsNeedTheToken) {
  iv1::LeaseJobRequest r;
  r.set_worker_id("w");
  iv1::LeaseJobResponse response;
  grpc::Status s = env_.queue()->LeaseJob(WorkerContext("").get(), r, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  s = env_.queue()->LeaseJob(WorkerContext("wrong-token").get(), r, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr(::tuneforge::testing::kTestWorkerToken)));
}

TEST_F(JobsTest, LeaseHeartbeatCompleteRegistersTheAdapterWithLineage) {
  const v1::FineTuningJob job = MustStart("trained");
  iv1::LeaseJobResponse leased = Lease("w1");
  ASSERT_TRUE(leased.has_lease());
  const iv1::JobLease& lease = leased.lease();
  EXPECT_EQ(lease.job_id(), job.id());
  EXPECT_EQ(lease.attempt(), 1);
  EXPECT_EQ(lease.model().type(), "local");
  EXPECT_EQ(lease.dataset().train_files_size(), 1);
  EXPECT_TRUE(lease.dataset().split_generated());
  EXPECT_EQ(lease.prompt().input_template(), "Q: {question}\nA: ");
  EXPECT_EQ(lease.output_dir(), env_.root() + "/artifacts/jobs/" + job.id() + "/adapter");
  EXPECT_FALSE(Lease("w2").has_lease());  // nothing else waits
  EXPECT_EQ(Get(job.id()).state(), v1::JOB_STATE_RUNNING);

  iv1::HeartbeatResponse beat;
  ASSERT_TRUE(Beat(lease, "w1", &beat, 3).ok());
  EXPECT_FALSE(beat.cancel_requested());
  EXPECT_EQ(Get(job.id()).progress().step(), 3);
  EXPECT_DOUBLE_EQ(Get(job.id()).metrics().train_loss(), 2.5);
  // Another worker, or an older attempt, cannot report.
  EXPECT_EQ(Beat(lease, "w2", &beat).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  iv1::JobLease stale = lease;
  stale.set_attempt(0);
  EXPECT_EQ(Beat(stale, "w1", &beat).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  iv1::CompleteJobRequest complete;
  complete.set_job_id(job.id());
  complete.set_attempt(1);
  complete.set_worker_id("w1");
  complete.set_adapter_dir(lease.output_dir());
  iv1::CompleteJobResponse completed;
  // Nothing written yet: the adapter check fails and the job stays RUNNING.
  grpc::Status s = env_.queue()->CompleteJob(WorkerContext().get(), complete, &completed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  EXPECT_EQ(Get(job.id()).state(), v1::JOB_STATE_RUNNING);
  std::filesystem::create_directories(lease.output_dir());
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors"}) {
    std::filesystem::copy_file(::tuneforge::testing::GeneratedReference() + "/llama/lora/" + f,
                               lease.output_dir() + "/" + f);
  }
  complete.set_adapter_dir(env_.root() + "/elsewhere");
  s = env_.queue()->CompleteJob(WorkerContext().get(), complete, &completed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  complete.set_adapter_dir(lease.output_dir());
  s = env_.queue()->CompleteJob(WorkerContext().get(), complete, &completed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const v1::FineTuningJob done = Get(job.id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.adapter_id(), completed.adapter_id());
  EXPECT_TRUE(done.has_end_time());
  v1::GetAdapterRequest get_adapter;
  get_adapter.set_adapter("trained");
  v1::GetAdapterResponse adapter;
  ASSERT_TRUE(env_.adapters()->GetAdapter(Context().get(), get_adapter, &adapter).ok());
  EXPECT_EQ(adapter.adapter().job_id(), job.id());
  EXPECT_EQ(adapter.adapter().source_type(), v1::SOURCE_TYPE_TRAINED);
  EXPECT_EQ(adapter.adapter().model_revision_id(), job.model_revision_id());
  // A finished job takes no more reports.
  EXPECT_EQ(Beat(lease, "w1", &beat).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(JobsTest, CancelQueuedEndsAtOnceAndCancelRunningReachesTheWorker) {
  const v1::FineTuningJob queued = MustStart("queued");
  v1::CancelFineTuningJobRequest cancel;
  cancel.set_job("queued");
  v1::CancelFineTuningJobResponse cancelled;
  ASSERT_TRUE(env_.jobs()->CancelFineTuningJob(Context().get(), cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.job().state(), v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(Lease("w1").has_lease());

  MustStart("running");
  iv1::LeaseJobResponse leased = Lease("w1");
  ASSERT_TRUE(leased.has_lease());
  cancel.set_job("running");
  ASSERT_TRUE(env_.jobs()->CancelFineTuningJob(Context().get(), cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.job().state(), v1::JOB_STATE_CANCELLING);
  iv1::HeartbeatResponse beat;
  ASSERT_TRUE(Beat(leased.lease(), "w1", &beat).ok());
  EXPECT_TRUE(beat.cancel_requested());
  EXPECT_EQ(Fail(leased.lease().job_id(), 1, "w1", "", "", false, true), v1::JOB_STATE_CANCELLED);

  // Removal: only final states.
  MustStart("busy");
  ASSERT_TRUE(Lease("w1").has_lease());
  v1::RemoveFineTuningJobRequest remove;
  v1::RemoveFineTuningJobResponse removed;
  remove.set_job("busy");
  grpc::Status s = env_.jobs()->RemoveFineTuningJob(Context().get(), remove, &removed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("is RUNNING; cancel it"));
  remove.set_job("queued");
  EXPECT_TRUE(env_.jobs()->RemoveFineTuningJob(Context().get(), remove, &removed).ok());
  v1::GetFineTuningJobRequest get;
  get.set_job("queued");
  v1::GetFineTuningJobResponse got;
  EXPECT_EQ(env_.jobs()->GetFineTuningJob(Context().get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(JobsTest, RetryableFailureRequeuesUntilAttemptsRunOut) {
  auto r = Request("flaky");
  r.set_max_attempts(2);
  v1::FineTuningJob job;
  ASSERT_TRUE(Start(r, &job).ok());
  for (int attempt = 1; attempt <= 2; ++attempt) {
    iv1::LeaseJobResponse leased = Lease("w1");
    ASSERT_TRUE(leased.has_lease());
    EXPECT_EQ(leased.lease().attempt(), attempt);
    EXPECT_EQ(Fail(job.id(), attempt, "w1", "UNAVAILABLE", "the hub is down", true, false),
              attempt == 1 ? v1::JOB_STATE_QUEUED : v1::JOB_STATE_FAILED);
  }
  const v1::FineTuningJob failed = Get("flaky");
  EXPECT_EQ(failed.error().code(), "UNAVAILABLE");
  EXPECT_EQ(failed.error().message(), "the hub is down");
  EXPECT_EQ(failed.attempts(), 2);
}

TEST_F(JobsTest, WatchStreamsEveryEventUntilTheFinalState) {
  const v1::FineTuningJob job = MustStart("watched");
  std::vector<v1::WatchFineTuningJobResponse> seen;
  grpc::Status watch_status;
  std::thread watcher([&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::WatchFineTuningJobRequest r;
    r.set_job("watched");
    auto reader = env_.jobs()->WatchFineTuningJob(&context, r);
    v1::WatchFineTuningJobResponse response;
    while (reader->Read(&response)) seen.push_back(response);
    watch_status = reader->Finish();
  });
  iv1::LeaseJobResponse leased = Lease("w1", 5);
  ASSERT_TRUE(leased.has_lease());
  iv1::HeartbeatRequest beat;
  beat.set_job_id(job.id());
  beat.set_attempt(1);
  beat.set_worker_id("w1");
  beat.set_progress_updated(true);
  beat.mutable_progress()->set_step(1);
  auto* log = beat.add_logs();
  log->set_level("info");
  log->set_message("tokenized 18 examples");
  auto* checkpoint = beat.add_checkpoints();
  checkpoint->set_step(1);
  checkpoint->set_epoch(1);
  const std::string checkpoint_path = leased.lease().checkpoint_dir() + "/checkpoint-1";
  checkpoint->set_path(checkpoint_path);
  iv1::HeartbeatResponse beat_response;
  ASSERT_TRUE(env_.queue()->Heartbeat(WorkerContext().get(), beat, &beat_response).ok());
  EXPECT_EQ(Fail(job.id(), 1, "w1", "INVALID_ARGUMENT", "train row 3 has no column 'answer'", false, false),
            v1::JOB_STATE_FAILED);
  watcher.join();
  EXPECT_TRUE(watch_status.ok()) << watch_status.error_message();
  std::vector<std::string> kinds;
  for (const auto& r : seen) kinds.push_back(v1::JobEventKind_Name(r.event().kind()));
  EXPECT_THAT(kinds, ::testing::ElementsAre("JOB_EVENT_KIND_STATE", "JOB_EVENT_KIND_STATE", "JOB_EVENT_KIND_LOG",
                                            "JOB_EVENT_KIND_CHECKPOINT", "JOB_EVENT_KIND_PROGRESS",
                                            "JOB_EVENT_KIND_STATE"));
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[0].event().state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(seen[1].event().state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(seen[2].event().message(), "tokenized 18 examples");
  EXPECT_EQ(seen[4].event().progress().step(), 1);
  EXPECT_EQ(seen[5].event().state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(seen[5].job().error().message(), "train row 3 has no column 'answer'");
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_EQ(seen[i].event().sequence(), seen[i - 1].event().sequence() + 1);

  v1::ListCheckpointsRequest list;
  list.set_job("watched");
  v1::ListCheckpointsResponse checkpoints;
  ASSERT_TRUE(env_.jobs()->ListCheckpoints(Context().get(), list, &checkpoints).ok());
  ASSERT_EQ(checkpoints.checkpoints_size(), 1);
  EXPECT_EQ(checkpoints.checkpoints(0).path(), checkpoint_path);

  // A watch that starts after the end replays from after_sequence and ends at once.
  grpc::ClientContext context;
  v1::WatchFineTuningJobRequest r;
  r.set_job("watched");
  r.set_after_sequence(4);
  auto reader = env_.jobs()->WatchFineTuningJob(&context, r);
  v1::WatchFineTuningJobResponse response;
  int replayed = 0;
  while (reader->Read(&response)) ++replayed;
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(replayed, 2);
}

TEST_F(JobsTest, ListPagesNewestFirstAndFilters) {
  for (int i = 0; i < 5; ++i) MustStart("job-" + std::to_string(i));
  ASSERT_TRUE(Lease("w1").has_lease());  // job-0 runs
  std::vector<std::string> names;
  v1::ListFineTuningJobsRequest r;
  r.set_page_size(2);
  for (int page = 0; page < 5; ++page) {
    v1::ListFineTuningJobsResponse response;
    ASSERT_TRUE(env_.jobs()->ListFineTuningJobs(Context().get(), r, &response).ok());
    for (const auto& j : response.jobs()) names.push_back(j.name());
    if (response.next_page_token().empty()) break;
    r.set_page_token(response.next_page_token());
  }
  EXPECT_THAT(names, ::testing::ElementsAre("job-4", "job-3", "job-2", "job-1", "job-0"));
  // A token that was tampered with is refused, not trusted.
  v1::ListFineTuningJobsRequest tampered;
  tampered.set_page_token(absl::WebSafeBase64Escape("tf1|jobs|not-a-time,not-an-id"));
  v1::ListFineTuningJobsResponse refused;
  grpc::Status s = env_.jobs()->ListFineTuningJobs(Context().get(), tampered, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_token is damaged"));
  v1::ListFineTuningJobsRequest running;
  running.add_states(v1::JOB_STATE_RUNNING);
  running.set_model("tiny-llama");
  v1::ListFineTuningJobsResponse response;
  ASSERT_TRUE(env_.jobs()->ListFineTuningJobs(Context().get(), running, &response).ok());
  ASSERT_EQ(response.jobs_size(), 1);
  EXPECT_EQ(response.jobs(0).name(), "job-0");
  running.set_model("no-such-model");
  EXPECT_EQ(env_.jobs()->ListFineTuningJobs(Context().get(), running, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(JobsTest, ResourcesThatJobsUseCannotBeRemovedUnderThem) {
  const v1::FineTuningJob job = MustStart("user");
  ASSERT_TRUE(Lease("w1").has_lease());
  v1::RemoveModelRequest remove_model;
  remove_model.set_model("tiny-llama");
  remove_model.set_force(true);
  v1::RemoveModelResponse removed_model;
  grpc::Status s = env_.models()->RemoveModel(Context().get(), remove_model, &removed_model);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("is used by fine-tuning job 'user', which is RUNNING; cancel it"));
  v1::RemovePromptRequest remove_prompt;
  remove_prompt.set_prompt("qa-prompt");
  v1::RemovePromptResponse removed_prompt;
  EXPECT_EQ(env_.prompts()->RemovePrompt(Context().get(), remove_prompt, &removed_prompt).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::CancelFineTuningJobRequest cancel;
  cancel.set_job("user");
  v1::CancelFineTuningJobResponse cancelled;
  ASSERT_TRUE(env_.jobs()->CancelFineTuningJob(Context().get(), cancel, &cancelled).ok());
  EXPECT_EQ(Fail(job.id(), 1, "w1", "", "", false, true), v1::JOB_STATE_CANCELLED);
  v1::RemoveDatasetRequest remove_dataset;
  remove_dataset.set_dataset("qa");
  v1::RemoveDatasetResponse removed_dataset;
  s = env_.datasets()->RemoveDataset(Context().get(), remove_dataset, &removed_dataset);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("is used by 1 fine-tuning job (first: 'user'); remove them first"));
  s = env_.models()->RemoveModel(Context().get(), remove_model, &removed_model);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(removed_model.removed_dependents(), ::testing::Contains(HasSubstr("fine-tuning job 'user'")));
  v1::GetFineTuningJobRequest get;
  get.set_job("user");
  v1::GetFineTuningJobResponse got;
  EXPECT_EQ(env_.jobs()->GetFineTuningJob(Context().get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(JobsTest, HeartbeatRefusesACheckpointOutsideTheJobsCheckpointDir) {
  MustStart("beats");
  const iv1::JobLease lease = Lease("w1").lease();
  auto beat_with_checkpoint = [&](const std::string& path) {
    iv1::HeartbeatRequest r;
    r.set_job_id(lease.job_id());
    r.set_attempt(lease.attempt());
    r.set_worker_id("w1");
    auto* c = r.add_checkpoints();
    c->set_step(5);
    c->set_path(path);
    iv1::HeartbeatResponse response;
    return env_.queue()->Heartbeat(WorkerContext().get(), r, &response);
  };
  grpc::Status s = beat_with_checkpoint("/etc/shadow");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("checkpoints[0].path: '/etc/shadow' is outside the job's checkpoint_dir"));
  s = beat_with_checkpoint(lease.checkpoint_dir() + "/../../../../etc/shadow");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("has a '..' component"));
  v1::ListCheckpointsRequest list;
  list.set_job("beats");
  v1::ListCheckpointsResponse listed;
  ASSERT_TRUE(env_.jobs()->ListCheckpoints(Context().get(), list, &listed).ok());
  EXPECT_EQ(listed.checkpoints_size(), 0);
  s = beat_with_checkpoint(lease.checkpoint_dir() + "/step-5");
  EXPECT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(env_.jobs()->ListCheckpoints(Context().get(), list, &listed).ok());
  EXPECT_EQ(listed.checkpoints_size(), 1);
}

TEST_F(JobsTest, LeaseNeverHandsOutFoldersOutsideTheJobsOwn) {
  const v1::FineTuningJob job = MustStart("edited");
  {
    pqxx::connection conn(env_.database_url());
    pqxx::work work(conn);
    work.exec_params("UPDATE fine_tuning_jobs SET output_dir = '/etc/cron.d' WHERE id = $1::uuid", job.id());
    work.commit();
  }
  EXPECT_FALSE(Lease("w1").has_lease());
  const v1::FineTuningJob failed = Get("edited");
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(failed.error().code(), "FAILED_PRECONDITION");
  EXPECT_THAT(failed.error().message(), HasSubstr("is not its own folder in the artifacts directory"));
  // The next job is leased as usual.
  MustStart("fine");
  const iv1::LeaseJobResponse next = Lease("w1");
  ASSERT_TRUE(next.has_lease());
  EXPECT_EQ(next.lease().job_name(), "fine");
  EXPECT_EQ(next.lease().output_dir(), env_.root() + "/artifacts/jobs/" + next.lease().job_id() + "/adapter");
}

TEST_F(JobsTest, AConfigThatJobsUseIsRemovedOnlyWithForce) {
  v1::AddConfigRequest config;
  config.set_name("my-lora");
  config.set_type(v1::CONFIG_TYPE_LORA);
  (*config.mutable_content()->mutable_fields())["r"].set_number_value(4);
  v1::AddConfigResponse added;
  ASSERT_TRUE(env_.configs()->AddConfig(Context().get(), config, &added).ok());
  v1::StartFineTuningJobRequest start = Request("with-config");
  start.add_configs("my-lora");
  v1::FineTuningJob job;
  ASSERT_TRUE(Start(start, &job).ok());

  v1::RemoveConfigRequest remove;
  remove.set_config("my-lora");
  remove.set_force(true);
  v1::RemoveConfigResponse removed;
  grpc::Status s = env_.configs()->RemoveConfig(Context().get(), remove, &removed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(),
              HasSubstr("config 'my-lora' is used by fine-tuning job 'with-config', which is QUEUED; cancel it"));

  v1::CancelFineTuningJobRequest cancel;
  cancel.set_job("with-config");
  v1::CancelFineTuningJobResponse cancelled;
  ASSERT_TRUE(env_.jobs()->CancelFineTuningJob(Context().get(), cancel, &cancelled).ok());
  remove.set_force(false);
  s = env_.configs()->RemoveConfig(Context().get(), remove, &removed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("config 'my-lora' is used by 1 fine-tuning job (first: 'with-config'); "
                                           "remove them first, or pass force=true"));

  remove.set_force(true);
  s = env_.configs()->RemoveConfig(Context().get(), remove, &removed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(removed.removed_dependents(),
              ::testing::ElementsAre("fine-tuning job 'with-config' (" + job.id() + ")"));
  v1::GetFineTuningJobRequest get;
  get.set_job("with-config");
  v1::GetFineTuningJobResponse got;
  EXPECT_EQ(env_.jobs()->GetFineTuningJob(Context().get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

class ShortLeaseJobsTest : public JobsTest {
 protected:
  ShortLeaseJobsTest() : JobsTest(3) {}
};

TEST_F(ShortLeaseJobsTest, AnExpiredLeaseGoesToTheNextWorkerAndFencesTheOldOne) {
  const v1::FineTuningJob job = MustStart("orphan");
  iv1::LeaseJobResponse first = Lease("w1");
  ASSERT_TRUE(first.has_lease());
  EXPECT_FALSE(Lease("w2").has_lease());
  // w1 stops reporting; after the lease runs out w2's long poll takes the job.
  iv1::LeaseJobResponse second = Lease("w2", 10);
  ASSERT_TRUE(second.has_lease());
  EXPECT_EQ(second.lease().attempt(), 2);
  iv1::HeartbeatResponse beat;
  grpc::Status s = Beat(first.lease(), "w1", &beat);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("lease lost"));
  EXPECT_TRUE(Beat(second.lease(), "w2", &beat).ok());
  EXPECT_EQ(Get(job.id()).worker_id(), "w2");
}

}  // namespace
}  // namespace tuneforge
