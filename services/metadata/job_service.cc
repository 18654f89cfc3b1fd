// Fine-tuning job rules: reference and settings checks at Start, the state machine, and the fenced worker calls.
#include "services/metadata/job_service.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/allowed_roots.h"
#include "common/model_config.h"
#include "common/peft_adapter.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "services/metadata/adapter_repository.h"
#include "services/metadata/adapter_service.h"
#include "services/metadata/config_repository.h"
#include "services/metadata/config_schema.h"
#include "services/metadata/dataset_repository.h"
#include "services/metadata/evaluation_repository.h"
#include "services/metadata/model_repository.h"
#include "services/metadata/prompt_repository.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace {

const char* const kStates[] = {"QUEUED", "RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"};
const char* const kKinds[] = {kJobKindFineTune, kJobKindExport, kJobKindEvaluation};

// `kind` as JobService's Get/Cancel/Remove take it: empty for FineTuningJobs, which serves every kind.
absl::Status NotFoundJob(const std::string& ref, const std::string& kind = "") {
  if (kind == kJobKindEvaluation) {
    return absl::NotFoundError(
        absl::StrCat("evaluation job '", ref, "' not found; ListEvaluationJobs shows the evaluation jobs"));
  }
  return absl::NotFoundError(absl::StrCat("job '", ref, "' not found; ListFineTuningJobs shows the jobs"));
}

std::string CancelRpc(const std::string& kind) {
  return kind == kJobKindEvaluation ? "CancelEvaluationJob" : "CancelFineTuningJob";
}

JobEventRecord StateEvent(const std::string& state, const std::string& message, const std::string& level = "info") {
  JobEventRecord e;
  e.kind = "state";
  e.level = level;
  e.state = state;
  e.message = message;
  return e;
}

// Cuts `text` to kMaxEvaluationText bytes (on a character boundary).
void CutEvaluationText(std::string* text) { text->resize(Utf8PrefixLength(*text, kMaxEvaluationText)); }

// INVALID_ARGUMENT naming `field` unless `value` is a finite number >= 0.
absl::Status CheckFiniteNonNegative(double value, const std::string& field) {
  if (value >= 0 && std::isfinite(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " is ", value, "; it must be a finite number >= 0"));
}

// An evaluation's results as its trainer reports them: the base, then each of `adapter_ids` in order, with finite
// non-negative numbers. Cuts what is kept of the samples.
absl::Status CheckEvaluationResults(const std::vector<std::string>& adapter_ids,
                                    std::vector<CandidateResultRecord>* results) {
  if (results->size() != adapter_ids.size() + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "evaluation_results has ", results->size(), " results; this job has ", adapter_ids.size() + 1,
        " candidates: the base model first, then its ", adapter_ids.size(), " adapter",
        adapter_ids.size() == 1 ? "" : "s", " in the lease's order"));
  }
  for (size_t i = 0; i < results->size(); ++i) {
    CandidateResultRecord& r = (*results)[i];
    const std::string field = absl::StrCat("evaluation_results[", i, "]");
    const std::string expected = i == 0 ? "" : adapter_ids[i - 1];
    if (r.adapter_id != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".adapter_id is '", r.adapter_id, "'; expected ",
          i == 0 ? std::string("'' (the base model comes first)")
                 : absl::StrCat("'", expected, "' (adapter ", i, " of the lease's ", adapter_ids.size(), ")")));
    }
    RETURN_IF_ERROR(CheckFiniteNonNegative(r.loss, absl::StrCat(field, ".loss")));
    RETURN_IF_ERROR(CheckFiniteNonNegative(r.perplexity, absl::StrCat(field, ".perplexity")));
    RETURN_IF_ERROR(CheckFiniteNonNegative(r.generation_tokens_per_second,
                                           absl::StrCat(field, ".generation_tokens_per_second")));
    for (const auto& [name, count] : {std::pair<const char*, int64_t>{"examples", r.examples},
                                      {"tokens", r.tokens},
                                      {"label_tokens", r.label_tokens}}) {
      if (count < 0) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".", name, " is ", count, "; it must be 0 or more"));
      }
    }
    if (r.samples.size() > kMaxEvaluationSamples) r.samples.resize(kMaxEvaluationSamples);
    for (size_t k = 0; k < r.samples.size(); ++k) {
      EvaluationSampleRecord& sample = r.samples[k];
      if (sample.row < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".samples[", k, "].row is ", sample.row, "; rows count from 0"));
      }
      for (std::string* text : {&sample.prompt, &sample.reference, &sample.output, &sample.stop_reason}) {
        CutEvaluationText(text);
      }
    }
    CutEvaluationText(&r.adapter_name);
  }
  return absl::OkStatus();
}

// base overlaid with the keys of `over`.
nlohmann::json Overlay(nlohmann::json base, const nlohmann::json& over) {
  if (!base.is_object()) base = nlohmann::json::object();
  for (const auto& [k, v] : over.items()) base[k] = v;
  return base;
}

}  // namespace

JobService::JobService(Store& store, std::string artifacts_root, double lease_seconds)
    : store_(store), artifacts_root_(std::move(artifacts_root)), lease_seconds_(lease_seconds) {}

absl::StatusOr<JobRecord> JobService::FindJob(Tx& tx, const std::string& ref, const std::string& kind) {
  std::optional<JobRecord> job = IsUuid(ref) ? jobs_.GetById(tx, ref) : jobs_.GetByName(tx, ref);
  if (!job || (!kind.empty() && job->kind != kind)) return NotFoundJob(ref, kind);
  return *job;
}

absl::Status CheckJobInputRefs(const JobInputRefs& refs) {
  RETURN_IF_ERROR(CheckReference(refs.model, "model"));
  RETURN_IF_ERROR(CheckReference(refs.dataset, "dataset"));
  RETURN_IF_ERROR(CheckReference(refs.prompt, "prompt"));
  if (!refs.model_revision_id.empty()) RETURN_IF_ERROR(CheckUuid(refs.model_revision_id, "model_revision_id"));
  if (!refs.dataset_revision_id.empty()) RETURN_IF_ERROR(CheckUuid(refs.dataset_revision_id, "dataset_revision_id"));
  return absl::OkStatus();
}

absl::StatusOr<JobInputs> ResolveJobInputs(Tx& tx, const JobInputRefs& in) {
  ModelRepository models;
  DatasetRepository datasets;
  JobInputs out;
  ASSIGN_OR_RETURN(out.model, FindModelByRef(tx, in.model));
  const ModelRecord* model = &out.model;
  std::optional<ModelRevisionRecord> model_revision = model->latest_revision;
  if (!in.model_revision_id.empty()) {
    model_revision = models.GetRevision(tx, in.model_revision_id);
    if (!model_revision || model_revision->model_id != model->id) {
      return absl::NotFoundError(absl::StrCat("model_revision_id ", in.model_revision_id, " is not a revision of model '",
                                              model->name, "'; ListModelRevisions shows its revisions"));
    }
  }
  if (!model_revision) return absl::FailedPreconditionError(absl::StrCat("model '", model->name, "' has no revision"));
  out.model_revision = *model_revision;
  ASSIGN_OR_RETURN(out.dataset, FindDatasetByRef(tx, in.dataset));
  const DatasetRecord* dataset = &out.dataset;
  std::optional<DatasetRevisionRecord> dataset_revision = dataset->latest_revision;
  if (!in.dataset_revision_id.empty()) {
    dataset_revision = datasets.GetRevision(tx, in.dataset_revision_id);
    if (!dataset_revision || dataset_revision->dataset_id != dataset->id) {
      return absl::NotFoundError(absl::StrCat("dataset_revision_id ", in.dataset_revision_id,
                                              " is not a revision of dataset '", dataset->name,
                                              "'; ListDatasetRevisions shows its revisions"));
    }
  }
  if (!dataset_revision) {
    return absl::FailedPreconditionError(absl::StrCat("dataset '", dataset->name, "' has no revision"));
  }
  out.dataset_revision = *dataset_revision;
  ASSIGN_OR_RETURN(out.prompt, FindPromptByRef(tx, in.prompt));
  if (out.prompt.dataset_id != dataset->id) {
    return absl::InvalidArgumentError(absl::StrCat("prompt '", out.prompt.name,
                                                   "' was made for another dataset; use a prompt of dataset '",
                                                   dataset->name, "' (AddPrompt with dataset ", dataset->name, ")"));
  }
  return out;
}

absl::StatusOr<JobRecord> JobService::StartJob(const StartJobInput& in) {
  if (!in.name.empty()) RETURN_IF_ERROR(CheckName(in.name, "name"));
  RETURN_IF_ERROR(CheckDescription(in.description, "description"));
  const JobInputRefs refs{in.model, in.model_revision_id, in.dataset, in.dataset_revision_id, in.prompt};
  RETURN_IF_ERROR(CheckJobInputRefs(refs));
  if (!in.adapter_name.empty()) RETURN_IF_ERROR(CheckName(in.adapter_name, "adapter_name"));
  if (in.max_attempts < 0 || in.max_attempts > 10) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_attempts is ", in.max_attempts, "; it must be between 1 and 10 (0 means the default, 3)"));
  }
  for (size_t i = 0; i < in.configs.size(); ++i) {
    RETURN_IF_ERROR(CheckReference(in.configs[i], absl::StrCat("configs[", i, "]")));
  }
  nlohmann::json lora_overrides = nlohmann::json::object(), training_overrides = nlohmann::json::object();
  if (in.lora.is_object() && !in.lora.empty()) {
    ASSIGN_OR_RETURN(lora_overrides, ValidateConfigContent("lora", in.lora, "lora"));
  }
  if (in.training.is_object() && !in.training.empty()) {
    ASSIGN_OR_RETURN(training_overrides, ValidateConfigContent("training", in.training, "training"));
  }

  JobRecord created;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ConfigRepository configs;
    AdapterRepository adapters;
    ASSIGN_OR_RETURN(const JobInputs inputs, ResolveJobInputs(tx, refs));
    const ModelRecord* model = &inputs.model;
    const ModelRevisionRecord* model_revision = &inputs.model_revision;
    const DatasetRecord* dataset = &inputs.dataset;
    const DatasetRevisionRecord* dataset_revision = &inputs.dataset_revision;
    const PromptRecord* prompt = &inputs.prompt;

    // Settings: the family's defaults, then the given configs, then the overrides.
    nlohmann::json settings = {{"lora", nlohmann::json::object()}, {"training", nlohmann::json::object()}};
    nlohmann::json config_ids = nlohmann::json::array();
    std::set<std::string> given_types;
    for (size_t i = 0; i < in.configs.size(); ++i) {
      const std::string& ref = in.configs[i];
      std::optional<ConfigRecord> c = IsUuid(ref) ? configs.GetById(tx, ref) : configs.GetByName(tx, ref);
      if (!c) {
        return absl::NotFoundError(
            absl::StrCat("configs[", i, "]: config '", ref, "' not found; ListConfigs shows the configs"));
      }
      if (c->type != "lora" && c->type != "training") {
        return absl::InvalidArgumentError(absl::StrCat("configs[", i, "]: config '", ref, "' is a ", c->type,
                                                       " config; fine-tuning takes lora and training configs"));
      }
      if (!given_types.insert(c->type).second) {
        return absl::InvalidArgumentError(absl::StrCat("configs[", i, "]: a second ", c->type,
                                                       " config; give at most one config of each type"));
      }
      settings[c->type] = nlohmann::json::parse(c->content);
      config_ids.push_back(c->id);
    }
    for (const char* type : {"lora", "training"}) {
      if (given_types.count(type)) continue;
      ConfigListFilter filter;
      filter.type = type;
      filter.family = model_revision->family;
      filter.defaults_only = true;
      filter.limit = 1;
      std::vector<ConfigRecord> defaults = configs.List(tx, filter);
      if (!defaults.empty()) {
        settings[type] = nlohmann::json::parse(defaults[0].content);
        config_ids.push_back(defaults[0].id);
      }
    }
    settings["lora"] = Overlay(settings["lora"], lora_overrides);
    // Progress is streamed every step unless the job says otherwise (heartbeats coalesce it).
    if (!settings["training"].contains("logging_steps")) settings["training"]["logging_steps"] = 1;
    settings["training"] = Overlay(settings["training"], training_overrides);
    ASSIGN_OR_RETURN(settings["lora"], ValidateConfigContent("lora", settings["lora"], "lora"));
    ASSIGN_OR_RETURN(settings["training"], ValidateConfigContent("training", settings["training"], "training"));
    // The targets must exist in this model (e.g. phi3 fuses qkv_proj and gate_up_proj).
    ASSIGN_OR_RETURN(ModelArchitecture arch, ParseModelConfig(model_revision->config_json, "", "model config.json"));
    const auto shapes = LoraTargetShapes(arch);
    const nlohmann::json& targets = settings["lora"].value("target_modules", nlohmann::json());
    if (targets.is_array()) {
      std::vector<std::string> known;
      for (const auto& [name, shape] : shapes) known.push_back(name);
      for (const auto& t : targets) {
        if (!shapes.count(t.get<std::string>())) {
          return absl::InvalidArgumentError(absl::StrCat("lora.target_modules: '", t.get<std::string>(),
                                                         "' is not a linear layer of this ", model_revision->family,
                                                         " model; use some of ", absl::StrJoin(known, ", "),
                                                         " or \"all-linear\""));
        }
      }
    }
    if (settings["training"].value("full_finetune", false)) {
      return absl::UnimplementedError("training.full_finetune is not supported yet; train a LoRA adapter instead");
    }

    JobRecord job;
    job.name = in.name.empty()
                   ? absl::StrCat(model->name, "-", dataset->name, "-", absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone()))
                   : in.name;
    if (jobs_.GetByName(tx, job.name)) {
      return absl::AlreadyExistsError(absl::StrCat("a fine-tuning job named '", job.name,
                                                   "' exists; choose another name or remove that job"));
    }
    job.adapter_name = in.adapter_name.empty() ? job.name : in.adapter_name;
    if (adapters.GetByName(tx, job.adapter_name)) {
      return absl::AlreadyExistsError(absl::StrCat(
          (in.adapter_name.empty() ? "name" : "adapter_name"), ": an adapter named '", job.adapter_name,
          "' exists; choose another adapter_name or remove that adapter"));
    }
    job.description = in.description;
    job.model_id = model->id;
    job.model_revision_id = model_revision->id;
    job.dataset_id = dataset->id;
    job.dataset_revision_id = dataset_revision->id;
    job.prompt_id = prompt->id;
    job.config_ids = config_ids;
    job.settings = settings;
    job.max_attempts = in.max_attempts == 0 ? 3 : in.max_attempts;
    created = jobs_.Insert(tx, job, artifacts_root_);
    created.last_sequence = jobs_.AddEvent(tx, created.id, StateEvent("QUEUED", "job queued"));
    return absl::OkStatus();
  }));
  return created;
}

absl::StatusOr<JobRecord> JobService::GetJob(const std::string& ref, const std::string& kind) {
  RETURN_IF_ERROR(CheckReference(ref, "job"));
  JobRecord job;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(job, FindJob(tx, ref, kind));
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<JobPage> JobService::ListJobs(const ListJobsInput& in) {
  ASSIGN_OR_RETURN(PageRequest page, ParsePage(in.page_size, in.page_token, "jobs"));
  JobListFilter filter;
  for (const std::string& s : in.states) {
    if (std::find(std::begin(kStates), std::end(kStates), s) == std::end(kStates)) {
      return absl::InvalidArgumentError(absl::StrCat("states: '", s, "' is not a job state"));
    }
    filter.states.push_back(s);
  }
  for (const std::string& k : in.kinds) {
    if (std::find(std::begin(kKinds), std::end(kKinds), k) == std::end(kKinds)) {
      return absl::InvalidArgumentError(absl::StrCat("kinds: '", k, "' is not a job kind"));
    }
    filter.kinds.push_back(k);
  }
  if (!page.after.empty()) {
    RETURN_IF_ERROR(ParseTimeIdKey(page.after, &filter.after_create_us, &filter.after_id));
  }
  filter.limit = page.limit + 1;
  JobPage out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    if (!in.model.empty()) {
      RETURN_IF_ERROR(CheckReference(in.model, "model"));
      ASSIGN_OR_RETURN(const ModelRecord model, FindModelByRef(tx, in.model));
      filter.model_id = model.id;
    }
    out.jobs = jobs_.List(tx, filter);
    return absl::OkStatus();
  }));
  if (static_cast<int>(out.jobs.size()) > page.limit) {
    out.jobs.resize(page.limit);
    const JobRecord& last = out.jobs.back();
    out.next_page_token = MakePageToken("jobs", TimeIdKey(last.create_time, last.id));
  }
  return out;
}

absl::StatusOr<JobRecord> JobService::CancelJob(const std::string& ref, const std::string& kind) {
  RETURN_IF_ERROR(CheckReference(ref, "job"));
  JobRecord job;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord found, FindJob(tx, ref, kind));
    ASSIGN_OR_RETURN(job, [&]() -> absl::StatusOr<JobRecord> { return *jobs_.Lock(tx, found.id); }());
    if (IsFinalJobState(job.state) || job.state == "CANCELLING") return absl::OkStatus();  // nothing left to do
    job.cancel_requested = true;
    if (job.state == "QUEUED") {
      job.state = "CANCELLED";
      jobs_.Update(tx, job, 0, /*ended=*/true);
      jobs_.AddEvent(tx, job.id, StateEvent("CANCELLED", "cancelled before a trainer started it"));
    } else {
      job.state = "CANCELLING";
      jobs_.Update(tx, job, -1, false);
      jobs_.AddEvent(tx, job.id, StateEvent("CANCELLING", "cancel requested; waiting for the trainer to stop"));
    }
    return absl::OkStatus();
  }));
  return job;
}

absl::Status JobService::RemoveJob(const std::string& ref, const std::string& kind) {
  RETURN_IF_ERROR(CheckReference(ref, "job"));
  return store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, FindJob(tx, ref, kind));
    if (!IsFinalJobState(job.state)) {
      return absl::FailedPreconditionError(absl::StrCat("job '", job.name, "' is ", job.state, "; cancel it (",
                                                        CancelRpc(kind), ") and remove it once it ends"));
    }
    if (job.kind == kJobKindExport) ModelRepository().SettleExport(tx, job.id);
    jobs_.Delete(tx, job.id);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<CheckpointRecord>> JobService::ListCheckpoints(const std::string& ref) {
  RETURN_IF_ERROR(CheckReference(ref, "job"));
  std::vector<CheckpointRecord> out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, FindJob(tx, ref));
    out = jobs_.Checkpoints(tx, job.id);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<JobEventRecord>> JobService::Events(const std::string& job_id, int64_t after_sequence,
                                                               int limit) {
  std::vector<JobEventRecord> out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    out = jobs_.Events(tx, job_id, after_sequence, limit);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<int> JobService::SweepExpired(Tx& tx) {
  int ended = 0;
  for (JobRecord job : jobs_.Expired(tx)) {
    ++ended;
    const bool cancelling = job.state == "CANCELLING";
    job.state = cancelling ? "CANCELLED" : "FAILED";
    if (!cancelling) {
      job.error_code = "ABORTED";
      job.error_message = absl::StrCat("the trainer stopped reporting and all ", job.max_attempts,
                                       " attempts are used; check the trainers' logs, then start the job again");
    }
    jobs_.Update(tx, job, 0, /*ended=*/true);
    jobs_.AddEvent(tx, job.id,
                   StateEvent(job.state, cancelling ? "cancelled (the trainer stopped reporting)" : job.error_message,
                              cancelling ? "info" : "error"));
  }
  return ended;
}

absl::StatusOr<std::optional<LeasedJob>> JobService::LeaseJob(const std::string& worker_id) {
  RETURN_IF_ERROR(CheckText(worker_id, "worker_id", 256));
  if (worker_id.empty()) return absl::InvalidArgumentError("worker_id is empty; every trainer needs an id");
  std::optional<LeasedJob> out;
  int64_t expiries = 0;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(expiries, SweepExpired(tx));
    bool lease_expired = false;
    std::optional<JobRecord> job = jobs_.Lease(tx, worker_id, lease_seconds_, &lease_expired);
    expiries += lease_expired ? 1 : 0;
    // A trainer writes where the job says: a job whose folders are not its own in the artifacts directory (a
    // database edited by hand) ends FAILED instead of being handed out.
    while (job && (job->output_dir != JobOutputDir(artifacts_root_, job->id, job->kind) ||
                   job->checkpoint_dir != JobCheckpointDir(artifacts_root_, job->id))) {
      EndBeforeStart(tx, &*job,
                     "the job's output_dir or checkpoint_dir is not its own folder in the artifacts directory, so no "
                     "trainer may run it; start the job again");
      job = jobs_.Lease(tx, worker_id, lease_seconds_, &lease_expired);
      expiries += lease_expired ? 1 : 0;
    }
    if (!job) return absl::OkStatus();
    LeasedJob leased;
    leased.job = *job;
    ModelRepository models;
    DatasetRepository datasets;
    PromptRepository prompts;
    leased.model = *models.GetById(tx, job->model_id);
    leased.model_revision = *models.GetRevision(tx, job->model_revision_id);
    if (job->kind == kJobKindExport) {
      std::optional<ModelExportRecord> e =
          job->export_id.empty() ? std::nullopt : models.GetExport(tx, job->export_id);
      std::optional<AdapterRecord> adapter =
          e.has_value() ? AdapterRepository().GetById(tx, e->adapter_id) : std::nullopt;
      if (!adapter.has_value()) {  // the adapter or export was removed while the job waited
        EndBeforeStart(tx, &*job, "the export or its adapter was removed before a trainer started the job");
        return absl::OkStatus();
      }
      leased.export_record = *e;
      leased.adapter = *adapter;
    } else {
      leased.dataset = *datasets.GetById(tx, job->dataset_id);
      leased.dataset_revision = *datasets.GetRevision(tx, job->dataset_revision_id);
      leased.prompt = *prompts.GetById(tx, job->prompt_id);
    }
    if (job->kind == kJobKindEvaluation) {
      AdapterRepository adapters;
      for (const std::string& id : EvaluationAdapterIds(job->settings)) {
        std::optional<AdapterRecord> adapter = IsUuid(id) ? adapters.GetById(tx, id) : std::nullopt;
        if (!adapter.has_value()) {
          EndBeforeStart(tx, &*job,
                         absl::StrCat("adapter ", id, " was removed before a trainer started the evaluation; start "
                                      "the evaluation again without it"));
          return absl::OkStatus();
        }
        leased.evaluated_adapters.push_back(*std::move(adapter));
      }
    }
    jobs_.AddEvent(tx, job->id,
                   StateEvent("RUNNING", absl::StrCat("attempt ", job->attempts, " of ", job->max_attempts,
                                                      " started on trainer ", worker_id)));
    out = std::move(leased);
    return absl::OkStatus();
  }));
  lease_expiries_ += expiries;  // counted once the transaction that ended or re-leased the jobs committed
  return out;
}

void JobService::EndBeforeStart(Tx& tx, JobRecord* job, const std::string& message) {
  job->state = "FAILED";
  job->error_code = "FAILED_PRECONDITION";
  job->error_message = message;
  jobs_.Update(tx, *job, 0, /*ended=*/true);
  jobs_.AddEvent(tx, job->id, StateEvent("FAILED", job->error_message, "error"));
}

absl::StatusOr<std::map<std::string, int64_t>> JobService::CountJobsByState() {
  std::map<std::string, int64_t> out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    out = jobs_.CountByState(tx);
    return absl::OkStatus();
  }));
  for (const char* state : kStates) out.emplace(state, 0);  // every state, so a series drops to 0 rather than vanishing
  return out;
}

absl::StatusOr<JobRecord> JobService::LockOwned(Tx& tx, const std::string& job_id, int attempt,
                                                const std::string& worker_id) {
  RETURN_IF_ERROR(CheckUuid(job_id, "job_id"));
  std::optional<JobRecord> job = jobs_.Lock(tx, job_id);
  if (!job) return NotFoundJob(job_id);
  if (job->attempts != attempt || (job->state != "RUNNING" && job->state != "CANCELLING")) {
    return absl::FailedPreconditionError(absl::StrCat("lease lost: job ", job_id, " is ", job->state, " at attempt ",
                                                      job->attempts, "; attempt ", attempt, " must stop"));
  }
  if (job->worker_id != worker_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease lost: job ", job_id, " attempt ", attempt, " belongs to trainer ", job->worker_id));
  }
  return *job;
}

absl::StatusOr<HeartbeatResult> JobService::Heartbeat(const HeartbeatInput& in) {
  HeartbeatResult result;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, LockOwned(tx, in.job_id, in.attempt, in.worker_id));
    for (size_t i = 0; i < in.checkpoints.size(); ++i) {
      RETURN_IF_ERROR(CheckPathUnder(in.checkpoints[i].path, job.checkpoint_dir,
                                     absl::StrCat("checkpoints[", i, "].path"), "the job's checkpoint_dir"));
    }
    for (const auto& [level, message] : in.logs) {
      JobEventRecord e;
      e.kind = "log";
      e.level = level.empty() ? "info" : level;
      e.message = message;
      jobs_.AddEvent(tx, job.id, e);
    }
    for (CheckpointRecord c : in.checkpoints) {
      c.attempt = in.attempt;
      jobs_.AddCheckpoint(tx, job.id, c);
      JobEventRecord e;
      e.kind = "checkpoint";
      e.message = absl::StrCat("checkpoint at step ", c.step, " saved to ", c.path);
      jobs_.AddEvent(tx, job.id, e);
    }
    if (in.has_progress) {
      job.progress = in.progress;
      job.metrics = in.metrics;
      std::vector<std::pair<nlohmann::json, nlohmann::json>> updates = in.updates;
      if (updates.empty()) updates.emplace_back(in.progress, in.metrics);
      for (const auto& [progress, metrics] : updates) {
        JobEventRecord e;
        e.kind = "progress";
        e.progress = progress;
        e.metrics = metrics;
        jobs_.AddEvent(tx, job.id, e);
      }
    }
    result.lease_deadline = jobs_.Update(tx, job, lease_seconds_, false);
    result.cancel_requested = job.cancel_requested;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<CompletedJob> JobService::CompleteJob(const CompleteJobInput& in) {
  const std::string& job_id = in.job_id;
  const int attempt = in.attempt;
  const std::string& worker_id = in.worker_id;
  const std::string& output_dir = in.output_dir;
  const nlohmann::json& progress = in.progress;
  const nlohmann::json& metrics = in.metrics;
  CompletedJob out;
  std::optional<ModelExportRecord> export_record;
  JobRecord export_job;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, LockOwned(tx, job_id, attempt, worker_id));
    // Only the job's own output folder is accepted: trainers cannot make the server read elsewhere.
    if (output_dir != job.output_dir) {
      return absl::InvalidArgumentError(
          absl::StrCat("adapter_dir must be the job's output_dir ", job.output_dir, ", not ", output_dir));
    }
    if (job.kind == kJobKindEvaluation) return RecordEvaluation(tx, std::move(job), in);
    if (!in.evaluation_results.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("evaluation_results are for evaluation jobs; job ", job.id, " is a ", job.kind, " job"));
    }
    ModelRepository models;
    if (job.kind == kJobKindExport) {  // published below, outside this transaction: it moves files and hashes them
      export_record = job.export_id.empty() ? std::nullopt : models.GetExport(tx, job.export_id);
      if (!export_record.has_value()) {
        return absl::FailedPreconditionError(absl::StrCat("export job ", job.id, " has no export record any more"));
      }
      export_job = job;
      return absl::OkStatus();
    }
    std::optional<ModelRevisionRecord> revision = models.GetRevision(tx, job.model_revision_id);
    ASSIGN_OR_RETURN(ModelArchitecture arch, ParseModelConfig(revision->config_json, "", "base model config.json"));
    ASSIGN_OR_RETURN(LocalAdapterInfo local, InspectLocalAdapterDirectory(output_dir, arch));
    AdapterRecord adapter = AdapterRecordFromDirectory(local, "trained");
    AdapterRepository adapters;
    adapter.name = job.adapter_name;
    if (adapters.GetByName(tx, adapter.name)) adapter.name = absl::StrCat(job.adapter_name, "-", job.id.substr(0, 8));
    adapter.description = absl::StrCat("trained by fine-tuning job ", job.name);
    adapter.model_id = job.model_id;
    adapter.model_revision_id = job.model_revision_id;
    adapter.job_id = job.id;
    out.adapter_id = adapters.Insert(tx, adapter);
    job.adapter_id = out.adapter_id;
    job.state = "SUCCEEDED";
    if (progress.is_object() && !progress.empty()) job.progress = progress;
    if (metrics.is_object() && !metrics.empty()) job.metrics = metrics;
    jobs_.Update(tx, job, 0, /*ended=*/true);
    jobs_.AddEvent(tx, job.id, StateEvent("SUCCEEDED", absl::StrCat("adapter '", adapter.name, "' (",
                                                                    out.adapter_id, ") registered")));
    return absl::OkStatus();
  }));
  if (!export_record.has_value()) return out;

  absl::StatusOr<PublishedExport> published =
      publish_export_ ? publish_export_(export_job, *export_record)
                      : absl::UnimplementedError("this server cannot publish exports");
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, LockOwned(tx, job_id, attempt, worker_id));
    if (progress.is_object() && !progress.empty()) job.progress = progress;
    if (metrics.is_object() && !metrics.empty()) job.metrics = metrics;
    ModelRepository models;
    if (!published.ok()) {
      job.state = "FAILED";
      job.error_code = absl::StatusCodeToString(published.status().code());
      job.error_message = std::string(published.status().message());
      jobs_.Update(tx, job, 0, /*ended=*/true);
      jobs_.AddEvent(tx, job.id, StateEvent("FAILED", absl::StrCat(job.error_code, ": ", job.error_message), "error"));
      models.SetExportResult(tx, export_record->id, "", "", "failed");
      return absl::OkStatus();
    }
    job.state = "SUCCEEDED";
    jobs_.Update(tx, job, 0, /*ended=*/true);
    models.SetExportResult(tx, export_record->id, published->exported_model_id, published->exported_model_revision_id,
                           "succeeded");
    jobs_.AddEvent(tx, job.id,
                   StateEvent("SUCCEEDED", published->exported_model_id.empty()
                                               ? absl::StrCat("adapter exported to ", published->destination)
                                               : absl::StrCat("merged model '", published->exported_model_name,
                                                              "' (", published->exported_model_id, ") registered at ",
                                                              published->destination)));
    return absl::OkStatus();
  }));
  if (!published.ok()) return published.status();
  out.export_destination = published->destination;
  out.exported_model_id = published->exported_model_id;
  return out;
}

absl::Status JobService::RecordEvaluation(Tx& tx, JobRecord job, const CompleteJobInput& in) {
  const std::vector<std::string> adapter_ids = EvaluationAdapterIds(job.settings);
  std::vector<CandidateResultRecord> results = in.evaluation_results;
  RETURN_IF_ERROR(CheckEvaluationResults(adapter_ids, &results));
  AdapterRepository adapters;
  EvaluationRepository evaluations;
  std::vector<std::string> summary;
  for (size_t i = 0; i < results.size(); ++i) {
    CandidateResultRecord& r = results[i];
    if (i > 0) {
      // Named as the adapter is named now; one removed while the job ran keeps the name its trainer reported.
      std::optional<AdapterRecord> adapter = adapters.GetById(tx, r.adapter_id);
      if (adapter.has_value()) {
        r.adapter_name = adapter->name;
      } else {
        r.adapter_id.clear();
      }
    }
    evaluations.InsertResult(tx, job.id, static_cast<int>(i), r);
    summary.push_back(absl::StrFormat("%s loss %.4g (ppl %.4g)", i == 0 ? "base" : r.adapter_name, r.loss,
                                      r.perplexity));
  }
  job.state = "SUCCEEDED";
  if (in.progress.is_object() && !in.progress.empty()) job.progress = in.progress;
  if (in.metrics.is_object() && !in.metrics.empty()) job.metrics = in.metrics;
  jobs_.Update(tx, job, 0, /*ended=*/true);
  const std::string split = job.settings.value(nlohmann::json::json_pointer("/evaluation/split"), std::string("test"));
  jobs_.AddEvent(tx, job.id,
                 StateEvent("SUCCEEDED", absl::StrCat("evaluated on ", results[0].examples, " examples of the ", split,
                                                      " split: ", absl::StrJoin(summary, "; "))));
  return absl::OkStatus();
}

absl::StatusOr<std::string> JobService::FailJob(const FailJobInput& in) {
  std::string state;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, LockOwned(tx, in.job_id, in.attempt, in.worker_id));
    if (job.cancel_requested || in.cancelled) {
      job.state = "CANCELLED";
      jobs_.Update(tx, job, 0, true);
      jobs_.AddEvent(tx, job.id, StateEvent("CANCELLED", "cancelled; the trainer stopped"));
    } else if (in.retryable && job.attempts < job.max_attempts) {
      job.state = "QUEUED";
      job.worker_id = "";
      jobs_.Update(tx, job, 0, false);
      jobs_.AddEvent(tx, job.id,
                     StateEvent("QUEUED", absl::StrCat("attempt ", job.attempts, " failed (", in.code, ": ", in.message,
                                                       "); queued again"),
                                "warning"));
    } else {
      job.state = "FAILED";
      job.error_code = in.code.empty() ? "UNKNOWN" : in.code;
      job.error_message = in.message;
      jobs_.Update(tx, job, 0, true);
      jobs_.AddEvent(tx, job.id, StateEvent("FAILED", absl::StrCat(job.error_code, ": ", in.message), "error"));
    }
    state = job.state;
    return absl::OkStatus();
  }));
  return state;
}

}  // namespace tuneforge
