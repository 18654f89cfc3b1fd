// SQL for fine-tuning jobs: one method per statement in sql/job_*.sql.
#ifndef TUNEFORGE_SERVICES_METADATA_JOB_REPOSITORY_H_
#define TUNEFORGE_SERVICES_METADATA_JOB_REPOSITORY_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "services/metadata/job_records.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct JobListFilter {
  std::vector<std::string> states;  // empty: any
  std::string model_id;             // empty: any
  std::vector<std::string> kinds;   // empty: any
  int64_t after_create_us = 0;      // keyset of the previous page's last row; after_id empty: first page
  std::string after_id;
  int limit = 50;
};

// What a removal checks for jobs: one of the four is set.
struct JobUsersFilter {
  std::string model_id;
  std::string dataset_id;
  std::string prompt_name;
  std::string config_id;
};

// The folders job `job_id` writes under the artifacts root: <root>/jobs/<id>/<JobOutputFolder(kind)> and
// <root>/jobs/<id>/checkpoints (sql/job_insert.sql names them so when it creates the job).
std::string JobOutputDir(const std::string& artifacts_root, const std::string& job_id,
                         const std::string& kind = kJobKindFineTune);
// "adapter" for a fine-tuning job, "export" for an export, "evaluation" for an evaluation (which writes nothing
// there, but its lease names a folder of its own all the same).
std::string JobOutputFolder(const std::string& kind);
std::string JobCheckpointDir(const std::string& artifacts_root, const std::string& job_id);

class JobRepository {
 public:
  // Inserts a QUEUED job; output/checkpoint folders are <artifacts_root>/jobs/<id>/{adapter,checkpoints}.
  JobRecord Insert(Tx& tx, const JobRecord& job, const std::string& artifacts_root);
  std::optional<JobRecord> GetById(Tx& tx, const std::string& id);
  std::optional<JobRecord> GetByName(Tx& tx, const std::string& name);
  std::optional<JobRecord> Lock(Tx& tx, const std::string& id);
  std::vector<JobRecord> List(Tx& tx, const JobListFilter& filter);
  // *lease_expired (when given): the job was RUNNING under a lease that expired, rather than QUEUED.
  std::optional<JobRecord> Lease(Tx& tx, const std::string& worker_id, double lease_seconds,
                                 bool* lease_expired = nullptr);
  // RUNNING jobs out of attempts and CANCELLING jobs whose lease expired (locked).
  std::vector<JobRecord> Expired(Tx& tx);
  // Writes state, worker, cancel flag, progress, metrics, error and adapter; lease_seconds: <0 keeps the deadline,
  // 0 clears it, >0 sets now + lease_seconds. Returns the deadline (InfinitePast when none).
  absl::Time Update(Tx& tx, const JobRecord& job, double lease_seconds, bool ended);
  int64_t AddEvent(Tx& tx, const std::string& job_id, const JobEventRecord& event);
  std::vector<JobEventRecord> Events(Tx& tx, const std::string& job_id, int64_t after_sequence, int limit);
  void AddCheckpoint(Tx& tx, const std::string& job_id, const CheckpointRecord& checkpoint);
  std::vector<CheckpointRecord> Checkpoints(Tx& tx, const std::string& job_id);
  void Delete(Tx& tx, const std::string& id);
  // Jobs using a model, dataset, prompt or config: id, name and state only.
  std::vector<JobRecord> Users(Tx& tx, const JobUsersFilter& filter);
  void DeleteUsers(Tx& tx, const JobUsersFilter& filter);
  // State -> number of jobs; states without jobs are absent.
  std::map<std::string, int64_t> CountByState(Tx& tx);
};

// For Remove of a model, dataset, prompt or config (`what`, e.g. "model 'x'"): a job that is not in a final state blocks
// the removal even with force (FAILED_PRECONDITION: cancel it first); other jobs block it without force, and with
// force are removed and described in `removed`.
absl::Status RemoveJobsUsing(Tx& tx, const JobUsersFilter& filter, bool force, const std::string& what,
                             std::vector<std::string>* removed);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_JOB_REPOSITORY_H_
