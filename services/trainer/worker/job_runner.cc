// One leased job: sources -> rows -> RunFineTune.
#include "services/trainer/worker/job_runner.h"

#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/allowed_roots.h"
#include "common/dataset_files.h"
#include "common/hf_cache.h"
#include "common/status_macros.h"
#include "services/trainer/worker/trainer_metrics.h"

namespace tuneforge {

namespace {

// Job ids are UUIDs: nothing in one can climb out of the jobs folder.
bool IsJobId(const std::string& id) {
  return id.size() == 36 && id.find_first_not_of("0123456789abcdefABCDEF-") == std::string::npos;
}

nlohmann::json StructToJson(const google::protobuf::Struct& s) {
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(s, &text);
  return nlohmann::json::parse(text.empty() ? "{}" : text);
}

// A Hub repo's snapshot at the revision's commit, downloaded (or found) in the cache, with progress as events.
// `only`: the repo paths to fetch (a dataset revision's files); empty: every file.
absl::StatusOr<std::string> HubSnapshotDir(RepoKind kind, const std::string& repo, const std::string& sha,
                                           const JobRunnerOptions& options, const FineTuneHooks& hooks,
                                           const std::vector<std::string>& only = {}) {
  if (options.hub == nullptr) return absl::FailedPreconditionError("this trainer has no Hub client");
  HubDownloadOptions download;
  download.cache_dir = options.cache_dir;
  for (const std::string& path : only) {
    // Each path as a pattern that matches it alone: '*', '?' and '[' become classes of themselves.
    std::string pattern;
    for (char c : path) {
      if (c == '*' || c == '?' || c == '[') {
        pattern += '[';
        pattern += c;
        pattern += ']';
      } else {
        pattern += c;
      }
    }
    download.allow_patterns.push_back(std::move(pattern));
  }
  download.cancelled = hooks.cancelled;
  int last_decile = -1;
  int64_t counted_bytes = 0;
  download.progress = [&](const HubDownloadProgress& p) {
    if (options.metrics != nullptr && p.bytes_received > counted_bytes) {
      options.metrics->AddDownloadedBytes(p.bytes_received - counted_bytes);
      counted_bytes = p.bytes_received;
    }
    if (p.bytes_total <= 0 || !hooks.on_event) return;
    const int decile = static_cast<int>(10 * p.bytes_done / p.bytes_total);
    if (decile == last_decile) return;
    last_decile = decile;
    char line[160];
    std::snprintf(line, sizeof(line), "downloading %s: %.1f of %.1f MB, %d of %d files", repo.c_str(),
                  p.bytes_done / 1e6, p.bytes_total / 1e6, p.files_done, p.files_total);
    hooks.on_event("info", line);
  };
  ASSIGN_OR_RETURN(HubSnapshot snapshot, DownloadSnapshot(*options.hub, kind, repo, sha, options.hf_token, download));
  int64_t fetched = 0;
  for (const HubSnapshotFile& f : snapshot.files) fetched += f.was_cached ? 0 : f.size;
  if (hooks.on_event) {
    hooks.on_event("info", absl::StrCat(RepoKindName(kind), " ", repo, "@", snapshot.commit_sha.substr(0, 12), ": ",
                                        snapshot.files.size(), " files ready in the cache (", fetched / 1000000,
                                        " MB downloaded)"));
  }
  return snapshot.snapshot_dir;
}

// Rows of the files in order, each with a label saying where it is ("train.jsonl row 11").
struct Rows {
  std::vector<nlohmann::json> rows;
  std::vector<std::string> labels;
};

// Each file in its own format: a Hub config may hold .json and .jsonl files together.
absl::StatusOr<Rows> LoadRows(const std::vector<std::string>& files, const std::string& base_dir) {
  Rows out;
  for (const std::string& f : files) {
    ASSIGN_OR_RETURN(DatasetFormat format, DatasetFormatFromPath(f, "dataset.files"));
    const std::string path = base_dir.empty() ? f : base_dir + "/" + f;
    ASSIGN_OR_RETURN(DatasetFileContent content, LoadDatasetFile(path, format, path));
    const std::string name = f.substr(f.find_last_of('/') + 1);
    for (size_t i = 0; i < content.rows.size(); ++i) {
      out.rows.push_back(std::move(content.rows[i]));
      out.labels.push_back(absl::StrCat(name, " row ", i + 1));
    }
  }
  return out;
}

// The trainer writes only where its own artifacts directory keeps this job, whatever the lease says.
absl::Status CheckJobFolders(const internal::v1::JobLease& lease, const JobRunnerOptions& options) {
  const std::string job_dir = absl::StrCat(options.artifacts_dir, "/jobs/", lease.job_id());
  constexpr char kJobDir[] = "this job's folder in the trainer's artifacts directory (tuneforge-trainer --artifacts-dir)";
  if (options.artifacts_dir.empty() || !IsJobId(lease.job_id())) {
    return absl::InvalidArgumentError("the lease names no job folder this trainer may write to");
  }
  RETURN_IF_ERROR(CheckPathUnder(lease.output_dir(), job_dir, "output_dir", kJobDir));
  return CheckPathUnder(lease.checkpoint_dir(), job_dir, "checkpoint_dir", kJobDir);
}

// The base model's directory: its Hub snapshot in the cache, or the local directory.
absl::StatusOr<std::string> ModelDir(const internal::v1::JobLease& lease, const JobRunnerOptions& options,
                                     const FineTuneHooks& hooks) {
  const auto& model = lease.model();
  if (model.type() == "huggingface") {
    return HubSnapshotDir(RepoKind::kModel, model.source(), model.commit_sha(), options, hooks);
  }
  return model.source();
}

// The dataset revision's train and test rows: the recorded files, or the split the metadata service generated.
struct DatasetSplits {
  Rows train, test;
};

absl::StatusOr<DatasetSplits> LoadDatasetSplits(const internal::v1::JobLease& lease, const JobRunnerOptions& options,
                                                const FineTuneHooks& hooks) {
  const auto& ds = lease.dataset();
  if (ds.train_files().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("dataset ", ds.source(), " has no train files recorded"));
  }
  std::vector<std::string> train_files(ds.train_files().begin(), ds.train_files().end());
  std::vector<std::string> test_files(ds.test_files().begin(), ds.test_files().end());
  std::string base_dir;
  if (ds.type() == "huggingface") {
    // Only the revision's files: a repo's other configs and splits may be far larger.
    std::vector<std::string> wanted = train_files;
    wanted.insert(wanted.end(), test_files.begin(), test_files.end());
    ASSIGN_OR_RETURN(base_dir,
                     HubSnapshotDir(RepoKind::kDataset, ds.source(), ds.commit_sha(), options, hooks, wanted));
  }
  ASSIGN_OR_RETURN(Rows train_rows, LoadRows(train_files, base_dir));
  DatasetSplits out;
  if (ds.split_generated()) {
    // The same split the metadata service recorded for this revision.
    const SplitIndices split = TrainTestSplit(train_rows.rows.size(), ds.test_size(), ds.split_seed());
    for (size_t i : split.train) {
      out.train.rows.push_back(train_rows.rows[i]);
      out.train.labels.push_back(train_rows.labels[i]);
    }
    for (size_t i : split.test) {
      out.test.rows.push_back(train_rows.rows[i]);
      out.test.labels.push_back(train_rows.labels[i]);
    }
  } else {
    out.train = std::move(train_rows);
    ASSIGN_OR_RETURN(out.test, LoadRows(test_files, base_dir));
  }
  if (hooks.on_event) {
    hooks.on_event("info", absl::StrCat("dataset ", ds.source(), ": ", out.train.rows.size(), " train rows, ",
                                        out.test.rows.size(), " test rows"));
  }
  return out;
}

PromptFormat PromptOf(const internal::v1::JobLease& lease) {
  const auto& prompt = lease.prompt();
  PromptFormat out;
  out.mode = prompt.mode() == "chat"     ? PromptFormat::Mode::kChat
             : prompt.mode() == "alpaca" ? PromptFormat::Mode::kAlpaca
                                         : PromptFormat::Mode::kTemplate;
  out.input_template = prompt.input_template();
  out.completion_template = prompt.completion_template();
  out.messages_column = prompt.messages_column();
  out.message_format = prompt.message_format() == "sharegpt" ? PromptFormat::MessageFormat::kShareGpt
                                                              : PromptFormat::MessageFormat::kOpenAi;
  if (prompt.mode() == "alpaca") {
    out.instruction_column = prompt.instruction_column();
    out.input_column = prompt.input_column();
    out.output_column = prompt.output_column();
    out.alpaca_chat = prompt.use_chat_template();
  }
  return out;
}

}  // namespace

absl::StatusOr<ExportResult> RunLeasedExport(const internal::v1::JobLease& lease, const JobRunnerOptions& options,
                                             const FineTuneHooks& hooks) {
  RETURN_IF_ERROR(CheckJobFolders(lease, options));
  const internal::v1::ExportSpec& e = lease.export_();
  ExportSpec spec;
  spec.type = e.type();
  ASSIGN_OR_RETURN(spec.base_model_dir, ModelDir(lease, options, hooks));
  if (e.adapter().type() == "huggingface") {
    ASSIGN_OR_RETURN(spec.adapter_dir, HubSnapshotDir(RepoKind::kModel, e.adapter().source(),
                                                      e.adapter().commit_sha(), options, hooks));
  } else {
    spec.adapter_dir = e.adapter().source();
  }
  spec.output_dir = lease.output_dir();
  spec.dtype = e.dtype();
  if (e.max_shard_size() > 0) spec.max_shard_bytes = static_cast<uint64_t>(e.max_shard_size());
  // What an earlier attempt of this job left (it is this job's own folder).
  std::error_code ec;
  std::filesystem::remove_all(spec.output_dir, ec);

  ExportHooks export_hooks;
  export_hooks.on_event = hooks.on_event;
  export_hooks.cancelled = hooks.cancelled;
  int64_t reported = -1;
  export_hooks.on_progress = [&](int64_t done, int64_t total) {
    // About 50 reports per export: every one becomes a progress event.
    if (!hooks.on_progress || (done != total && reported >= 0 && (done - reported) * 50 < total)) return;
    reported = done;
    FineTuneProgress p;
    p.step = done;
    p.total_steps = total;
    hooks.on_progress(p);
  };
  return RunExport(spec, export_hooks);
}

absl::StatusOr<FineTuneResult> RunLeasedJob(const internal::v1::JobLease& lease, const JobRunnerOptions& options,
                                            const FineTuneHooks& hooks) {
  RETURN_IF_ERROR(CheckJobFolders(lease, options));
  FineTuneSpec spec;
  ASSIGN_OR_RETURN(spec.model_dir, ModelDir(lease, options, hooks));
  spec.base_model_name = lease.base_model_name();
  ASSIGN_OR_RETURN(DatasetSplits splits, LoadDatasetSplits(lease, options, hooks));
  spec.train_rows = std::move(splits.train.rows);
  spec.train_row_labels = std::move(splits.train.labels);
  spec.test_rows = std::move(splits.test.rows);
  spec.test_row_labels = std::move(splits.test.labels);
  spec.prompt = PromptOf(lease);
  const nlohmann::json settings = StructToJson(lease.settings());
  spec.lora = settings.value("lora", nlohmann::json::object());
  spec.training = settings.value("training", nlohmann::json::object());
  spec.output_dir = lease.output_dir();
  spec.checkpoint_dir = lease.checkpoint_dir();
  spec.threads = options.threads;
  return RunFineTune(spec, hooks);
}

absl::StatusOr<std::vector<CandidateMetrics>> RunLeasedEvaluation(const internal::v1::JobLease& lease,
                                                                  const JobRunnerOptions& options,
                                                                  const FineTuneHooks& hooks) {
  RETURN_IF_ERROR(CheckJobFolders(lease, options));
  EvaluateSpec spec;
  ASSIGN_OR_RETURN(spec.model_dir, ModelDir(lease, options, hooks));
  for (const internal::v1::EvaluationAdapter& a : lease.evaluation().adapters()) {
    EvaluationCandidate c;
    c.adapter_id = a.id();
    c.adapter_name = a.name();
    if (a.source().type() == "huggingface") {
      ASSIGN_OR_RETURN(c.adapter_dir, HubSnapshotDir(RepoKind::kModel, a.source().source(), a.source().commit_sha(),
                                                     options, hooks));
    } else {
      c.adapter_dir = a.source().source();
    }
    spec.adapters.push_back(std::move(c));
  }
  const nlohmann::json settings = StructToJson(lease.settings());
  spec.evaluation = settings.value("evaluation", nlohmann::json::object());
  spec.generation = settings.value("generation", nlohmann::json::object());
  spec.split = spec.evaluation.value("split", std::string("test"));
  ASSIGN_OR_RETURN(DatasetSplits splits, LoadDatasetSplits(lease, options, hooks));
  Rows& rows = spec.split == "train" ? splits.train : splits.test;
  spec.rows = std::move(rows.rows);
  spec.row_labels = std::move(rows.labels);
  spec.prompt = PromptOf(lease);
  spec.threads = options.threads;
  EvaluateHooks evaluate_hooks;
  evaluate_hooks.on_event = hooks.on_event;
  evaluate_hooks.cancelled = hooks.cancelled;
  evaluate_hooks.on_progress = [&](int64_t done, int64_t total) {
    if (!hooks.on_progress) return;
    FineTuneProgress p;
    p.step = done;
    p.total_steps = total;
    hooks.on_progress(p);
  };
  return RunEvaluation(spec, evaluate_hooks);
}

}  // namespace tuneforge
