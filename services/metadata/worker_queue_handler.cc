// WorkerQueue: long-poll leases, fenced heartbeats, completion and failure.
#include "services/metadata/worker_queue_handler.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "services/metadata/auth.h"
#include "services/metadata/evaluation_jobs_handler.h"
#include "services/metadata/jobs_handler.h"
#include "services/metadata/proto_convert.h"

namespace tuneforge {

namespace {

namespace iv1 = internal::v1;

void AdapterSourceToProto(const AdapterRecord& a, iv1::AdapterSource* out) {
  out->set_type(a.source_type);
  out->set_source(a.source);
  out->set_commit_sha(a.commit_sha);
}

void LeaseToProto(const LeasedJob& l, iv1::JobLease* out) {
  out->set_job_id(l.job.id);
  out->set_job_name(l.job.name);
  out->set_attempt(l.job.attempts);
  if (l.job.lease_expires != absl::InfinitePast()) ToProto(l.job.lease_expires, out->mutable_lease_deadline());
  out->mutable_model()->set_type(l.model.source_type);
  out->mutable_model()->set_source(l.model.source);
  out->mutable_model()->set_commit_sha(l.model_revision.commit_sha);
  out->set_base_model_name(l.model.source_type == "huggingface" ? l.model.source : l.model.name);
  out->set_kind(l.job.kind);
  (void)JsonToMessage(l.job.settings, out->mutable_settings());
  out->set_output_dir(l.job.output_dir);
  out->set_checkpoint_dir(l.job.checkpoint_dir);
  if (l.job.kind == kJobKindExport) {
    iv1::ExportSpec* e = out->mutable_export_();
    e->set_type(l.export_record.type);
    e->set_dtype(l.export_record.dtype);
    e->set_max_shard_size(l.export_record.max_shard_size);
    AdapterSourceToProto(l.adapter, e->mutable_adapter());
    return;
  }
  for (const AdapterRecord& a : l.evaluated_adapters) {
    iv1::EvaluationAdapter* adapter = out->mutable_evaluation()->add_adapters();
    adapter->set_id(a.id);
    adapter->set_name(a.name);
    AdapterSourceToProto(a, adapter->mutable_source());
  }
  iv1::DatasetSource* d = out->mutable_dataset();
  d->set_type(l.dataset.source_type);
  d->set_source(l.dataset.source);
  // The files are read where the revision found them: the repo's commit, or its Parquet conversion's commit.
  d->set_commit_sha(l.dataset_revision.data_commit_sha.empty() ? l.dataset_revision.commit_sha
                                                               : l.dataset_revision.data_commit_sha);
  d->set_format(l.dataset_revision.format);
  for (const DatasetSplitRecord& s : l.dataset_revision.splits) {
    for (const std::string& f : s.files) {
      if (s.name == "train") d->add_train_files(f);
      if (s.name == "test" && !l.dataset_revision.split_generated) d->add_test_files(f);
    }
  }
  d->set_split_generated(l.dataset_revision.split_generated);
  d->set_split_seed(l.dataset_revision.split_seed);
  d->set_test_size(l.dataset_revision.test_size);
  out->mutable_prompt()->set_mode(l.prompt.mode);
  out->mutable_prompt()->set_input_template(l.prompt.input_template);
  out->mutable_prompt()->set_completion_template(l.prompt.completion_template);
  out->mutable_prompt()->set_messages_column(l.prompt.messages_column);
  out->mutable_prompt()->set_message_format(l.prompt.message_format);
  out->mutable_prompt()->set_instruction_column(l.prompt.instruction_column);
  out->mutable_prompt()->set_input_column(l.prompt.input_column);
  out->mutable_prompt()->set_output_column(l.prompt.output_column);
  out->mutable_prompt()->set_use_chat_template(l.prompt.use_chat_template);
}

}  // namespace

void WorkerQueueHandler::JobQueued() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++queued_count_;
  }
  queued_.notify_all();
}

grpc::Status WorkerQueueHandler::LeaseJob(grpc::ServerContext* context, const iv1::LeaseJobRequest* request,
                                          iv1::LeaseJobResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kTrainer); !denied.ok()) return denied;
  if (request->wait_seconds() < 0 || request->wait_seconds() > 60) {
    return ToGrpcStatus(absl::InvalidArgumentError("wait_seconds must be between 0 and 60"));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(request->wait_seconds());
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen = queued_count_;
    }
    absl::StatusOr<std::optional<LeasedJob>> leased = service_.LeaseJob(request->worker_id());
    if (!leased.ok()) return ToGrpcStatus(leased.status());
    if (leased->has_value()) {
      LeaseToProto(**leased, response->mutable_lease());
      return grpc::Status::OK;
    }
    if (std::chrono::steady_clock::now() >= deadline || context->IsCancelled()) return grpc::Status::OK;
    // Woken by a Start on this server; once a second for jobs queued elsewhere or leases that expired.
    std::unique_lock<std::mutex> lock(mu_);
    queued_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1)),
                       [&] { return queued_count_ != seen; });
  }
}

grpc::Status WorkerQueueHandler::Heartbeat(grpc::ServerContext* context, const iv1::HeartbeatRequest* request,
                                           iv1::HeartbeatResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kTrainer); !denied.ok()) return denied;
  HeartbeatInput input;
  input.job_id = request->job_id();
  input.attempt = request->attempt();
  input.worker_id = request->worker_id();
  input.has_progress = request->progress_updated();
  input.progress = MessageToJson(request->progress());
  input.metrics = MessageToJson(request->metrics());
  for (const auto& u : request->updates()) input.updates.emplace_back(MessageToJson(u.progress()), MessageToJson(u.metrics()));
  for (const auto& log : request->logs()) input.logs.emplace_back(log.level(), log.message());
  for (const auto& c : request->checkpoints()) {
    CheckpointRecord record;
    record.step = c.step();
    record.epoch = c.epoch();
    record.path = c.path();
    record.train_loss = c.train_loss();
    input.checkpoints.push_back(record);
  }
  absl::StatusOr<HeartbeatResult> result = service_.Heartbeat(input);
  if (!result.ok()) return ToGrpcStatus(result.status());
  if (result->lease_deadline != absl::InfinitePast()) ToProto(result->lease_deadline, response->mutable_lease_deadline());
  response->set_cancel_requested(result->cancel_requested);
  return grpc::Status::OK;
}

grpc::Status WorkerQueueHandler::CompleteJob(grpc::ServerContext* context, const iv1::CompleteJobRequest* request,
                                             iv1::CompleteJobResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kTrainer); !denied.ok()) return denied;
  CompleteJobInput input;
  input.job_id = request->job_id();
  input.attempt = request->attempt();
  input.worker_id = request->worker_id();
  input.output_dir = request->adapter_dir();
  input.progress = MessageToJson(request->progress());
  input.metrics = MessageToJson(request->metrics());
  for (const v1::CandidateResult& r : request->evaluation_results()) input.evaluation_results.push_back(FromProto(r));
  absl::StatusOr<CompletedJob> done = service_.CompleteJob(input);
  if (!done.ok()) return ToGrpcStatus(done.status());
  response->set_adapter_id(done->adapter_id);
  response->set_export_destination(done->export_destination);
  response->set_exported_model_id(done->exported_model_id);
  return grpc::Status::OK;
}

grpc::Status WorkerQueueHandler::FailJob(grpc::ServerContext* context, const iv1::FailJobRequest* request,
                                         iv1::FailJobResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kTrainer); !denied.ok()) return denied;
  FailJobInput input;
  input.job_id = request->job_id();
  input.attempt = request->attempt();
  input.worker_id = request->worker_id();
  input.code = request->code();
  input.message = request->message();
  input.retryable = request->retryable();
  input.cancelled = request->cancelled();
  absl::StatusOr<std::string> state = service_.FailJob(input);
  if (!state.ok()) return ToGrpcStatus(state.status());
  v1::JobState parsed = v1::JOB_STATE_UNSPECIFIED;
  v1::JobState_Parse("JOB_STATE_" + *state, &parsed);
  response->set_state(parsed);
  if (*state == "QUEUED") JobQueued();
  return grpc::Status::OK;
}

}  // namespace tuneforge
