// The trainer's metrics: how progress reports, downloads and job ends show on /metrics, and a real worker running a
// Hub job against the metadata service and the fake Hub, its endpoint scraped over HTTP afterwards.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/metrics.h"
#include "services/trainer/worker/trainer_metrics.h"
#include "services/trainer/worker/worker.h"
#include "tests/metadata/support/metadata_test_env.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::tuneforge::testing::Context;
using ::tuneforge::testing::MetadataTestEnv;
using ::tuneforge::testing::ScratchDir;

// The value of the series written exactly as `series`, or NaN when there is no such line.
double Value(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::strtod(std::string(line.substr(series.size() + 1)).c_str(), nullptr);
    }
  }
  return NAN;
}

TEST(TrainerMetricsTest, ProgressReportsDownloadsAndJobEndsShowOnTheRegistry) {
  MetricsRegistry registry;
  TrainerMetrics metrics(registry);
  std::string text = registry.Render();
  EXPECT_EQ(Value(text, "tuneforge_trainer_step_seconds_count"), 0) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_download_bytes_total"), 0) << text;
  for (const char* outcome : {"succeeded", "failed", "cancelled", "interrupted", "lease_lost"}) {
    EXPECT_EQ(Value(text, std::string("tuneforge_trainer_jobs_total{outcome=\"") + outcome + "\"}"), 0) << text;
  }
  EXPECT_THAT(text, Not(HasSubstr("\ntuneforge_trainer_device_memory_bytes ")));

  FineTuneProgress p;
  p.step = 4;
  p.loss = 2.5;
  p.tokens_per_second = 1200;
  p.step_seconds = 0.2;
  p.report_steps = 4;
  metrics.RecordProgress(p);  // on the CPU: no device memory
  text = registry.Render();
  EXPECT_EQ(Value(text, "tuneforge_trainer_step_seconds_count"), 4) << text;
  EXPECT_DOUBLE_EQ(Value(text, "tuneforge_trainer_step_seconds_sum"), 0.8) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_step_seconds_bucket{le=\"0.1\"}"), 0) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_step_seconds_bucket{le=\"0.25\"}"), 4) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_loss"), 2.5) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_tokens_per_second"), 1200) << text;
  EXPECT_THAT(text, Not(HasSubstr("\ntuneforge_trainer_device_memory_bytes ")));

  p.step = 6;
  p.loss = 1.75;
  p.step_seconds = 3;
  p.report_steps = 2;
  p.peak_device_memory_bytes = int64_t{3} << 30;
  metrics.RecordProgress(p);
  metrics.AddDownloadedBytes(1000);
  metrics.AddDownloadedBytes(24);
  metrics.RecordJobEnd("succeeded");
  metrics.RecordJobEnd("interrupted");
  metrics.RecordJobEnd("succeeded");
  text = registry.Render();
  EXPECT_EQ(Value(text, "tuneforge_trainer_step_seconds_count"), 6) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_step_seconds_bucket{le=\"2.5\"}"), 4) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_step_seconds_bucket{le=\"5\"}"), 6) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_loss"), 1.75) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_device_memory_bytes"), 3221225472) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_download_bytes_total"), 1024) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_jobs_total{outcome=\"succeeded\"}"), 2) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_jobs_total{outcome=\"interrupted\"}"), 1) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_jobs_total{outcome=\"failed\"}"), 0) << text;
}

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

TEST(WorkerMetricsTest, AHubJobUpdatesTheTrainersMetrics) {
  MetadataTestEnv env;
  ScratchDir demo("tuneforge-demo");
  ASSERT_EQ(std::system(("python3 " + std::string(TUNEFORGE_SOURCE_DIR) + "/scripts/make_demo_data.py " +
                         demo.path() + " >/dev/null")
                            .c_str()),
            0);
  env.hub().AddCommitFromDir(RepoKind::kModel, "org/demo-llama", demo.path() + "/demo-llama");
  env.hub().AddCommitFromDir(RepoKind::kDataset, "org/demo-instructions", demo.path() + "/demo-instructions");
  v1::AddModelRequest model;
  model.set_name("hub-llama");
  model.mutable_huggingface()->set_repo_id("org/demo-llama");
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
  start.set_name("measured");
  start.set_model("hub-llama");
  start.set_dataset("hub-instructions");
  start.set_prompt("qa");
  auto& training = *start.mutable_training()->mutable_fields();
  training["max_steps"].set_number_value(5);
  training["logging_steps"].set_number_value(2);
  training["per_device_batch_size"].set_number_value(4);
  training["max_seq_len"].set_number_value(64);
  training["dtype"].set_string_value("fp32");
  v1::StartFineTuningJobResponse started;
  s = env.jobs()->StartFineTuningJob(Context().get(), start, &started);
  ASSERT_TRUE(s.ok()) << s.error_message();

  MetricsRegistry registry;
  TrainerMetrics metrics(registry);
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server = MetricsHttpServer::Start("127.0.0.1", 0, registry);
  ASSERT_TRUE(server.ok()) << server.status();
  ScratchDir cache("tuneforge-cache");
  HubClientOptions hub_options;
  hub_options.endpoint = env.hub().endpoint();
  HubClient hub(hub_options);
  WorkerOptions options;
  options.metadata_address = env.address();
  options.worker_id = "measured-trainer";
  options.worker_token = ::tuneforge::testing::kTestWorkerToken;
  options.runner.hub = &hub;
  options.runner.threads = 1;
  options.runner.cache_dir = cache.path();
  options.runner.artifacts_dir = env.root() + "/artifacts";
  options.runner.metrics = &metrics;
  options.lease_wait_seconds = 1;
  Worker worker(options);
  std::atomic<bool> stop{false};
  std::thread runner([&] { worker.Run(stop); });
  const v1::FineTuningJob job = WaitForEnd(env, "measured");
  stop = true;
  worker.Interrupt();
  runner.join();
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error().code() << ": " << job.error().message();

  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result scraped = client.Get("/metrics");
  ASSERT_TRUE(scraped);
  ASSERT_EQ(scraped->status, 200);
  const std::string& text = scraped->body;
  // Every step is timed once, across the reports at steps 2, 4 and 5.
  EXPECT_EQ(Value(text, "tuneforge_trainer_step_seconds_count"), 5) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_step_seconds_bucket{le=\"+Inf\"}"), 5) << text;
  EXPECT_GT(Value(text, "tuneforge_trainer_step_seconds_sum"), 0) << text;
  EXPECT_GT(Value(text, "tuneforge_trainer_tokens_per_second"), 0) << text;
  EXPECT_GT(Value(text, "tuneforge_trainer_loss"), 0) << text;
  EXPECT_NEAR(Value(text, "tuneforge_trainer_loss"), job.metrics().train_loss(), 1e-6) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_jobs_total{outcome=\"succeeded\"}"), 1) << text;
  EXPECT_EQ(Value(text, "tuneforge_trainer_jobs_total{outcome=\"failed\"}"), 0) << text;
  // Downloads: every byte of both snapshots came from the Hub once.
  int64_t snapshot_bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(cache.path())) {
    if (entry.is_symlink() && entry.path().string().find("/snapshots/") != std::string::npos) {
      snapshot_bytes += static_cast<int64_t>(std::filesystem::file_size(entry.path()));
    }
  }
  EXPECT_GT(snapshot_bytes, 0);
  EXPECT_EQ(Value(text, "tuneforge_trainer_download_bytes_total"), snapshot_bytes) << text;
}

}  // namespace
}  // namespace tuneforge
