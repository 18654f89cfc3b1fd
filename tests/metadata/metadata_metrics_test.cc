// The metadata service's /metrics endpoint scraped over HTTP while real RPCs run: requests and durations by method
// and code (a failing call included), jobs by state and the queue depth from the database, lease expiries when a
// trainer stops reporting, and 404 beside /metrics.
#include <httplib.h>

#include <cmath>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/metadata/support/job_fixtures.h"
#include "tests/metadata/support/metadata_test_env.h"
#include "tests/metadata/support/metrics_scrape.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::AddLocalDataset;
using ::tuneforge::testing::AddLocalModel;
using ::tuneforge::testing::AddQaPrompt;
using ::tuneforge::testing::Context;
using ::tuneforge::testing::ExpectMetricValues;
using ::tuneforge::testing::LeaseJob;
using ::tuneforge::testing::MetadataTestEnv;
using ::tuneforge::testing::MetricValue;
using ::tuneforge::testing::ScrapeMetrics;
using ::tuneforge::testing::StartJob;
using ::tuneforge::testing::WriteDemoData;

std::string Rpc(const std::string& method, const std::string& code) {
  return absl::StrCat("method=\"", method, "\",code=\"", code, "\"");
}

// The series counting `method`'s calls that ended with `code`.
std::string Requests(const std::string& method, const std::string& code) {
  return absl::StrCat("tuneforge_rpc_requests_total{", Rpc(method, code), "}");
}

TEST(MetadataMetricsTest, RpcsJobsAndLeaseExpiriesAreCountedAndScraped) {
  MetadataTestEnv env(/*lease_seconds=*/1);
  ASSERT_GT(env.metrics_port(), 0);
  std::string text = ScrapeMetrics(env.metrics_port());
  for (const char* state : {"QUEUED", "RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"}) {
    EXPECT_EQ(MetricValue(text, absl::StrCat("tuneforge_jobs{state=\"", state, "\"}")), 0) << state << "\n" << text;
  }
  ExpectMetricValues(text, {{"tuneforge_job_queue_depth", 0}, {"tuneforge_job_lease_expiries_total", 0}});
  EXPECT_THAT(text, HasSubstr("# TYPE tuneforge_rpc_requests_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE tuneforge_rpc_duration_seconds histogram\n"));

  // Two calls that succeed and one that fails.
  for (int i = 0; i < 2; ++i) {
    v1::ListModelsRequest list;
    v1::ListModelsResponse listed;
    ASSERT_TRUE(env.models()->ListModels(Context().get(), list, &listed).ok());
  }
  v1::GetModelRequest get;
  get.set_model("no-such-model");
  v1::GetModelResponse got;
  ASSERT_EQ(env.models()->GetModel(Context().get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);

  text = ScrapeMetrics(env.metrics_port());
  const std::string list_ok = Rpc("/tuneforge.v1.Models/ListModels", "OK");
  const std::string get_missing = Rpc("/tuneforge.v1.Models/GetModel", "NOT_FOUND");
  ExpectMetricValues(text, {{"tuneforge_rpc_requests_total{" + list_ok + "}", 2},
                            {"tuneforge_rpc_requests_total{" + get_missing + "}", 1},
                            {"tuneforge_rpc_duration_seconds_count{" + list_ok + "}", 2},
                            {"tuneforge_rpc_duration_seconds_bucket{" + list_ok + ",le=\"+Inf\"}", 2},
                            {"tuneforge_rpc_duration_seconds_count{" + get_missing + "}", 1}});
  EXPECT_TRUE(std::isnan(MetricValue(text, Requests("/tuneforge.v1.Models/GetModel", "OK"))));
  EXPECT_GT(MetricValue(text, "tuneforge_rpc_duration_seconds_sum{" + list_ok + "}"), 0) << text;

  // A job: QUEUED until a trainer leases it, then RUNNING.
  ASSERT_TRUE(WriteDemoData(env.root() + "/demo"));
  ASSERT_TRUE(AddLocalModel(env, "demo-llama", env.root() + "/demo/demo-llama"));
  ASSERT_TRUE(AddLocalDataset(env, "demo-instructions", env.root() + "/demo/demo-instructions/train.jsonl"));
  ASSERT_TRUE(AddQaPrompt(env, "qa", "demo-instructions"));
  v1::StartFineTuningJobRequest start;
  start.set_name("watched");
  start.set_model("demo-llama");
  start.set_dataset("demo-instructions");
  start.set_prompt("qa");
  start.set_max_attempts(2);
  ASSERT_TRUE(StartJob(env, start));

  ExpectMetricValues(ScrapeMetrics(env.metrics_port()),
                     {{"tuneforge_jobs{state=\"QUEUED\"}", 1},
                      {"tuneforge_jobs{state=\"RUNNING\"}", 0},
                      {"tuneforge_job_queue_depth", 1},
                      {Requests("/tuneforge.v1.FineTuningJobs/StartFineTuningJob", "OK"), 1}});

  ASSERT_TRUE(LeaseJob(env, "w1", 0).has_lease());
  ExpectMetricValues(ScrapeMetrics(env.metrics_port()), {{"tuneforge_jobs{state=\"QUEUED\"}", 0},
                                                         {"tuneforge_jobs{state=\"RUNNING\"}", 1},
                                                         {"tuneforge_job_queue_depth", 0},
                                                         {"tuneforge_job_lease_expiries_total", 0}});

  // w1 stops reporting: its lease runs out and w2 takes the job (attempt 2 of 2); then w2 stops too, and the next
  // lease call ends the job FAILED. Each is one expired lease.
  const internal::v1::LeaseJobResponse second = LeaseJob(env, "w2", 10);
  ASSERT_TRUE(second.has_lease());
  EXPECT_EQ(second.lease().attempt(), 2);
  EXPECT_EQ(MetricValue(ScrapeMetrics(env.metrics_port()), "tuneforge_job_lease_expiries_total"), 1);
  EXPECT_FALSE(LeaseJob(env, "w3", 4).has_lease());
  ExpectMetricValues(ScrapeMetrics(env.metrics_port()),
                     {{"tuneforge_job_lease_expiries_total", 2},
                      {"tuneforge_jobs{state=\"RUNNING\"}", 0},
                      {"tuneforge_jobs{state=\"FAILED\"}", 1},
                      {Requests("/tuneforge.internal.v1.WorkerQueue/LeaseJob", "OK"), 3}});

  // Only /metrics is served.
  httplib::Client client("127.0.0.1", env.metrics_port());
  for (const char* path : {"/", "/metricsx"}) {
    httplib::Result other = client.Get(path);
    ASSERT_TRUE(other) << path;
    EXPECT_EQ(other->status, 404) << path;
  }
}

}  // namespace
}  // namespace tuneforge
