// tuneforge.v1.EvaluationJobs over EvaluationService.
#include "services/metadata/evaluation_jobs_handler.h"

#include <string>
#include <vector>

#include "common/grpc_status.h"
#include "services/metadata/auth.h"
#include "services/metadata/jobs_handler.h"

namespace tuneforge {

void ToProto(const CandidateResultRecord& r, v1::CandidateResult* out) {
  out->set_adapter_id(r.adapter_id);
  out->set_adapter_name(r.adapter_name);
  out->set_loss(r.loss);
  out->set_perplexity(r.perplexity);
  out->set_examples(r.examples);
  out->set_tokens(r.tokens);
  out->set_label_tokens(r.label_tokens);
  out->set_generation_tokens_per_second(r.generation_tokens_per_second);
  for (const EvaluationSampleRecord& s : r.samples) {
    v1::EvaluationSample* sample = out->add_samples();
    sample->set_row(s.row);
    sample->set_prompt(s.prompt);
    sample->set_reference(s.reference);
    sample->set_output(s.output);
    sample->set_stop_reason(s.stop_reason);
  }
}

CandidateResultRecord FromProto(const v1::CandidateResult& r) {
  CandidateResultRecord out;
  out.adapter_id = r.adapter_id();
  out.adapter_name = r.adapter_name();
  out.loss = r.loss();
  out.perplexity = r.perplexity();
  out.examples = r.examples();
  out.tokens = r.tokens();
  out.label_tokens = r.label_tokens();
  out.generation_tokens_per_second = r.generation_tokens_per_second();
  for (const v1::EvaluationSample& s : r.samples()) {
    out.samples.push_back({s.row(), s.prompt(), s.reference(), s.output(), s.stop_reason()});
  }
  return out;
}

void ToProto(const EvaluationJobRecord& e, v1::EvaluationJob* out) {
  CommonJobFieldsToProto(e.job, out);
  for (const std::string& id : EvaluationAdapterIds(e.job.settings)) out->add_adapter_ids(id);
  if (e.job.settings.contains("evaluation") && e.job.settings["evaluation"].is_object()) {
    out->set_split(e.job.settings["evaluation"].value("split", std::string()));
  }
  for (const CandidateResultRecord& r : e.results) ToProto(r, out->add_results());
}

grpc::Status EvaluationJobsHandler::StartEvaluationJob(grpc::ServerContext* context,
                                                       const v1::StartEvaluationJobRequest* request,
                                                       v1::StartEvaluationJobResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  StartEvaluationInput input;
  input.name = request->name();
  input.description = request->description();
  input.inputs = {request->model(), request->model_revision_id(), request->dataset(), request->dataset_revision_id(),
                  request->prompt()};
  input.adapters.assign(request->adapters().begin(), request->adapters().end());
  input.split = request->split();
  input.max_examples = request->max_examples();
  if (request->has_num_samples()) input.num_samples = request->num_samples();
  absl::StatusOr<nlohmann::json> generation = StructToJson(request->generation(), "generation");
  if (!generation.ok()) return ToGrpcStatus(generation.status());
  input.generation = *std::move(generation);
  input.max_seq_len = request->max_seq_len();
  input.batch_size = request->batch_size();
  input.device = request->device();
  input.dtype = request->dtype();
  input.max_attempts = request->max_attempts();
  absl::StatusOr<EvaluationJobRecord> job = service_.StartEvaluation(input);
  if (!job.ok()) return ToGrpcStatus(job.status());
  ToProto(*job, response->mutable_job());
  if (on_queued_) on_queued_();
  return grpc::Status::OK;
}

grpc::Status EvaluationJobsHandler::GetEvaluationJob(grpc::ServerContext* context,
                                                     const v1::GetEvaluationJobRequest* request,
                                                     v1::GetEvaluationJobResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<EvaluationJobRecord> job = service_.GetEvaluation(request->job());
  if (!job.ok()) return ToGrpcStatus(job.status());
  ToProto(*job, response->mutable_job());
  return grpc::Status::OK;
}

grpc::Status EvaluationJobsHandler::ListEvaluationJobs(grpc::ServerContext* context,
                                                       const v1::ListEvaluationJobsRequest* request,
                                                       v1::ListEvaluationJobsResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<ListJobsInput> input = ListJobsInputFromProto(*request);
  if (!input.ok()) return ToGrpcStatus(input.status());
  absl::StatusOr<EvaluationPage> page = service_.ListEvaluations(*input);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const EvaluationJobRecord& j : page->jobs) ToProto(j, response->add_jobs());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status EvaluationJobsHandler::CancelEvaluationJob(grpc::ServerContext* context,
                                                        const v1::CancelEvaluationJobRequest* request,
                                                        v1::CancelEvaluationJobResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  absl::StatusOr<EvaluationJobRecord> job = service_.CancelEvaluation(request->job());
  if (!job.ok()) return ToGrpcStatus(job.status());
  ToProto(*job, response->mutable_job());
  return grpc::Status::OK;
}

grpc::Status EvaluationJobsHandler::RemoveEvaluationJob(grpc::ServerContext* context,
                                                        const v1::RemoveEvaluationJobRequest* request,
                                                        v1::RemoveEvaluationJobResponse*) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  return ToGrpcStatus(service_.RemoveEvaluation(request->job()));
}

grpc::Status EvaluationJobsHandler::WatchEvaluationJob(grpc::ServerContext* context,
                                                       const v1::WatchEvaluationJobRequest* request,
                                                       grpc::ServerWriter<v1::WatchEvaluationJobResponse>* writer) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  if (request->after_sequence() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("after_sequence must be 0 or more"));
  }
  absl::StatusOr<JobRecord> job = jobs_.GetJob(request->job(), kJobKindEvaluation);
  if (!job.ok()) return ToGrpcStatus(job.status());
  EvaluationService& service = service_;
  return ToGrpcStatus(WatchJobEvents(
      context, jobs_, hub_, *std::move(job), request->after_sequence(),
      [&service, writer](const JobEventRecord& e, const JobRecord& j) -> absl::StatusOr<bool> {
        v1::WatchEvaluationJobResponse response;
        ToProto(e, response.mutable_event());
        // Results only once the job has them (its last event); the record alone before.
        if (j.state == "SUCCEEDED" && e.sequence == j.last_sequence) {
          absl::StatusOr<EvaluationJobRecord> full = service.GetEvaluation(j.id);
          if (!full.ok()) return full.status();
          ToProto(*full, response.mutable_job());
        } else {
          ToProto(EvaluationJobRecord{j, {}}, response.mutable_job());
        }
        return writer->Write(response);
      }));
}

}  // namespace tuneforge
