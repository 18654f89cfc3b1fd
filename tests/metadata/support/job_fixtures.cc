// What a fine-tuning job needs in an end-to-end test: demo data, its model, dataset and prompt, leases, its end.
#include "tests/metadata/support/job_fixtures.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"

namespace tuneforge::testing {
namespace {

::testing::AssertionResult Succeeded(const char* call, const grpc::Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << call << ": " << s.error_code() << " " << s.error_message();
}

::testing::AssertionResult AddModel(MetadataTestEnv& env, const v1::AddModelRequest& request) {
  v1::AddModelResponse response;
  return Succeeded("AddModel", env.models()->AddModel(Context().get(), request, &response));
}

}  // namespace

bool WriteDemoData(const std::string& dir) {
  const std::string command =
      absl::StrCat("python3 ", TUNEFORGE_SOURCE_DIR, "/scripts/make_demo_data.py ", dir, " >/dev/null");
  return std::system(command.c_str()) == 0;
}

std::string CommitDemoToHub(MetadataTestEnv& env, const std::string& demo_dir) {
  const std::string model_sha =
      env.hub().AddCommitFromDir(RepoKind::kModel, "org/demo-llama", demo_dir + "/demo-llama");
  env.hub().AddCommitFromDir(RepoKind::kDataset, "org/demo-instructions", demo_dir + "/demo-instructions");
  return model_sha;
}

::testing::AssertionResult AddLocalModel(MetadataTestEnv& env, const std::string& name, const std::string& dir) {
  v1::AddModelRequest request;
  request.set_name(name);
  request.mutable_local()->set_path(dir);
  return AddModel(env, request);
}

::testing::AssertionResult AddHubModel(MetadataTestEnv& env, const std::string& name, const std::string& repo_id,
                                       const std::string& token) {
  v1::AddModelRequest request;
  request.set_name(name);
  request.mutable_huggingface()->set_repo_id(repo_id);
  if (!token.empty()) request.mutable_huggingface()->set_token(token);
  return AddModel(env, request);
}

::testing::AssertionResult AddDataset(MetadataTestEnv& env, const v1::AddDatasetRequest& request) {
  v1::AddDatasetResponse response;
  return Succeeded("AddDataset", env.datasets()->AddDataset(Context().get(), request, &response));
}

::testing::AssertionResult AddLocalDataset(MetadataTestEnv& env, const std::string& name,
                                           const std::string& train_path) {
  v1::AddDatasetRequest request;
  request.set_name(name);
  request.mutable_local()->set_train_path(train_path);
  return AddDataset(env, request);
}

::testing::AssertionResult AddHubDataset(MetadataTestEnv& env, const std::string& name, const std::string& repo_id) {
  v1::AddDatasetRequest request;
  request.set_name(name);
  request.mutable_huggingface()->set_repo_id(repo_id);
  return AddDataset(env, request);
}

::testing::AssertionResult AddQaPrompt(MetadataTestEnv& env, const std::string& name, const std::string& dataset) {
  v1::AddPromptRequest request;
  request.set_name(name);
  request.set_dataset(dataset);
  request.mutable_template_()->set_input_template("Q: {question}\nA: ");
  request.mutable_template_()->set_completion_template("{answer}");
  v1::AddPromptResponse response;
  return Succeeded("AddPrompt", env.prompts()->AddPrompt(Context().get(), request, &response));
}

::testing::AssertionResult StartJob(MetadataTestEnv& env, const v1::StartFineTuningJobRequest& request) {
  v1::StartFineTuningJobResponse response;
  return Succeeded("StartFineTuningJob", env.jobs()->StartFineTuningJob(Context().get(), request, &response));
}

v1::StartFineTuningJobRequest ShortQaJob(const std::string& name, const std::string& model, const std::string& dataset,
                                         int max_steps) {
  v1::StartFineTuningJobRequest request;
  request.set_name(name);
  request.set_model(model);
  request.set_dataset(dataset);
  request.set_prompt("qa");
  auto& training = *request.mutable_training()->mutable_fields();
  training["max_steps"].set_number_value(max_steps);
  training["per_device_batch_size"].set_number_value(4);
  training["max_seq_len"].set_number_value(64);
  training["dtype"].set_string_value("fp32");
  return request;
}

std::unique_ptr<grpc::ClientContext> WorkerContext(const std::string& token) {
  auto context = Context();
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

internal::v1::LeaseJobResponse LeaseJob(MetadataTestEnv& env, const std::string& worker_id, int wait_seconds) {
  internal::v1::LeaseJobRequest request;
  request.set_worker_id(worker_id);
  request.set_wait_seconds(wait_seconds);
  internal::v1::LeaseJobResponse response;
  const grpc::Status s = env.queue()->LeaseJob(WorkerContext().get(), request, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return response;
}

v1::FineTuningJob WaitForJobEnd(MetadataTestEnv& env, const std::string& name) {
  v1::FineTuningJob job;
  for (int i = 0; i < 1200; ++i) {
    v1::GetFineTuningJobRequest request;
    request.set_job(name);
    v1::GetFineTuningJobResponse response;
    if (env.jobs()->GetFineTuningJob(Context().get(), request, &response).ok()) {
      job = response.job();
      if (job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_FAILED ||
          job.state() == v1::JOB_STATE_CANCELLED) {
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return job;
}

}  // namespace tuneforge::testing
