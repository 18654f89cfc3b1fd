// tuneforge.internal.v1.Trainer: the trainer's own gRPC service for operators (status, prefetch), behind the
// same worker token as the queue.
#ifndef TUNEFORGE_SERVICES_TRAINER_WORKER_TRAINER_SERVICE_H_
#define TUNEFORGE_SERVICES_TRAINER_WORKER_TRAINER_SERVICE_H_

#include <string>

#include "absl/time/time.h"
#include "services/trainer/worker/worker.h"
#include "tuneforge/internal/v1/worker.grpc.pb.h"

namespace tuneforge {

class TrainerService final : public internal::v1::Trainer::Service {
 public:
  TrainerService(Worker& worker, const WorkerOptions& options, std::string device, int threads)
      : worker_(worker), options_(options), device_(std::move(device)), threads_(threads), start_(absl::Now()) {}

  grpc::Status GetTrainerStatus(grpc::ServerContext*, const internal::v1::GetTrainerStatusRequest*,
                                internal::v1::GetTrainerStatusResponse*) override;
  grpc::Status Prefetch(grpc::ServerContext*, const internal::v1::PrefetchRequest*,
                        internal::v1::PrefetchResponse*) override;

 private:
  grpc::Status Authorize(grpc::ServerContext* context) const;

  Worker& worker_;
  const WorkerOptions& options_;
  std::string device_;
  int threads_;
  absl::Time start_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_WORKER_TRAINER_SERVICE_H_
