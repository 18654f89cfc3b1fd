// tuneforge.v1.EvaluationJobs over EvaluationService, with the Watch loop of jobs_handler.h.
#ifndef TUNEFORGE_SERVICES_METADATA_EVALUATION_JOBS_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_EVALUATION_JOBS_HANDLER_H_

#include <functional>
#include <utility>

#include "services/metadata/evaluation_service.h"
#include "services/metadata/job_event_hub.h"
#include "services/metadata/job_service.h"
#include "tuneforge/v1/evaluations.grpc.pb.h"

namespace tuneforge {

void ToProto(const CandidateResultRecord& result, v1::CandidateResult* out);
// A trainer's report of one candidate (WorkerQueue.CompleteJob).
CandidateResultRecord FromProto(const v1::CandidateResult& result);
void ToProto(const EvaluationJobRecord& job, v1::EvaluationJob* out);

class EvaluationJobsHandler final : public v1::EvaluationJobs::Service {
 public:
  // on_queued runs after a job is queued (wakes trainers waiting for work).
  EvaluationJobsHandler(EvaluationService& service, JobService& jobs, JobEventHub& hub,
                        std::function<void()> on_queued = {})
      : service_(service), jobs_(jobs), hub_(hub), on_queued_(std::move(on_queued)) {}

  grpc::Status StartEvaluationJob(grpc::ServerContext*, const v1::StartEvaluationJobRequest*,
                                  v1::StartEvaluationJobResponse*) override;
  grpc::Status GetEvaluationJob(grpc::ServerContext*, const v1::GetEvaluationJobRequest*,
                                v1::GetEvaluationJobResponse*) override;
  grpc::Status ListEvaluationJobs(grpc::ServerContext*, const v1::ListEvaluationJobsRequest*,
                                  v1::ListEvaluationJobsResponse*) override;
  grpc::Status CancelEvaluationJob(grpc::ServerContext*, const v1::CancelEvaluationJobRequest*,
                                   v1::CancelEvaluationJobResponse*) override;
  grpc::Status RemoveEvaluationJob(grpc::ServerContext*, const v1::RemoveEvaluationJobRequest*,
                                   v1::RemoveEvaluationJobResponse*) override;
  grpc::Status WatchEvaluationJob(grpc::ServerContext*, const v1::WatchEvaluationJobRequest*,
                                  grpc::ServerWriter<v1::WatchEvaluationJobResponse>*) override;

 private:
  EvaluationService& service_;
  JobService& jobs_;
  JobEventHub& hub_;
  std::function<void()> on_queued_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_EVALUATION_JOBS_HANDLER_H_
