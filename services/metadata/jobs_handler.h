// tuneforge.v1.FineTuningJobs over JobService; Watch streams events pushed by JobEventHub.
#ifndef TUNEFORGE_SERVICES_METADATA_JOBS_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_JOBS_HANDLER_H_

#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "services/metadata/job_event_hub.h"
#include "services/metadata/job_service.h"
#include "tuneforge/v1/jobs.grpc.pb.h"

namespace tuneforge {

void ToProto(const JobRecord& job, v1::FineTuningJob* out);
void ToProto(const JobEventRecord& event, v1::JobEvent* out);
// JSON (proto field names) <-> messages: progress, metrics, settings.
absl::Status JsonToMessage(const nlohmann::json& json, google::protobuf::Message* out);
nlohmann::json MessageToJson(const google::protobuf::Message& message);
std::string JobStateName(v1::JobState state);  // "QUEUED", ...; "" for UNSPECIFIED

class JobsHandler final : public v1::FineTuningJobs::Service {
 public:
  // on_queued runs after a job is queued (wakes trainers waiting for work).
  JobsHandler(JobService& service, JobEventHub& hub, std::function<void()> on_queued = {})
      : service_(service), hub_(hub), on_queued_(std::move(on_queued)) {}

  grpc::Status StartFineTuningJob(grpc::ServerContext*, const v1::StartFineTuningJobRequest*,
                                  v1::StartFineTuningJobResponse*) override;
  grpc::Status GetFineTuningJob(grpc::ServerContext*, const v1::GetFineTuningJobRequest*,
                                v1::GetFineTuningJobResponse*) override;
  grpc::Status ListFineTuningJobs(grpc::ServerContext*, const v1::ListFineTuningJobsRequest*,
                                  v1::ListFineTuningJobsResponse*) override;
  grpc::Status CancelFineTuningJob(grpc::ServerContext*, const v1::CancelFineTuningJobRequest*,
                                   v1::CancelFineTuningJobResponse*) override;
  grpc::Status RemoveFineTuningJob(grpc::ServerContext*, const v1::RemoveFineTuningJobRequest*,
                                   v1::RemoveFineTuningJobResponse*) override;
  grpc::Status WatchFineTuningJob(grpc::ServerContext*, const v1::WatchFineTuningJobRequest*,
                                  grpc::ServerWriter<v1::WatchFineTuningJobResponse>*) override;
  grpc::Status ListCheckpoints(grpc::ServerContext*, const v1::ListCheckpointsRequest*,
                               v1::ListCheckpointsResponse*) override;

 private:
  JobService& service_;
  JobEventHub& hub_;
  std::function<void()> on_queued_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_JOBS_HANDLER_H_
