// The metadata service's /metrics endpoint scraped over HTTP while real RPCs run: requests and durations by method
// and code (a failing call included), jobs by state and the queue depth from the database, lease expiries when a
// trainer stops reporting, and 404 beside /metrics.
#include <httplib.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/metadata/support/metadata_test_env.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::Context;
using ::tuneforge::testing::MetadataTestEnv;
namespace iv1 = ::tuneforge::internal::v1;

std::string Scrape(const MetadataTestEnv& env) {
  httplib::Client client("127.0.0.1", env.metrics_port());
  httplib::Result response = client.Get("/metrics");
  EXPECT_TRUE(response) << "no answer from /metrics";
  if (!response) return "";
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  return response->body;
}

// The value of the series written exactly as `series` (name and labels), or NaN when the scrape has no such line.
double Value(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::strtod(std::string(line.substr(series.size() + 1)).c_str(), nullptr);
    }
  }
  return NAN;
}

std::string Rpc(const std::string& method, const std::string& code) {
  return absl::StrCat("method=\"", method, "\",code=\"", code, "\"");
}

std::unique_ptr<grpc::ClientContext> WorkerContext() {
  auto context = Context();
  context->AddMetadata("authorization", absl::StrCat("Bearer ", ::tuneforge::testing::kTestWorkerToken));
  return context;
}

iv1::LeaseJobResponse Lease(MetadataTestEnv& env, const std::string& worker, int wait_seconds) {
  iv1::LeaseJobRequest request;
  request.set_worker_id(worker);
  request.set_wait_seconds(wait_seconds);
  iv1::LeaseJobResponse response;
  const grpc::Status s = env.queue()->LeaseJob(WorkerContext().get(), request, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return response;
}

TEST(MetadataMetricsTest, RpcsJobsAndLeaseExpiriesAreCountedAndScraped) {
  MetadataTestEnv env(/*lease_seconds=*/1);
  ASSERT_GT(env.metrics_port(), 0);
  std::string text = Scrape(env);
  for (const char* state : {"QUEUED", "RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"}) {
    EXPECT_EQ(Value(text, absl::StrCat("tuneforge_jobs{state=\"", state, "\"}")), 0) << state << "\n" << text;
  }
  EXPECT_EQ(Value(text, "tuneforge_job_queue_depth"), 0) << text;
  EXPECT_EQ(Value(text, "tuneforge_job_lease_expiries_total"), 0) << text;
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

  text = Scrape(env);
  const std::string list_ok = Rpc("/tuneforge.v1.Models/ListModels", "OK");
  const std::string get_missing = Rpc("/tuneforge.v1.Models/GetModel", "NOT_FOUND");
  EXPECT_EQ(Value(text, "tuneforge_rpc_requests_total{" + list_ok + "}"), 2) << text;
  EXPECT_EQ(Value(text, "tuneforge_rpc_requests_total{" + get_missing + "}"), 1) << text;
  EXPECT_TRUE(std::isnan(Value(text, "tuneforge_rpc_requests_total{" + Rpc("/tuneforge.v1.Models/GetModel", "OK") + "}")));
  EXPECT_EQ(Value(text, "tuneforge_rpc_duration_seconds_count{" + list_ok + "}"), 2) << text;
  EXPECT_EQ(Value(text, "tuneforge_rpc_duration_seconds_bucket{" + list_ok + ",le=\"+Inf\"}"), 2) << text;
  EXPECT_EQ(Value(text, "tuneforge_rpc_duration_seconds_count{" + get_missing + "}"), 1) << text;
  EXPECT_GT(Value(text, "tuneforge_rpc_duration_seconds_sum{" + list_ok + "}"), 0) << text;

  // A job: QUEUED until a trainer leases it, then RUNNING.
  ASSERT_EQ(std::system(("python3 " + std::string(TUNEFORGE_SOURCE_DIR) + "/scripts/make_demo_data.py " +
                         env.root() + "/demo >/dev/null")
                            .c_str()),
            0);
  v1::AddModelRequest model;
  model.set_name("demo-llama");
  model.mutable_local()->set_path(env.root() + "/demo/demo-llama");
  v1::AddModelResponse model_added;
  grpc::Status s = env.models()->AddModel(Context().get(), model, &model_added);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::AddDatasetRequest dataset;
  dataset.set_name("demo-instructions");
  dataset.mutable_local()->set_train_path(env.root() + "/demo/demo-instructions/train.jsonl");
  v1::AddDatasetResponse dataset_added;
  s = env.datasets()->AddDataset(Context().get(), dataset, &dataset_added);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::AddPromptRequest prompt;
  prompt.set_name("qa");
  prompt.set_dataset("demo-instructions");
  prompt.mutable_template_()->set_input_template("Q: {question}\nA: ");
  prompt.mutable_template_()->set_completion_template("{answer}");
  v1::AddPromptResponse prompt_added;
  s = env.prompts()->AddPrompt(Context().get(), prompt, &prompt_added);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::StartFineTuningJobRequest start;
  start.set_name("watched");
  start.set_model("demo-llama");
  start.set_dataset("demo-instructions");
  start.set_prompt("qa");
  start.set_max_attempts(2);
  v1::StartFineTuningJobResponse started;
  s = env.jobs()->StartFineTuningJob(Context().get(), start, &started);
  ASSERT_TRUE(s.ok()) << s.error_message();

  text = Scrape(env);
  EXPECT_EQ(Value(text, "tuneforge_jobs{state=\"QUEUED\"}"), 1) << text;
  EXPECT_EQ(Value(text, "tuneforge_jobs{state=\"RUNNING\"}"), 0) << text;
  EXPECT_EQ(Value(text, "tuneforge_job_queue_depth"), 1) << text;
  EXPECT_EQ(Value(text, "tuneforge_rpc_requests_total{" + Rpc("/tuneforge.v1.FineTuningJobs/StartFineTuningJob", "OK") +
                            "}"),
            1)
      << text;

  ASSERT_TRUE(Lease(env, "w1", 0).has_lease());
  text = Scrape(env);
  EXPECT_EQ(Value(text, "tuneforge_jobs{state=\"QUEUED\"}"), 0) << text;
  EXPECT_EQ(Value(text, "tuneforge_jobs{state=\"RUNNING\"}"), 1) << text;
  EXPECT_EQ(Value(text, "tuneforge_job_queue_depth"), 0) << text;
  EXPECT_EQ(Value(text, "tuneforge_job_lease_expiries_total"), 0) << text;

  // w1 stops reporting: its lease runs out and w2 takes the job (attempt 2 of 2); then w2 stops too, and the next
  // lease call ends the job FAILED. Each is one expired lease.
  const iv1::LeaseJobResponse second = Lease(env, "w2", 10);
  ASSERT_TRUE(second.has_lease());
  EXPECT_EQ(second.lease().attempt(), 2);
  EXPECT_EQ(Value(Scrape(env), "tuneforge_job_lease_expiries_total"), 1);
  EXPECT_FALSE(Lease(env, "w3", 4).has_lease());
  text = Scrape(env);
  EXPECT_EQ(Value(text, "tuneforge_job_lease_expiries_total"), 2) << text;
  EXPECT_EQ(Value(text, "tuneforge_jobs{state=\"RUNNING\"}"), 0) << text;
  EXPECT_EQ(Value(text, "tuneforge_jobs{state=\"FAILED\"}"), 1) << text;
  EXPECT_EQ(Value(text, "tuneforge_rpc_requests_total{" + Rpc("/tuneforge.internal.v1.WorkerQueue/LeaseJob", "OK") +
                            "}"),
            3)
      << text;

  // Only /metrics is served.
  httplib::Client client("127.0.0.1", env.metrics_port());
  httplib::Result other = client.Get("/");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  other = client.Get("/metricsx");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

}  // namespace
}  // namespace tuneforge
