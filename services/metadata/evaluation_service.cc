// Evaluation jobs: checks a StartEvaluationJob request, queues its job, and shows jobs with their results.
#include "services/metadata/evaluation_service.h"

#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "services/metadata/adapter_repository.h"
#include "services/metadata/config_schema.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace {

constexpr int kDefaultNumSamples = 3;
constexpr int kDefaultMaxSeqLen = 2048;
constexpr int kMaxSeqLen = 131072;
constexpr int kDefaultBatchSize = 8;
constexpr int kMaxBatchSize = 1024;
constexpr int kDefaultMaxNewTokens = 64;

absl::Status OutOfRange(const std::string& field, int value, const std::string& range) {
  return absl::InvalidArgumentError(absl::StrCat(field, " is ", value, "; use ", range));
}

// The settings the trainer reads (recipes/evaluate.h), every default filled in so that the job record says what ran.
absl::StatusOr<nlohmann::json> EvaluationSettings(const StartEvaluationInput& in) {
  const std::string split = in.split.empty() ? "test" : in.split;
  if (split != "test" && split != "train") {
    return absl::InvalidArgumentError(
        absl::StrCat("split is '", in.split, "'; use \"test\" (the default) or \"train\""));
  }
  if (in.max_examples < 0) return OutOfRange("max_examples", in.max_examples, "0 (the whole split) or more");
  const int num_samples = in.num_samples.value_or(kDefaultNumSamples);
  if (num_samples < 0 || num_samples > static_cast<int>(kMaxEvaluationSamples)) {
    return OutOfRange("num_samples", num_samples, absl::StrCat("0-", kMaxEvaluationSamples));
  }
  if (in.max_seq_len < 0 || in.max_seq_len > kMaxSeqLen) {
    return OutOfRange("max_seq_len", in.max_seq_len, absl::StrCat("1-", kMaxSeqLen, ", or 0 for ", kDefaultMaxSeqLen));
  }
  if (in.batch_size < 0 || in.batch_size > kMaxBatchSize) {
    return OutOfRange("batch_size", in.batch_size, absl::StrCat("1-", kMaxBatchSize, ", or 0 for ", kDefaultBatchSize));
  }
  if (in.max_attempts < 0 || in.max_attempts > 10) {
    return OutOfRange("max_attempts", in.max_attempts, "1-10, or 0 for 3");
  }
  nlohmann::json device = "auto";
  if (!in.device.empty()) {
    ASSIGN_OR_RETURN(device, ValidateConfigValue("training", "device", in.device, "device"));
  }
  nlohmann::json dtype = "fp32";
  if (!in.dtype.empty()) {
    ASSIGN_OR_RETURN(dtype, ValidateConfigValue("training", "dtype", in.dtype, "dtype"));
  }
  nlohmann::json generation = in.generation.is_object() ? in.generation : nlohmann::json::object();
  if (!generation.contains("max_new_tokens")) generation["max_new_tokens"] = kDefaultMaxNewTokens;
  ASSIGN_OR_RETURN(generation, ValidateConfigContent("generation", generation, "generation"));
  return nlohmann::json{{"evaluation",
                         {{"split", split},
                          {"adapter_ids", nlohmann::json::array()},
                          {"max_examples", in.max_examples},
                          {"num_samples", num_samples},
                          {"max_seq_len", in.max_seq_len == 0 ? kDefaultMaxSeqLen : in.max_seq_len},
                          {"batch_size", in.batch_size == 0 ? kDefaultBatchSize : in.batch_size},
                          {"device", device},
                          {"dtype", dtype}}},
                        {"generation", generation}};
}

}  // namespace

EvaluationService::EvaluationService(Store& store, JobService& jobs, std::string artifacts_root)
    : store_(store), jobs_(jobs), artifacts_root_(std::move(artifacts_root)) {}

absl::StatusOr<EvaluationJobRecord> EvaluationService::StartEvaluation(const StartEvaluationInput& in) {
  if (!in.name.empty()) RETURN_IF_ERROR(CheckName(in.name, "name"));
  RETURN_IF_ERROR(CheckDescription(in.description, "description"));
  RETURN_IF_ERROR(CheckJobInputRefs(in.inputs));
  if (static_cast<int>(in.adapters.size()) > kMaxEvaluationAdapters) {
    return absl::InvalidArgumentError(absl::StrCat("adapters names ", in.adapters.size(), " adapters; evaluate at most ",
                                                   kMaxEvaluationAdapters, " in one job"));
  }
  for (size_t i = 0; i < in.adapters.size(); ++i) {
    RETURN_IF_ERROR(CheckReference(in.adapters[i], absl::StrCat("adapters[", i, "]")));
  }
  ASSIGN_OR_RETURN(nlohmann::json settings, EvaluationSettings(in));
  const std::string split = settings["evaluation"]["split"].get<std::string>();

  EvaluationJobRecord out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(const JobInputs inputs, ResolveJobInputs(tx, in.inputs));
    bool has_split = false;
    for (const DatasetSplitRecord& s : inputs.dataset_revision.splits) {
      has_split = has_split || (s.name == split && (!s.files.empty() || s.num_rows > 0 ||
                                                    inputs.dataset_revision.split_generated));
    }
    if (!has_split) {
      return absl::FailedPreconditionError(absl::StrCat(
          "split: dataset '", inputs.dataset.name, "' (revision ", inputs.dataset_revision.id, ") has no ", split,
          " split; evaluate split \"", split == "test" ? "train" : "test", "\", or add a revision of the dataset "
          "that has one"));
    }
    AdapterRepository adapters;
    std::set<std::string> seen;
    for (size_t i = 0; i < in.adapters.size(); ++i) {
      const std::string& ref = in.adapters[i];
      const std::string field = absl::StrCat("adapters[", i, "]");
      std::optional<AdapterRecord> adapter = IsUuid(ref) ? adapters.GetById(tx, ref) : adapters.GetByName(tx, ref);
      if (!adapter.has_value()) {
        return absl::NotFoundError(
            absl::StrCat(field, ": adapter '", ref, "' not found; ListAdapters shows the adapters"));
      }
      if (adapter->model_revision_id != inputs.model_revision.id) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ": adapter '", adapter->name, "' was made for model revision ", adapter->model_revision_id,
            ", not ", inputs.model_revision.id, " of model '", inputs.model.name,
            "'; evaluate it with that revision (model_revision_id) or leave it out"));
      }
      if (!seen.insert(adapter->id).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": adapter '", adapter->name, "' is named twice; name each adapter once"));
      }
      settings["evaluation"]["adapter_ids"].push_back(adapter->id);
    }

    JobRecord job;
    job.kind = kJobKindEvaluation;
    if (!in.name.empty()) {
      job.name = in.name;
      if (job_repo_.GetByName(tx, job.name)) {
        return absl::AlreadyExistsError(
            absl::StrCat("name: a job named '", job.name, "' exists; choose another name or remove that job"));
      }
    } else {
      const std::string base = absl::StrCat("eval-", inputs.model.name, "-", inputs.dataset.name, "-",
                                            absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone()));
      job.name = base;
      for (int i = 2; job_repo_.GetByName(tx, job.name); ++i) job.name = absl::StrCat(base, "-", i);
    }
    job.description = in.description;
    job.model_id = inputs.model.id;
    job.model_revision_id = inputs.model_revision.id;
    job.dataset_id = inputs.dataset.id;
    job.dataset_revision_id = inputs.dataset_revision.id;
    job.prompt_id = inputs.prompt.id;
    job.settings = settings;
    job.max_attempts = in.max_attempts == 0 ? 3 : in.max_attempts;
    out.job = job_repo_.Insert(tx, job, artifacts_root_);
    JobEventRecord queued;
    queued.kind = "state";
    queued.level = "info";
    queued.state = "QUEUED";
    const size_t n = in.adapters.size();
    queued.message = absl::StrCat("evaluation queued: the base model", n == 0 ? "" : absl::StrCat(" and ", n, " adapter",
                                                                                                 n == 1 ? "" : "s"),
                                  " on the ", split, " split of dataset '", inputs.dataset.name, "'");
    out.job.last_sequence = job_repo_.AddEvent(tx, out.job.id, queued);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<EvaluationJobRecord>> EvaluationService::WithResults(std::vector<JobRecord> jobs,
                                                                               bool with_samples) {
  std::vector<std::string> ids;
  for (const JobRecord& j : jobs) ids.push_back(j.id);
  std::map<std::string, std::vector<CandidateResultRecord>> results;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    results = results_.Results(tx, ids, with_samples);
    return absl::OkStatus();
  }));
  std::vector<EvaluationJobRecord> out;
  for (JobRecord& j : jobs) {
    EvaluationJobRecord r;
    auto it = results.find(j.id);
    if (it != results.end()) r.results = std::move(it->second);
    r.job = std::move(j);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<EvaluationJobRecord> EvaluationService::GetEvaluation(const std::string& ref) {
  ASSIGN_OR_RETURN(JobRecord job, jobs_.GetJob(ref, kJobKindEvaluation));
  std::vector<JobRecord> one;
  one.push_back(std::move(job));
  ASSIGN_OR_RETURN(std::vector<EvaluationJobRecord> out, WithResults(std::move(one), /*with_samples=*/true));
  return std::move(out.front());
}

absl::StatusOr<EvaluationPage> EvaluationService::ListEvaluations(ListJobsInput input) {
  input.kinds = {kJobKindEvaluation};
  ASSIGN_OR_RETURN(JobPage page, jobs_.ListJobs(input));
  EvaluationPage out;
  ASSIGN_OR_RETURN(out.jobs, WithResults(std::move(page.jobs), /*with_samples=*/false));
  out.next_page_token = page.next_page_token;
  return out;
}

absl::StatusOr<EvaluationJobRecord> EvaluationService::CancelEvaluation(const std::string& ref) {
  ASSIGN_OR_RETURN(JobRecord job, jobs_.CancelJob(ref, kJobKindEvaluation));
  return EvaluationJobRecord{std::move(job), {}};
}

absl::Status EvaluationService::RemoveEvaluation(const std::string& ref) {
  return jobs_.RemoveJob(ref, kJobKindEvaluation);
}

}  // namespace tuneforge
