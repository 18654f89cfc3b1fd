// A real trainer worker in tests, against a MetadataTestEnv: its options, and a run that lasts until a job ends.
#ifndef TUNEFORGE_TESTS_TRAINER_SUPPORT_WORKER_RUN_H_
#define TUNEFORGE_TESTS_TRAINER_SUPPORT_WORKER_RUN_H_

#include <string>

#include "common/hf_hub_client.h"
#include "services/trainer/worker/worker.h"
#include "tests/metadata/support/metadata_test_env.h"

namespace tuneforge::testing {

// A Hub client for env's fake Hub.
HubClientOptions FakeHubClientOptions(MetadataTestEnv& env);

// A worker "test-trainer" for env's service, with its token, on one thread, writing under env.root()/artifacts,
// downloading through `hub` into `cache_dir` (empty: the default Hugging Face cache); a lease call waits up to 1 s.
WorkerOptions TestWorkerOptions(MetadataTestEnv& env, const HubClient& hub, const std::string& cache_dir = "");

// Runs a worker with `options` until the job named `name` ends (see WaitForJobEnd), then stops it; returns the job
// as it ended.
v1::FineTuningJob RunUntilEnd(MetadataTestEnv& env, const WorkerOptions& options, const std::string& name);

}  // namespace tuneforge::testing

#endif  // TUNEFORGE_TESTS_TRAINER_SUPPORT_WORKER_RUN_H_
