// The trainer's metrics: how progress reports, downloads and job ends show on /metrics, and a real worker running a
// Hub job against the metadata service and the fake Hub, its endpoint scraped over HTTP afterwards.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/metrics.h"
#include "services/trainer/worker/trainer_metrics.h"
#include "tests/metadata/support/job_fixtures.h"
#include "tests/metadata/support/metadata_test_env.h"
#include "tests/metadata/support/metrics_scrape.h"
#include "tests/trainer/support/worker_run.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::tuneforge::testing::AddHubDataset;
using ::tuneforge::testing::AddHubModel;
using ::tuneforge::testing::AddQaPrompt;
using ::tuneforge::testing::CommitDemoToHub;
using ::tuneforge::testing::ExpectMetricValues;
using ::tuneforge::testing::FakeHubClientOptions;
using ::tuneforge::testing::MetadataTestEnv;
using ::tuneforge::testing::MetricValue;
using ::tuneforge::testing::RunUntilEnd;
using ::tuneforge::testing::ScrapeMetrics;
using ::tuneforge::testing::ScratchDir;
using ::tuneforge::testing::ShortQaJob;
using ::tuneforge::testing::StartJob;
using ::tuneforge::testing::TestWorkerOptions;
using ::tuneforge::testing::WriteDemoData;

TEST(TrainerMetricsTest, ProgressReportsDownloadsAndJobEndsShowOnTheRegistry) {
  MetricsRegistry registry;
  TrainerMetrics metrics(registry);
  std::string text = registry.Render();
  ExpectMetricValues(text, {{"tuneforge_trainer_step_seconds_count", 0},
                            {"tuneforge_trainer_download_bytes_total", 0}});
  for (const char* outcome : {"succeeded", "failed", "cancelled", "interrupted", "lease_lost"}) {
    EXPECT_EQ(MetricValue(text, std::string("tuneforge_trainer_jobs_total{outcome=\"") + outcome + "\"}"), 0) << text;
  }
  EXPECT_THAT(text, Not(HasSubstr("\ntuneforge_trainer_device_memory_bytes ")));

  FineTuneProgress p;
  p.step = 4;
  p.loss = 2.5;
  p.tokens_per_second = 1200;
  p.step_seconds = 0.2;
  p.report_steps = 4;
  metrics.RecordProgress(p);  // no memory figure: none exported
  text = registry.Render();
  EXPECT_DOUBLE_EQ(MetricValue(text, "tuneforge_trainer_step_seconds_sum"), 0.8) << text;
  ExpectMetricValues(text, {{"tuneforge_trainer_step_seconds_count", 4},
                            {"tuneforge_trainer_step_seconds_bucket{le=\"0.1\"}", 0},
                            {"tuneforge_trainer_step_seconds_bucket{le=\"0.25\"}", 4},
                            {"tuneforge_trainer_loss", 2.5},
                            {"tuneforge_trainer_tokens_per_second", 1200}});
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
  ExpectMetricValues(registry.Render(), {{"tuneforge_trainer_step_seconds_count", 6},
                                         {"tuneforge_trainer_step_seconds_bucket{le=\"2.5\"}", 4},
                                         {"tuneforge_trainer_step_seconds_bucket{le=\"5\"}", 6},
                                         {"tuneforge_trainer_loss", 1.75},
                                         {"tuneforge_trainer_device_memory_bytes", 3221225472},
                                         {"tuneforge_trainer_download_bytes_total", 1024},
                                         {"tuneforge_trainer_jobs_total{outcome=\"succeeded\"}", 2},
                                         {"tuneforge_trainer_jobs_total{outcome=\"interrupted\"}", 1},
                                         {"tuneforge_trainer_jobs_total{outcome=\"failed\"}", 0}});
}

TEST(WorkerMetricsTest, AHubJobUpdatesTheTrainersMetrics) {
  MetadataTestEnv env;
  ScratchDir demo("tuneforge-demo");
  ASSERT_TRUE(WriteDemoData(demo.path()));
  CommitDemoToHub(env, demo.path());
  ASSERT_TRUE(AddHubModel(env, "hub-llama", "org/demo-llama"));
  ASSERT_TRUE(AddHubDataset(env, "hub-instructions", "org/demo-instructions"));
  ASSERT_TRUE(AddQaPrompt(env, "qa", "hub-instructions"));
  v1::StartFineTuningJobRequest start = ShortQaJob("measured", "hub-llama", "hub-instructions", /*max_steps=*/5);
  (*start.mutable_training()->mutable_fields())["logging_steps"].set_number_value(2);
  ASSERT_TRUE(StartJob(env, start));

  MetricsRegistry registry;
  TrainerMetrics metrics(registry);
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server = MetricsHttpServer::Start("127.0.0.1", 0, registry);
  ASSERT_TRUE(server.ok()) << server.status();
  ScratchDir cache("tuneforge-cache");
  HubClient hub(FakeHubClientOptions(env));
  WorkerOptions options = TestWorkerOptions(env, hub, cache.path());
  options.worker_id = "measured-trainer";
  options.runner.metrics = &metrics;
  const v1::FineTuningJob job = RunUntilEnd(env, options, "measured");
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error().code() << ": " << job.error().message();

  const std::string text = ScrapeMetrics((*server)->port());
  // Every step is timed once, across the reports at steps 2, 4 and 5.
  ExpectMetricValues(text, {{"tuneforge_trainer_step_seconds_count", 5},
                            {"tuneforge_trainer_step_seconds_bucket{le=\"+Inf\"}", 5},
                            {"tuneforge_trainer_jobs_total{outcome=\"succeeded\"}", 1},
                            {"tuneforge_trainer_jobs_total{outcome=\"failed\"}", 0}});
  EXPECT_GT(MetricValue(text, "tuneforge_trainer_step_seconds_sum"), 0) << text;
  EXPECT_GT(MetricValue(text, "tuneforge_trainer_tokens_per_second"), 0) << text;
  EXPECT_GT(MetricValue(text, "tuneforge_trainer_loss"), 0) << text;
  EXPECT_NEAR(MetricValue(text, "tuneforge_trainer_loss"), job.metrics().train_loss(), 1e-6) << text;
  // Downloads: every byte of both snapshots came from the Hub once.
  int64_t snapshot_bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(cache.path())) {
    if (entry.is_symlink() && entry.path().string().find("/snapshots/") != std::string::npos) {
      snapshot_bytes += static_cast<int64_t>(std::filesystem::file_size(entry.path()));
    }
  }
  EXPECT_GT(snapshot_bytes, 0);
  EXPECT_EQ(MetricValue(text, "tuneforge_trainer_download_bytes_total"), snapshot_bytes) << text;
}

}  // namespace
}  // namespace tuneforge
