// tuneforge.v1.FineTuningJobs over JobService; Watch streams events pushed by JobEventHub. Also what the other job
// services' handlers share with it: the conversion of a job's common fields and the Watch loop.
#ifndef TUNEFORGE_SERVICES_METADATA_JOBS_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_JOBS_HANDLER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "services/metadata/job_event_hub.h"
#include "services/metadata/job_service.h"
#include "services/metadata/proto_convert.h"
#include "tuneforge/v1/jobs.grpc.pb.h"

namespace tuneforge {

void ToProto(const JobRecord& job, v1::FineTuningJob* out);
void ToProto(const JobEventRecord& event, v1::JobEvent* out);
// JSON (proto field names) <-> messages: progress, metrics, settings.
absl::Status JsonToMessage(const nlohmann::json& json, google::protobuf::Message* out);
nlohmann::json MessageToJson(const google::protobuf::Message& message);
std::string JobStateName(v1::JobState state);  // "QUEUED", ...; "" for UNSPECIFIED
v1::JobState JobStateToProto(const std::string& state);
// A request's google.protobuf.Struct as JSON; INVALID_ARGUMENT naming `field` when it cannot be read.
absl::StatusOr<nlohmann::json> StructToJson(const google::protobuf::Struct& s, const std::string& field);
// The states a List request filters by, as stored; INVALID_ARGUMENT for a value that is no state.
absl::StatusOr<std::vector<std::string>> JobStatesFromProto(const google::protobuf::RepeatedField<int>& states);

// The paging, model and state filters every List request of a job service has, under the same names.
template <typename ListRequest>
absl::StatusOr<ListJobsInput> ListJobsInputFromProto(const ListRequest& request) {
  ListJobsInput input;
  input.page_size = request.page_size();
  input.page_token = request.page_token();
  input.model = request.model();
  absl::StatusOr<std::vector<std::string>> states = JobStatesFromProto(request.states());
  if (!states.ok()) return states.status();
  input.states = *std::move(states);
  return input;
}

// The fields every job message has under the same names (FineTuningJob, EvaluationJob), from the job record. A
// template because the messages are distinct types that only share these fields.
template <typename JobMessage>
void CommonJobFieldsToProto(const JobRecord& j, JobMessage* out) {
  out->set_id(j.id);
  out->set_name(j.name);
  out->set_description(j.description);
  out->set_state(JobStateToProto(j.state));
  out->set_model_id(j.model_id);
  out->set_model_revision_id(j.model_revision_id);
  out->set_dataset_id(j.dataset_id);
  out->set_dataset_revision_id(j.dataset_revision_id);
  out->set_prompt_id(j.prompt_id);
  (void)JsonToMessage(j.settings, out->mutable_settings());
  out->set_attempts(j.attempts);
  out->set_max_attempts(j.max_attempts);
  (void)JsonToMessage(j.progress, out->mutable_progress());
  if (!j.error_code.empty()) {
    out->mutable_error()->set_code(j.error_code);
    out->mutable_error()->set_message(j.error_message);
  }
  out->set_worker_id(j.worker_id);
  const std::pair<absl::Time, google::protobuf::Timestamp*> times[] = {{j.create_time, out->mutable_create_time()},
                                                                       {j.update_time, out->mutable_update_time()},
                                                                       {j.start_time, out->mutable_start_time()},
                                                                       {j.end_time, out->mutable_end_time()}};
  for (const auto& [time, field] : times) {
    if (time != absl::InfinitePast()) ToProto(time, field);
  }
}

// Sends one event of a watched job with the job as it is after it; false when the client went away.
using JobEventWriter = std::function<absl::StatusOr<bool>(const JobEventRecord& event, const JobRecord& job)>;

// The Watch loop of every job service: sends the events of `job` after `after_sequence` (0: all), then each new one
// as it happens (woken by `hub`), until the job is in a final state and its last event is sent. OK as well when the
// client goes away; UNAVAILABLE saying how to resume when the server shuts down; INVALID_ARGUMENT for a negative
// after_sequence; an error of `write` as it is.
absl::Status WatchJobEvents(grpc::ServerContext* context, JobService& service, JobEventHub& hub, JobRecord job,
                            int64_t after_sequence, const JobEventWriter& write);

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
