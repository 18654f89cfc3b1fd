// A trainer worker: leases jobs from the metadata service's WorkerQueue, runs each with RunLeasedJob, heartbeats
// progress, events and checkpoints while it trains, and reports the result. Losing the lease (another attempt owns
// the job) stops the run at once without reporting; a metadata service that is away is waited for.
#ifndef TUNEFORGE_SERVICES_TRAINER_WORKER_WORKER_H_
#define TUNEFORGE_SERVICES_TRAINER_WORKER_WORKER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "services/trainer/worker/job_runner.h"
#include "tuneforge/internal/v1/worker.grpc.pb.h"

namespace tuneforge {

struct WorkerOptions {
  std::string metadata_address;  // host:port of tuneforge-metadata
  std::string worker_id;
  std::string worker_token;  // the worker-token file's secret or a trainer token; never logged
  // How to reach metadata_address: TLS credentials, or plaintext when unset.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  JobRunnerOptions runner;
  std::chrono::milliseconds heartbeat_interval{1000};
  int lease_wait_seconds = 10;
};

// What GetTrainerStatus reports.
struct WorkerStatus {
  bool running = false;
  std::string job_id;
  internal::v1::HeartbeatRequest last;  // progress and metrics of the current job
};

class Worker {
 public:
  explicit Worker(WorkerOptions options);

  // Leases and runs jobs until `stop` turns true. A job running then is stopped and handed back to the queue
  // (retryable), so that another trainer resumes it from its last checkpoint.
  void Run(const std::atomic<bool>& stop);

  WorkerStatus Status();

  // Cancels a LeaseJob call in flight, so that Run notices `stop` at once.
  void Interrupt();

 private:
  void RunJob(const internal::v1::JobLease& lease, const std::atomic<bool>& stop);
  std::unique_ptr<grpc::ClientContext> Context(std::chrono::seconds timeout) const;

  WorkerOptions options_;
  std::unique_ptr<internal::v1::WorkerQueue::Stub> queue_;
  std::mutex mu_;
  WorkerStatus status_;
  grpc::ClientContext* lease_call_ = nullptr;  // guarded by mu_
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_WORKER_WORKER_H_
