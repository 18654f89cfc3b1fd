// A real trainer worker in tests, run against a MetadataTestEnv until a job ends.
#include "tests/trainer/support/worker_run.h"

#include <atomic>
#include <thread>

#include "tests/metadata/support/job_fixtures.h"

namespace tuneforge::testing {

HubClientOptions FakeHubClientOptions(MetadataTestEnv& env) {
  HubClientOptions options;
  options.endpoint = env.hub().endpoint();
  return options;
}

WorkerOptions TestWorkerOptions(MetadataTestEnv& env, const HubClient& hub, const std::string& cache_dir) {
  WorkerOptions options;
  options.metadata_address = env.address();
  options.worker_id = "test-trainer";
  options.worker_token = kTestWorkerToken;
  options.runner.hub = &hub;
  options.runner.threads = 1;
  options.runner.cache_dir = cache_dir;
  options.runner.artifacts_dir = env.root() + "/artifacts";
  options.lease_wait_seconds = 1;
  return options;
}

v1::FineTuningJob RunUntilEnd(MetadataTestEnv& env, const WorkerOptions& options, const std::string& name) {
  Worker worker(options);
  std::atomic<bool> stop{false};
  std::thread runner([&] { worker.Run(stop); });
  const v1::FineTuningJob job = WaitForJobEnd(env, name);
  stop = true;
  worker.Interrupt();
  runner.join();
  return job;
}

}  // namespace tuneforge::testing
