// tuneforge.internal.v1.WorkerQueue over JobService: the calls trainers make, each needing the trainer role (the
// worker-token file's secret or a trainer token, sent as "authorization: Bearer <token>").
#ifndef TUNEFORGE_SERVICES_METADATA_WORKER_QUEUE_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_WORKER_QUEUE_HANDLER_H_

#include <condition_variable>
#include <mutex>
#include <string>

#include "services/metadata/job_service.h"
#include "tuneforge/internal/v1/worker.grpc.pb.h"

namespace tuneforge {

class WorkerQueueHandler final : public internal::v1::WorkerQueue::Service {
 public:
  explicit WorkerQueueHandler(JobService& service) : service_(service) {}

  grpc::Status LeaseJob(grpc::ServerContext*, const internal::v1::LeaseJobRequest*,
                        internal::v1::LeaseJobResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const internal::v1::HeartbeatRequest*,
                         internal::v1::HeartbeatResponse*) override;
  grpc::Status CompleteJob(grpc::ServerContext*, const internal::v1::CompleteJobRequest*,
                           internal::v1::CompleteJobResponse*) override;
  grpc::Status FailJob(grpc::ServerContext*, const internal::v1::FailJobRequest*,
                       internal::v1::FailJobResponse*) override;

  // Wakes long-polling LeaseJob calls (a job was queued).
  void JobQueued();

 private:
  JobService& service_;
  std::mutex mu_;
  std::condition_variable queued_;
  uint64_t queued_count_ = 0;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_WORKER_QUEUE_HANDLER_H_
