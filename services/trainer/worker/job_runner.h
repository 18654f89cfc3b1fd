// The recipe of one leased job, top to bottom: resolve the model and dataset revisions (Hub downloads into the
// Hugging Face cache, or local files) -> load the dataset rows and split -> RunFineTune (tokenize with the prompt,
// train, eval, checkpoint, resume) -> the PEFT adapter in the job's output folder. Export jobs: the base model and
// the adapter -> RunExport -> the exported directory in the job's output folder.
#ifndef TUNEFORGE_SERVICES_TRAINER_WORKER_JOB_RUNNER_H_
#define TUNEFORGE_SERVICES_TRAINER_WORKER_JOB_RUNNER_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/hf_hub_client.h"
#include "services/trainer/recipes/evaluate.h"
#include "services/trainer/recipes/export_model.h"
#include "services/trainer/recipes/fine_tune.h"
#include "tuneforge/internal/v1/worker.pb.h"

namespace tuneforge {

class TrainerMetrics;

struct JobRunnerOptions {
  const HubClient* hub = nullptr;
  std::string hf_token;   // for Hub downloads; never logged
  std::string cache_dir;  // empty: HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub
  int threads = 0;        // torch threads; 0: libtorch's default
  // Shared with tuneforge-metadata: a job writes only under <artifacts_dir>/jobs/<job id>/.
  std::string artifacts_dir;
  // Counts Hub download bytes here and, in the worker, progress and job ends; null: no metrics.
  TrainerMetrics* metrics = nullptr;
};

// Runs the leased job to its adapter. `hooks` carry progress, events (downloads included), checkpoints and the
// cancel flag. Errors say what to do; CANCELLED when hooks.cancelled turned true. A lease whose output_dir or
// checkpoint_dir is not under <artifacts_dir>/jobs/<job id> is refused (INVALID_ARGUMENT) before anything is read
// or written.
absl::StatusOr<FineTuneResult> RunLeasedJob(const internal::v1::JobLease& lease, const JobRunnerOptions& options,
                                            const FineTuneHooks& hooks);

// Runs a leased export job (lease.kind() == "export"): the base model and the adapter (Hub snapshots or local
// directories) -> RunExport into the lease's output_dir, which the metadata service then moves to the export's
// destination. Progress reports count tensors (merged) or files (adapter) as steps. Same folder checks as
// RunLeasedJob.
absl::StatusOr<ExportResult> RunLeasedExport(const internal::v1::JobLease& lease, const JobRunnerOptions& options,
                                             const FineTuneHooks& hooks);

// Runs a leased evaluation job (lease.kind() == "evaluation"): the base model, the adapters of lease.evaluation()
// and the split named by settings.evaluation.split -> RunEvaluation. Progress reports count candidates as steps.
absl::StatusOr<std::vector<CandidateMetrics>> RunLeasedEvaluation(const internal::v1::JobLease& lease,
                                                                  const JobRunnerOptions& options,
                                                                  const FineTuneHooks& hooks);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_WORKER_JOB_RUNNER_H_
