// Fine-tuning jobs repository: runs sql/job_*.sql and maps rows to records.
#include "services/metadata/job_repository.h"

#include "absl/strings/str_cat.h"
#include "services/metadata/store_internal.h"

namespace tuneforge {

bool IsFinalJobState(const std::string& state) {
  return state == "SUCCEEDED" || state == "FAILED" || state == "CANCELLED";
}

std::string JobOutputFolder(const std::string& kind) {
  if (kind == kJobKindExport) return "export";
  if (kind == kJobKindEvaluation) return "evaluation";
  return "adapter";
}

std::string JobOutputDir(const std::string& artifacts_root, const std::string& job_id, const std::string& kind) {
  return absl::StrCat(artifacts_root, "/jobs/", job_id, "/", JobOutputFolder(kind));
}

std::string JobCheckpointDir(const std::string& artifacts_root, const std::string& job_id) {
  return absl::StrCat(artifacts_root, "/jobs/", job_id, "/checkpoints");
}

namespace {

absl::Time OptionalMicros(const pqxx::row& row, const char* column) {
  const int64_t us = Int(row, column);
  return us == 0 ? absl::InfinitePast() : absl::FromUnixMicros(us);
}

JobRecord JobFromRow(const pqxx::row& row) {
  JobRecord j;
  j.id = Str(row, "id");
  j.name = Str(row, "name");
  j.description = Str(row, "description");
  j.state = Str(row, "state");
  j.model_id = Str(row, "model_id");
  j.model_revision_id = Str(row, "model_revision_id");
  j.dataset_id = Str(row, "dataset_id");
  j.dataset_revision_id = Str(row, "dataset_revision_id");
  j.prompt_id = Str(row, "prompt_id");
  j.config_ids = Json(row, "config_ids");
  j.settings = Json(row, "settings");
  j.attempts = static_cast<int>(Int(row, "attempts"));
  j.max_attempts = static_cast<int>(Int(row, "max_attempts"));
  j.worker_id = Str(row, "worker_id");
  j.cancel_requested = Bool(row, "cancel_requested");
  j.progress = Json(row, "progress");
  j.metrics = Json(row, "metrics");
  j.error_code = Str(row, "error_code");
  j.error_message = Str(row, "error_message");
  j.adapter_id = Str(row, "adapter_id");
  j.adapter_name = Str(row, "adapter_name");
  j.output_dir = Str(row, "output_dir");
  j.checkpoint_dir = Str(row, "checkpoint_dir");
  j.last_sequence = Int(row, "last_sequence");
  j.create_time = Micros(row, "create_us");
  j.update_time = Micros(row, "update_us");
  j.start_time = OptionalMicros(row, "start_us");
  j.end_time = OptionalMicros(row, "end_us");
  j.lease_expires = OptionalMicros(row, "lease_us");
  j.kind = Str(row, "kind");
  j.export_id = Str(row, "export_id");
  return j;
}

std::optional<JobRecord> FirstJob(const pqxx::result& result) {
  if (result.empty()) return std::nullopt;
  return JobFromRow(result[0]);
}

std::optional<std::string> JsonOrNull(const nlohmann::json& j) {
  if (j.is_null()) return std::nullopt;
  return j.dump();
}

}  // namespace

JobRecord JobRepository::Insert(Tx& tx, const JobRecord& j, const std::string& artifacts_root) {
  return JobFromRow(tx.work().exec_prepared1("job_insert", j.name, j.description, j.model_id, j.model_revision_id,
                                             NullIfEmpty(j.dataset_id), NullIfEmpty(j.dataset_revision_id),
                                             NullIfEmpty(j.prompt_id), j.config_ids.dump(), j.settings.dump(),
                                             j.max_attempts, j.adapter_name, artifacts_root,
                                             j.kind.empty() ? std::string(kJobKindFineTune) : j.kind));
}

std::optional<JobRecord> JobRepository::GetById(Tx& tx, const std::string& id) {
  return FirstJob(tx.work().exec_prepared("job_get_by_id", id));
}

std::optional<JobRecord> JobRepository::GetByName(Tx& tx, const std::string& name) {
  return FirstJob(tx.work().exec_prepared("job_get_by_name", name));
}

std::optional<JobRecord> JobRepository::Lock(Tx& tx, const std::string& id) {
  return FirstJob(tx.work().exec_prepared("job_lock", id));
}

std::vector<JobRecord> JobRepository::List(Tx& tx, const JobListFilter& f) {
  std::optional<int64_t> after_us;
  if (!f.after_id.empty()) after_us = f.after_create_us;
  std::vector<JobRecord> out;
  for (const pqxx::row& row : tx.work().exec_prepared("job_list", nlohmann::json(f.states).dump(),
                                                      NullIfEmpty(f.model_id), after_us, NullIfEmpty(f.after_id),
                                                      f.limit, nlohmann::json(f.kinds).dump())) {
    out.push_back(JobFromRow(row));
  }
  return out;
}

std::optional<JobRecord> JobRepository::Lease(Tx& tx, const std::string& worker_id, double lease_seconds,
                                              bool* lease_expired) {
  const pqxx::result result = tx.work().exec_prepared("job_lease", worker_id, lease_seconds);
  if (lease_expired != nullptr) *lease_expired = !result.empty() && Bool(result[0], "lease_expired");
  return FirstJob(result);
}

std::vector<JobRecord> JobRepository::Expired(Tx& tx) {
  std::vector<JobRecord> out;
  for (const pqxx::row& row : tx.work().exec_prepared("job_expired")) out.push_back(JobFromRow(row));
  return out;
}

absl::Time JobRepository::Update(Tx& tx, const JobRecord& j, double lease_seconds, bool ended) {
  std::optional<double> lease;
  if (lease_seconds >= 0) lease = lease_seconds;
  const pqxx::row row = tx.work().exec_prepared1("job_update", j.id, j.state, j.worker_id, lease, j.cancel_requested,
                                                 j.progress.dump(), j.metrics.dump(), j.error_code, j.error_message,
                                                 NullIfEmpty(j.adapter_id), ended);
  const int64_t us = Int(row, "lease_us");
  return us == 0 ? absl::InfinitePast() : absl::FromUnixMicros(us);
}

int64_t JobRepository::AddEvent(Tx& tx, const std::string& job_id, const JobEventRecord& e) {
  return tx.work()
      .exec_prepared1("job_event_insert", job_id, e.kind, e.level, e.message, e.state, JsonOrNull(e.progress),
                      JsonOrNull(e.metrics))["sequence"]
      .as<int64_t>();
}

std::vector<JobEventRecord> JobRepository::Events(Tx& tx, const std::string& job_id, int64_t after_sequence,
                                                  int limit) {
  std::vector<JobEventRecord> out;
  for (const pqxx::row& row : tx.work().exec_prepared("job_event_list", job_id, after_sequence, limit)) {
    JobEventRecord e;
    e.sequence = Int(row, "sequence");
    e.time = Micros(row, "time_us");
    e.kind = Str(row, "kind");
    e.level = Str(row, "level");
    e.message = Str(row, "message");
    e.state = Str(row, "state");
    e.progress = Json(row, "progress");
    e.metrics = Json(row, "metrics");
    out.push_back(std::move(e));
  }
  return out;
}

void JobRepository::AddCheckpoint(Tx& tx, const std::string& job_id, const CheckpointRecord& c) {
  tx.work().exec_prepared("job_checkpoint_insert", job_id, c.step, c.epoch, c.path, c.train_loss, c.attempt);
}

std::vector<CheckpointRecord> JobRepository::Checkpoints(Tx& tx, const std::string& job_id) {
  std::vector<CheckpointRecord> out;
  for (const pqxx::row& row : tx.work().exec_prepared("job_checkpoint_list", job_id)) {
    CheckpointRecord c;
    c.id = Str(row, "id");
    c.job_id = Str(row, "job_id");
    c.step = Int(row, "step");
    c.epoch = static_cast<int>(Int(row, "epoch"));
    c.path = Str(row, "path");
    c.train_loss = Double(row, "train_loss");
    c.attempt = static_cast<int>(Int(row, "attempt"));
    c.create_time = Micros(row, "create_us");
    out.push_back(std::move(c));
  }
  return out;
}

void JobRepository::Delete(Tx& tx, const std::string& id) { tx.work().exec_prepared("job_delete", id); }

std::vector<JobRecord> JobRepository::Users(Tx& tx, const JobUsersFilter& f) {
  std::vector<JobRecord> out;
  for (const pqxx::row& row : tx.work().exec_prepared("job_users", NullIfEmpty(f.model_id), NullIfEmpty(f.dataset_id),
                                                      NullIfEmpty(f.prompt_name), NullIfEmpty(f.config_id))) {
    JobRecord j;
    j.id = Str(row, "id");
    j.name = Str(row, "name");
    j.state = Str(row, "state");
    out.push_back(std::move(j));
  }
  return out;
}

void JobRepository::DeleteUsers(Tx& tx, const JobUsersFilter& f) {
  tx.work().exec_prepared("job_delete_users", NullIfEmpty(f.model_id), NullIfEmpty(f.dataset_id),
                          NullIfEmpty(f.prompt_name), NullIfEmpty(f.config_id));
}

std::map<std::string, int64_t> JobRepository::CountByState(Tx& tx) {
  std::map<std::string, int64_t> out;
  for (const pqxx::row& row : tx.work().exec_prepared("job_count_by_state")) out[Str(row, "state")] = Int(row, "jobs");
  return out;
}

absl::Status RemoveJobsUsing(Tx& tx, const JobUsersFilter& filter, bool force, const std::string& what,
                             std::vector<std::string>* removed) {
  JobRepository jobs;
  const std::vector<JobRecord> users = jobs.Users(tx, filter);
  for (const JobRecord& j : users) {
    if (!IsFinalJobState(j.state)) {
      return absl::FailedPreconditionError(absl::StrCat(what, " is used by fine-tuning job '", j.name, "', which is ",
                                                        j.state, "; cancel it (CancelFineTuningJob) and try again"));
    }
  }
  if (users.empty()) return absl::OkStatus();
  if (!force) {
    return absl::FailedPreconditionError(absl::StrCat(what, " is used by ", users.size(), " fine-tuning job",
                                                      users.size() == 1 ? "" : "s", " (first: '", users[0].name,
                                                      "'); remove them first, or pass force=true to remove them too"));
  }
  jobs.DeleteUsers(tx, filter);
  for (const JobRecord& j : users) removed->push_back(absl::StrCat("fine-tuning job '", j.name, "' (", j.id, ")"));
  return absl::OkStatus();
}

}  // namespace tuneforge
