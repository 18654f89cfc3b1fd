// A trainer worker against the real metadata service and the fake Hub: a job whose model and dataset live on the
// Hub downloads them into the Hugging Face cache (a transfer cut mid-file resumes with Range, no corrupt blob is
// left), trains, and registers its adapter; the Hub token reaches the Hub and no job record.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/sha256.h"
#include "services/trainer/worker/worker.h"
#include "tests/metadata/support/metadata_test_env.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::Context;
using ::tuneforge::testing::MetadataTestEnv;
using ::tuneforge::testing::ScratchDir;

constexpr char kHubToken[] = "hf_test-token-for-the-fake-hub";

v1::FineTuningJob WaitForEnd(MetadataTestEnv& env, const std::string& name) {
  v1::FineTuningJob job;
  for (int i = 0; i < 1200; ++i) {
    v1::GetFineTuningJobRequest r;
    r.set_job(name);
    v1::GetFineTuningJobResponse response;
    if (env.jobs()->GetFineTuningJob(Context().get(), r, &response).ok()) {
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

TEST(WorkerHubTest, HubModelAndDatasetAreDownloadedResumedAndTrained) {
  MetadataTestEnv env;
  ScratchDir demo("tuneforge-demo");
  ASSERT_EQ(std::system(("python3 " + std::string(TUNEFORGE_SOURCE_DIR) + "/scripts/make_demo_data.py " + demo.path() +
                         " >/dev/null")
                            .c_str()),
            0);
  env.hub().AllowToken(kHubToken);
  const std::string model_sha = env.hub().AddCommitFromDir(RepoKind::kModel, "org/demo-llama", demo.path() + "/demo-llama");
  env.hub().AddCommitFromDir(RepoKind::kDataset, "org/demo-instructions", demo.path() + "/demo-instructions");
  env.hub().SetPrivate("org/demo-llama", true);

  v1::AddModelRequest model;
  model.set_name("hub-llama");
  model.mutable_huggingface()->set_repo_id("org/demo-llama");
  model.mutable_huggingface()->set_token(kHubToken);
  v1::AddModelResponse model_added;
  grpc::Status s = env.models()->AddModel(Context().get(), model, &model_added);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::AddDatasetRequest dataset;
  dataset.set_name("hub-instructions");
  dataset.mutable_huggingface()->set_repo_id("org/demo-instructions");
  v1::AddDatasetResponse dataset_added;
  s = env.datasets()->AddDataset(Context().get(), dataset, &dataset_added);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::AddPromptRequest prompt;
  prompt.set_name("qa");
  prompt.set_dataset("hub-instructions");
  prompt.mutable_template_()->set_input_template("Q: {question}\nA: ");
  prompt.mutable_template_()->set_completion_template("{answer}");
  v1::AddPromptResponse prompt_added;
  s = env.prompts()->AddPrompt(Context().get(), prompt, &prompt_added);
  ASSERT_TRUE(s.ok()) << s.error_message();

  v1::StartFineTuningJobRequest start;
  start.set_name("from-hub");
  start.set_model("hub-llama");
  start.set_dataset("hub-instructions");
  start.set_prompt("qa");
  auto& training = *start.mutable_training()->mutable_fields();
  training["max_steps"].set_number_value(6);
  training["per_device_batch_size"].set_number_value(4);
  training["max_seq_len"].set_number_value(64);
  training["dtype"].set_string_value("fp32");
  training["learning_rate"].set_number_value(0.005);
  v1::StartFineTuningJobResponse started;
  s = env.jobs()->StartFineTuningJob(Context().get(), start, &started);
  ASSERT_TRUE(s.ok()) << s.error_message();

  // The first file transfer is cut after 100 bytes (every file of the repo is larger).
  env.hub().DropNextBodies(1, 100);
  ScratchDir cache("tuneforge-cache");
  HubClientOptions hub_options;
  hub_options.endpoint = env.hub().endpoint();
  hub_options.initial_backoff = std::chrono::milliseconds(10);
  HubClient hub(hub_options);
  WorkerOptions options;
  options.metadata_address = env.address();
  options.worker_id = "test-trainer";
  options.worker_token = ::tuneforge::testing::kTestWorkerToken;
  options.runner.hub = &hub;
  options.runner.hf_token = kHubToken;
  options.runner.cache_dir = cache.path();
  options.runner.threads = 1;
  options.lease_wait_seconds = 1;
  Worker worker(options);
  std::atomic<bool> stop{false};
  std::thread runner([&] { worker.Run(stop); });
  const v1::FineTuningJob job = WaitForEnd(env, "from-hub");
  stop = true;
  worker.Interrupt();
  runner.join();

  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error().code() << ": " << job.error().message();
  EXPECT_EQ(job.progress().step(), 6);
  EXPECT_FALSE(job.adapter_id().empty());
  // The cache holds the pinned snapshot, every blob whole, nothing incomplete.
  const std::string repo = cache.path() + "/models--org--demo-llama";
  EXPECT_TRUE(std::filesystem::is_symlink(repo + "/snapshots/" + model_sha + "/model.safetensors"));
  int blobs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(repo + "/blobs")) {
    EXPECT_EQ(entry.path().extension(), "") << entry.path();  // no .incomplete left
    ++blobs;
  }
  EXPECT_EQ(blobs, 4);  // config.json, model.safetensors, tokenizer.json, tokenizer_config.json
  auto weights_sha = Sha256File(repo + "/snapshots/" + model_sha + "/model.safetensors");
  ASSERT_TRUE(weights_sha.ok());
  auto source_sha = Sha256File(demo.path() + "/demo-llama/model.safetensors");
  ASSERT_TRUE(source_sha.ok());
  EXPECT_EQ(*weights_sha, *source_sha);
  EXPECT_FALSE(env.hub().range_requests().empty()) << "the cut download was not resumed with a Range request";
  EXPECT_TRUE(std::filesystem::exists(cache.path() + "/datasets--org--demo-instructions"));
  // The token went to the Hub as a Bearer header and into no job record.
  bool sent = false;
  for (const std::string& h : env.hub().authorization_headers()) sent |= h == std::string("Bearer ") + kHubToken;
  EXPECT_TRUE(sent);
  EXPECT_THAT(job.DebugString(), ::testing::Not(HasSubstr(kHubToken)));
}

}  // namespace
}  // namespace tuneforge
