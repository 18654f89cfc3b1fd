// tuneforge.v1.FineTuningJobs over JobService.
#include "services/metadata/jobs_handler.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "services/metadata/auth.h"
#include "services/metadata/proto_convert.h"

namespace tuneforge {

namespace {

v1::JobEventKind KindToProto(const std::string& kind) {
  if (kind == "state") return v1::JOB_EVENT_KIND_STATE;
  if (kind == "progress") return v1::JOB_EVENT_KIND_PROGRESS;
  if (kind == "checkpoint") return v1::JOB_EVENT_KIND_CHECKPOINT;
  return v1::JOB_EVENT_KIND_LOG;
}

void ToTime(absl::Time t, google::protobuf::Timestamp* out) {
  if (t != absl::InfinitePast()) ToProto(t, out);
}

}  // namespace

v1::JobState JobStateToProto(const std::string& s) {
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  v1::JobState_Parse(absl::StrCat("JOB_STATE_", s), &state);
  return state;
}

absl::StatusOr<nlohmann::json> StructToJson(const google::protobuf::Struct& s, const std::string& field) {
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(s, &text).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " cannot be read as JSON"));
  }
  return nlohmann::json::parse(text);
}

absl::StatusOr<std::vector<std::string>> JobStatesFromProto(const google::protobuf::RepeatedField<int>& states) {
  std::vector<std::string> out;
  for (int s : states) {
    if (!v1::JobState_IsValid(s) || s == v1::JOB_STATE_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat("states: ", s, " is not a job state"));
    }
    out.push_back(JobStateName(static_cast<v1::JobState>(s)));
  }
  return out;
}

std::string JobStateName(v1::JobState state) {
  if (state == v1::JOB_STATE_UNSPECIFIED) return "";
  return v1::JobState_Name(state).substr(10);  // after "JOB_STATE_"
}

absl::Status JsonToMessage(const nlohmann::json& json, google::protobuf::Message* out) {
  if (json.is_null()) return absl::OkStatus();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(json.dump(), out, options);
  if (!status.ok()) return absl::InternalError(std::string(status.message()));
  return absl::OkStatus();
}

nlohmann::json MessageToJson(const google::protobuf::Message& message) {
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  (void)google::protobuf::util::MessageToJsonString(message, &text, options);
  return nlohmann::json::parse(text.empty() ? "{}" : text);
}

void ToProto(const JobRecord& j, v1::FineTuningJob* out) {
  CommonJobFieldsToProto(j, out);
  if (j.config_ids.is_array()) {
    for (const auto& id : j.config_ids) out->add_config_ids(id.get<std::string>());
  }
  (void)JsonToMessage(j.metrics, out->mutable_metrics());
  out->set_adapter_id(j.adapter_id);
  out->set_adapter_name(j.adapter_name);
  out->set_kind(j.kind == kJobKindExport       ? v1::JOB_KIND_EXPORT
                : j.kind == kJobKindEvaluation ? v1::JOB_KIND_EVALUATION
                                               : v1::JOB_KIND_FINE_TUNE);
  out->set_export_id(j.export_id);
}

void ToProto(const JobEventRecord& e, v1::JobEvent* out) {
  out->set_sequence(e.sequence);
  ToTime(e.time, out->mutable_time());
  out->set_kind(KindToProto(e.kind));
  out->set_level(e.level);
  out->set_message(e.message);
  out->set_state(JobStateToProto(e.state));
  (void)JsonToMessage(e.progress, out->mutable_progress());
  (void)JsonToMessage(e.metrics, out->mutable_metrics());
}

grpc::Status JobsHandler::StartFineTuningJob(grpc::ServerContext* context, const v1::StartFineTuningJobRequest* request,
                                             v1::StartFineTuningJobResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  StartJobInput input;
  input.name = request->name();
  input.description = request->description();
  input.model = request->model();
  input.model_revision_id = request->model_revision_id();
  input.dataset = request->dataset();
  input.dataset_revision_id = request->dataset_revision_id();
  input.prompt = request->prompt();
  input.configs.assign(request->configs().begin(), request->configs().end());
  absl::StatusOr<nlohmann::json> lora = StructToJson(request->lora(), "lora");
  if (!lora.ok()) return ToGrpcStatus(lora.status());
  absl::StatusOr<nlohmann::json> training = StructToJson(request->training(), "training");
  if (!training.ok()) return ToGrpcStatus(training.status());
  input.lora = *lora;
  input.training = *training;
  input.adapter_name = request->adapter_name();
  input.max_attempts = request->max_attempts();
  absl::StatusOr<JobRecord> job = service_.StartJob(input);
  if (!job.ok()) return ToGrpcStatus(job.status());
  ToProto(*job, response->mutable_job());
  if (on_queued_) on_queued_();
  return grpc::Status::OK;
}

grpc::Status JobsHandler::GetFineTuningJob(grpc::ServerContext* context, const v1::GetFineTuningJobRequest* request,
                                           v1::GetFineTuningJobResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<JobRecord> job = service_.GetJob(request->job());
  if (!job.ok()) return ToGrpcStatus(job.status());
  ToProto(*job, response->mutable_job());
  return grpc::Status::OK;
}

grpc::Status JobsHandler::ListFineTuningJobs(grpc::ServerContext* context, const v1::ListFineTuningJobsRequest* request,
                                             v1::ListFineTuningJobsResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<ListJobsInput> input = ListJobsInputFromProto(*request);
  if (!input.ok()) return ToGrpcStatus(input.status());
  for (int k : request->kinds()) {
    if (k == v1::JOB_KIND_FINE_TUNE) {
      input->kinds.push_back(kJobKindFineTune);
    } else if (k == v1::JOB_KIND_EXPORT) {
      input->kinds.push_back(kJobKindExport);
    } else if (k == v1::JOB_KIND_EVALUATION) {
      input->kinds.push_back(kJobKindEvaluation);
    } else {
      return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
          "kinds: ", k, " is not a job kind; use JOB_KIND_FINE_TUNE, JOB_KIND_EXPORT or JOB_KIND_EVALUATION")));
    }
  }
  absl::StatusOr<JobPage> page = service_.ListJobs(*input);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const JobRecord& j : page->jobs) ToProto(j, response->add_jobs());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status JobsHandler::CancelFineTuningJob(grpc::ServerContext* context, const v1::CancelFineTuningJobRequest* request,
                                              v1::CancelFineTuningJobResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  absl::StatusOr<JobRecord> job = service_.CancelJob(request->job());
  if (!job.ok()) return ToGrpcStatus(job.status());
  ToProto(*job, response->mutable_job());
  return grpc::Status::OK;
}

grpc::Status JobsHandler::RemoveFineTuningJob(grpc::ServerContext* context, const v1::RemoveFineTuningJobRequest* request,
                                              v1::RemoveFineTuningJobResponse*) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  return ToGrpcStatus(service_.RemoveJob(request->job()));
}

absl::Status WatchJobEvents(grpc::ServerContext* context, JobService& service, JobEventHub& hub, JobRecord job,
                            int64_t after_sequence, const JobEventWriter& write) {
  if (after_sequence < 0) return absl::InvalidArgumentError("after_sequence must be 0 or more");
  const std::string id = job.id;
  int64_t after = after_sequence;
  uint64_t version = hub.Version(id);
  while (!context->IsCancelled()) {
    ASSIGN_OR_RETURN(std::vector<JobEventRecord> events, service.Events(id, after, 500));
    if (!events.empty()) {
      ASSIGN_OR_RETURN(job, service.GetJob(id));
      for (const JobEventRecord& e : events) {
        ASSIGN_OR_RETURN(bool sent, write(e, job));
        if (!sent) return absl::OkStatus();  // the client went away
        after = e.sequence;
      }
      continue;  // there may be more
    }
    if (IsFinalJobState(job.state) && after >= job.last_sequence) return absl::OkStatus();
    if (hub.stopped()) {
      return absl::UnavailableError(absl::StrCat("the server is shutting down; watch again with after_sequence ",
                                                 after, " once it is back"));
    }
    version = hub.WaitForChange(id, version, std::chrono::seconds(5));
    ASSIGN_OR_RETURN(job, service.GetJob(id));
  }
  return absl::OkStatus();
}

grpc::Status JobsHandler::WatchFineTuningJob(grpc::ServerContext* context,
                                             const v1::WatchFineTuningJobRequest* request,
                                             grpc::ServerWriter<v1::WatchFineTuningJobResponse>* writer) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  if (request->after_sequence() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("after_sequence must be 0 or more"));
  }
  absl::StatusOr<JobRecord> job = service_.GetJob(request->job());
  if (!job.ok()) return ToGrpcStatus(job.status());
  return ToGrpcStatus(WatchJobEvents(context, service_, hub_, *std::move(job), request->after_sequence(),
                                     [writer](const JobEventRecord& e, const JobRecord& j) -> absl::StatusOr<bool> {
                                       v1::WatchFineTuningJobResponse response;
                                       ToProto(e, response.mutable_event());
                                       ToProto(j, response.mutable_job());
                                       return writer->Write(response);
                                     }));
}

grpc::Status JobsHandler::ListCheckpoints(grpc::ServerContext* context, const v1::ListCheckpointsRequest* request,
                                          v1::ListCheckpointsResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<std::vector<CheckpointRecord>> checkpoints = service_.ListCheckpoints(request->job());
  if (!checkpoints.ok()) return ToGrpcStatus(checkpoints.status());
  for (const CheckpointRecord& c : *checkpoints) {
    v1::Checkpoint* out = response->add_checkpoints();
    out->set_id(c.id);
    out->set_job_id(c.job_id);
    out->set_step(c.step);
    out->set_epoch(c.epoch);
    out->set_path(c.path);
    out->set_train_loss(c.train_loss);
    out->set_attempt(c.attempt);
    ToTime(c.create_time, out->mutable_create_time());
  }
  return grpc::Status::OK;
}

}  // namespace tuneforge
