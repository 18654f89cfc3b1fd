// Datasets: resolve a source to a revision (Hub file listing or local files), then save_or_fetch it.
#include "services/metadata/dataset_service.h"

#include <algorithm>
#include <filesystem>
#include <cctype>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/dataset_files.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "services/metadata/job_repository.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace {

constexpr double kDefaultTestSize = 0.1;
constexpr uint64_t kDefaultSeed = 42;

// Parse errors of local files start with the file's path; prefix the request field so that the user knows which
// of the two paths is meant.
absl::Status NameLocalField(const absl::Status& status, const std::string& train_path, const std::string& test_path) {
  if (status.ok() || absl::StartsWith(status.message(), "local.")) return status;
  auto starts_with_path = [&](const std::string& path) {
    absl::string_view m = status.message();
    return !path.empty() && absl::StartsWith(m, path) &&
           (m.size() == path.size() || m[path.size()] == ':' || m[path.size()] == ' ');
  };
  const char* field = starts_with_path(test_path)    ? "local.test_path"
                      : starts_with_path(train_path) ? "local.train_path"
                                                     : nullptr;
  if (field == nullptr) return status;
  return absl::Status(status.code(), absl::StrCat(field, ": ", status.message()));
}

// Files of a Hub dataset repo that hold metadata rather than rows.
bool IsHubMetadataFile(const std::string& basename) {
  static const std::set<std::string>* names =
      new std::set<std::string>{"dataset_infos.json", "dataset_info.json", "dataset_dict.json", "state.json"};
  return basename.empty() || basename[0] == '.' || names->count(absl::AsciiStrToLower(basename)) > 0;
}

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Whether `keyword` occurs in `lower_path` as a word: not preceded or followed by a letter ("train-00000-of-00001",
// "data/train/x", "my_test.csv"; not "constraint"). Digits and punctuation count as separators, as in the
// datasets library's split-name patterns.
bool HasSplitWord(const std::string& lower_path, const std::string& keyword) {
  for (size_t pos = lower_path.find(keyword); pos != std::string::npos; pos = lower_path.find(keyword, pos + 1)) {
    const bool letter_before = pos > 0 && std::isalpha(static_cast<unsigned char>(lower_path[pos - 1]));
    const size_t end = pos + keyword.size();
    const bool letter_after = end < lower_path.size() && std::isalpha(static_cast<unsigned char>(lower_path[end]));
    if (!letter_before && !letter_after) return true;
  }
  return false;
}

// "train", "test" or "" (other splits such as validation, or a name that says both).
std::string GuessSplit(const std::string& path) {
  const std::string lower = absl::AsciiStrToLower(path);
  const bool train = HasSplitWord(lower, "train") || HasSplitWord(lower, "training");
  const bool test = HasSplitWord(lower, "test") || HasSplitWord(lower, "testing");
  if (train == test) return "";
  return train ? "train" : "test";
}

}  // namespace

DatasetService::DatasetService(Store& store, const AllowedRoots& roots, const HubClient& hub,
                               std::string default_hf_token, DatasetLimits limits)
    : store_(store), limits_(limits), roots_(roots), hub_(hub), default_hf_token_(std::move(default_hf_token)) {}

absl::Status DatasetService::CheckLimits(int64_t rows, int64_t bytes, const std::string& what) const {
  if (bytes > limits_.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " has ", bytes, " bytes of data files, over this server's limit of ", limits_.max_bytes,
        " bytes per dataset revision (tuneforge-metadata --max-dataset-bytes, TUNEFORGE_MAX_DATASET_BYTES); use a "
        "smaller dataset or subset, or ask the operator to raise the limit"));
  }
  if (rows > limits_.max_rows) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " has ", rows, " rows, over this server's limit of ", limits_.max_rows,
        " rows per dataset revision (tuneforge-metadata --max-dataset-rows, TUNEFORGE_MAX_DATASET_ROWS); use a "
        "smaller dataset or subset, or ask the operator to raise the limit"));
  }
  return absl::OkStatus();
}

absl::StatusOr<DatasetRevisionRecord> DatasetService::ResolveHuggingFace(const AddDatasetInput& input) {
  RETURN_IF_ERROR(ValidateRepoId(input.repo_id, "huggingface.repo_id"));
  RETURN_IF_ERROR(ValidateRevision(input.revision, "huggingface.revision"));
  RETURN_IF_ERROR(ValidateHubToken(input.token, "huggingface.token"));
  const std::string& token = input.token.empty() ? default_hf_token_ : input.token;
  ASSIGN_OR_RETURN(HubRepoInfo info, hub_.GetRepoInfo(RepoKind::kDataset, input.repo_id, input.revision, token));

  // Data files are *.jsonl / *.json / *.csv / *.parquet at the root or under data/, as the Hub's own loader looks for
  // them.
  DatasetRevisionRecord revision;
  std::set<std::string> formats;
  int unreadable_parquet = 0;  // in a build without Parquet support
  for (const HubFile& f : info.files) {
    const std::string base = Basename(f.path);
    if (IsHubMetadataFile(base)) continue;
    absl::StatusOr<DatasetFormat> format = DatasetFormatFromPath(f.path, "huggingface.repo_id");
    if (format.status().code() == absl::StatusCode::kUnimplemented) ++unreadable_parquet;
    if (!format.ok()) continue;
    const bool in_data_location = f.path.find('/') == std::string::npos || absl::StartsWith(f.path, "data/");
    if (!in_data_location) continue;
    formats.insert(std::string(DatasetFormatName(*format)));
    revision.files.push_back({f.path, f.size, f.sha256});
  }
  if (revision.files.empty()) {
    if (unreadable_parquet > 0) {
      return absl::UnimplementedError(absl::StrCat(
          "huggingface.repo_id: '", input.repo_id, "' at ", info.sha, " has only parquet data files (",
          unreadable_parquet, ") and this tuneforge was built without Parquet support; rebuild it with pyarrow in "
          "its Python environment, or use a repo with jsonl, json or csv files"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "huggingface.repo_id: '", input.repo_id, "' at ", info.sha,
        " has no data files; tuneforge reads *.jsonl, *.json, *.csv and *.parquet files at the repo root or under "
        "data/"));
  }
  std::sort(revision.files.begin(), revision.files.end(),
            [](const FileRecord& a, const FileRecord& b) { return a.path < b.path; });
  int64_t bytes = 0;
  for (const FileRecord& f : revision.files) bytes += f.size;
  RETURN_IF_ERROR(CheckLimits(0, bytes, absl::StrCat("huggingface.repo_id: '", input.repo_id, "' at ", info.sha)));

  // A gated repo lists its files to anyone but serves them only to accepted users: read one byte to find out now
  // rather than when a job starts.
  if (info.gated) {
    absl::StatusOr<std::string> probe =
        hub_.FetchRange(RepoKind::kDataset, input.repo_id, info.sha, revision.files.front().path, token, 0, 1);
    if (!probe.ok() && probe.status().code() != absl::StatusCode::kOutOfRange) return probe.status();
  }

  // Features and row counts are unknown until a worker reads the files; split names are guessed from file names.
  // As in the datasets library, a repo whose file names name no split is all train.
  DatasetSplitRecord train{"train", 0, {}}, test{"test", 0, {}};
  for (const FileRecord& f : revision.files) {
    const std::string split = GuessSplit(f.path);
    if (split == "train") train.files.push_back(f.path);
    if (split == "test") test.files.push_back(f.path);
  }
  if (train.files.empty() && test.files.empty()) {
    for (const FileRecord& f : revision.files) train.files.push_back(f.path);
  }
  if (!train.files.empty()) revision.splits.push_back(train);
  if (!test.files.empty()) revision.splits.push_back(test);

  Sha256 fingerprint;
  fingerprint.Update(absl::StrCat("huggingface\n", input.repo_id, "\n", info.sha, "\n"));
  for (const FileRecord& f : revision.files) {
    fingerprint.Update(absl::StrCat(f.path, "\t", f.size, "\t", f.sha256, "\n"));
  }
  revision.requested_revision = input.revision.empty() ? "main" : input.revision;
  revision.commit_sha = info.sha;
  revision.fingerprint = fingerprint.HexDigest();
  revision.format = formats.size() == 1 ? *formats.begin() : "mixed";
  return revision;
}

absl::StatusOr<DatasetRevisionRecord> DatasetService::ResolveLocal(const AddDatasetInput& input,
                                                                   const std::string& train_path,
                                                                   nlohmann::json* preview) {
  std::string test_path;
  if (!input.test_path.empty()) {
    ASSIGN_OR_RETURN(test_path, roots_.Resolve(input.test_path, "local.test_path"));
    if (test_path == train_path) {
      return absl::InvalidArgumentError(absl::StrCat(
          "local.test_path: '", input.test_path, "' is the same file as local.train_path; give a separate test file, "
          "or leave local.test_path empty to cut the test split from the train file"));
    }
  }
  // Checked here as well so that an unsupported train file is reported under its own request field.
  RETURN_IF_ERROR(DatasetFormatFromPath(train_path, "local.train_path").status());
  const uint64_t seed = input.seed.value_or(kDefaultSeed);
  if (seed > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat("local.seed ", seed, " is larger than ",
                                                   std::numeric_limits<int64_t>::max(), "; use a smaller seed"));
  }
  // The bytes before anything is read, the rows once they are counted.
  int64_t bytes = 0;
  for (const std::string* path : {&train_path, static_cast<const std::string*>(&test_path)}) {
    std::error_code ec;
    const std::uintmax_t size = path->empty() ? 0 : std::filesystem::file_size(*path, ec);
    if (!ec) bytes += static_cast<int64_t>(size);
  }
  const std::string what = test_path.empty() ? "local.train_path" : "local.train_path with local.test_path";
  RETURN_IF_ERROR(CheckLimits(0, bytes, what));
  absl::StatusOr<LocalDatasetInfo> inspected =
      InspectLocalDataset(train_path, test_path, input.test_size.value_or(kDefaultTestSize), seed);
  if (!inspected.ok()) return NameLocalField(inspected.status(), train_path, test_path);
  const LocalDatasetInfo& info = *inspected;
  int64_t rows = 0;
  for (const DatasetSplitInfo& s : info.splits) rows += s.num_rows;
  RETURN_IF_ERROR(CheckLimits(rows, bytes, what));

  DatasetRevisionRecord revision;
  revision.fingerprint = info.fingerprint;
  revision.format = std::string(DatasetFormatName(info.format));
  for (const DatasetFeature& f : info.features) revision.features.push_back({f.name, f.type, f.null_count});
  for (const DatasetSplitInfo& s : info.splits) revision.splits.push_back({s.name, s.num_rows, s.files});
  for (const auto& [path, size, sha256] : info.files) revision.files.push_back({path, size, sha256});
  revision.split_generated = info.split_generated;
  revision.split_seed = info.seed;
  revision.test_size = info.test_size;
  *preview = nlohmann::json::object();
  for (const auto& [split, rows] : info.preview) (*preview)[split] = rows;
  return revision;
}

absl::StatusOr<AddDatasetResult> DatasetService::AddDataset(const AddDatasetInput& input) {
  RETURN_IF_ERROR(CheckName(input.name, "name"));
  RETURN_IF_ERROR(CheckDescription(input.description, "description"));

  // Resolve the source outside the transaction: Hub calls and reading files can take a while.
  DatasetRecord wanted;
  wanted.name = input.name;
  wanted.description = input.description;
  DatasetRevisionRecord revision;
  nlohmann::json preview = nlohmann::json::object();
  if (input.source_type == "huggingface") {
    wanted.source_type = "huggingface";
    wanted.source = input.repo_id;
    ASSIGN_OR_RETURN(revision, ResolveHuggingFace(input));
  } else if (input.source_type == "local") {
    wanted.source_type = "local";
    ASSIGN_OR_RETURN(wanted.source, roots_.Resolve(input.train_path, "local.train_path"));
    ASSIGN_OR_RETURN(revision, ResolveLocal(input, wanted.source, &preview));
  } else {
    return absl::InvalidArgumentError(
        "source is required: set huggingface {repo_id, revision} or local {train_path, test_path}");
  }

  AddDatasetResult result;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    std::optional<DatasetRecord> existing = datasets_.GetByName(tx, wanted.name);
    if (existing.has_value()) {
      if (existing->source_type != wanted.source_type || existing->source != wanted.source) {
        return absl::AlreadyExistsError(absl::StrCat(
            "dataset '", wanted.name, "' already exists with source ", existing->source_type, " '", existing->source,
            "'; choose another name, or remove the existing dataset first"));
      }
      datasets_.Lock(tx, existing->id);
      if (std::optional<DatasetRevisionRecord> same = datasets_.FindRevision(tx, existing->id, revision.fingerprint)) {
        result.revision = *same;
        result.outcome = AddOutcome::kExisting;
      } else {
        revision.dataset_id = existing->id;
        std::string id = datasets_.InsertRevision(tx, revision, preview);
        datasets_.Touch(tx, existing->id);
        result.revision = *datasets_.GetRevision(tx, id);
        result.outcome = AddOutcome::kNewRevision;
      }
      result.dataset = *datasets_.GetById(tx, existing->id);
      return absl::OkStatus();
    }
    if (std::optional<DatasetRecord> same_source = datasets_.GetBySource(tx, wanted.source_type, wanted.source)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "the ", wanted.source_type, " source '", wanted.source, "' is already registered as dataset '",
          same_source->name, "' (", same_source->id, "); use that name to add revisions"));
    }
    std::string dataset_id = datasets_.Insert(tx, wanted);
    revision.dataset_id = dataset_id;
    std::string revision_id = datasets_.InsertRevision(tx, revision, preview);
    result.dataset = *datasets_.GetById(tx, dataset_id);
    result.revision = *datasets_.GetRevision(tx, revision_id);
    result.outcome = AddOutcome::kCreated;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<DatasetRecord> DatasetService::FindDataset(Tx& tx, const std::string& ref) {
  return FindDatasetByRef(tx, ref);
}

absl::StatusOr<DatasetRecord> DatasetService::GetDataset(const std::string& ref) {
  RETURN_IF_ERROR(CheckReference(ref, "dataset"));
  DatasetRecord dataset;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(dataset, FindDataset(tx, ref));
    return absl::OkStatus();
  }));
  return dataset;
}

absl::StatusOr<DatasetPage> DatasetService::ListDatasets(const ListDatasetsInput& input) {
  ASSIGN_OR_RETURN(PageRequest page, ParsePage(input.page_size, input.page_token, "datasets"));
  if (!input.name_prefix.empty()) RETURN_IF_ERROR(CheckText(input.name_prefix, "name_prefix", 128));
  if (!input.source_type.empty() && input.source_type != "huggingface" && input.source_type != "local") {
    return absl::InvalidArgumentError(absl::StrCat("source_type '", input.source_type,
                                                   "' does not apply to datasets; use SOURCE_TYPE_HUGGINGFACE or "
                                                   "SOURCE_TYPE_LOCAL, or leave it unset for both"));
  }
  DatasetListFilter filter;
  filter.after_name = page.after;
  filter.name_prefix = input.name_prefix;
  filter.source_type = input.source_type;
  filter.limit = page.limit + 1;  // one more tells whether another page exists
  DatasetPage out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    out.datasets = datasets_.List(tx, filter);
    return absl::OkStatus();
  }));
  if (static_cast<int>(out.datasets.size()) > page.limit) {
    out.datasets.resize(page.limit);
    out.next_page_token = MakePageToken("datasets", out.datasets.back().name);
  }
  return out;
}

absl::StatusOr<DatasetRevisionPage> DatasetService::ListDatasetRevisions(const std::string& ref, int page_size,
                                                                         const std::string& page_token) {
  RETURN_IF_ERROR(CheckReference(ref, "dataset"));
  DatasetRevisionPage out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(DatasetRecord dataset, FindDataset(tx, ref));
    const std::string kind = absl::StrCat("dataset_revisions:", dataset.id);
    ASSIGN_OR_RETURN(PageRequest page, ParsePage(page_size, page_token, kind));
    int below = 0;
    if (!page.after.empty() && (!absl::SimpleAtoi(page.after, &below) || below <= 0)) {
      return absl::InvalidArgumentError("page_token is damaged; omit it to start from the first page");
    }
    out.revisions = datasets_.ListRevisions(tx, dataset.id, below, page.limit + 1);
    if (static_cast<int>(out.revisions.size()) > page.limit) {
      out.revisions.resize(page.limit);
      out.next_page_token = MakePageToken(kind, std::to_string(out.revisions.back().revision_number));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<DatasetPreview> DatasetService::GetDatasetPreview(const std::string& ref,
                                                                 const std::string& revision_id,
                                                                 const std::string& split) {
  RETURN_IF_ERROR(CheckReference(ref, "dataset"));
  if (!revision_id.empty()) RETURN_IF_ERROR(CheckUuid(revision_id, "revision_id"));
  if (!split.empty() && split != "train" && split != "test") {
    return absl::InvalidArgumentError(absl::StrCat(
        "split '", split.substr(0, 80), "' is not a split; use \"train\" or \"test\", or leave it empty for both"));
  }
  DatasetPreview out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(DatasetRecord dataset, FindDataset(tx, ref));
    if (dataset.source_type == "huggingface") {
      return absl::FailedPreconditionError(absl::StrCat(
          "dataset '", dataset.name, "' comes from the Hugging Face Hub ('", dataset.source,
          "'); previews of Hub datasets are not available yet: view the rows on the Hub, or add a local copy of "
          "the files to preview them"));
    }
    DatasetRevisionRecord revision;
    if (revision_id.empty()) {
      if (!dataset.latest_revision.has_value()) {
        return absl::FailedPreconditionError(absl::StrCat("dataset '", dataset.name, "' has no revisions"));
      }
      revision = *dataset.latest_revision;
    } else {
      std::optional<DatasetRevisionRecord> found = datasets_.GetRevision(tx, revision_id);
      if (!found.has_value() || found->dataset_id != dataset.id) {
        return absl::NotFoundError(absl::StrCat("revision_id ", revision_id, " is not a revision of dataset '",
                                                dataset.name, "'; ListDatasetRevisions shows them"));
      }
      revision = *found;
    }
    out.revision_id = revision.id;
    const nlohmann::json preview = datasets_.Preview(tx, revision.id);
    size_t budget = kMaxPreviewResponseBytes;
    for (const char* name : {"train", "test"}) {
      if (!split.empty() && split != name) continue;
      DatasetSplitPreviewRecord split_preview;
      split_preview.split = name;
      size_t stored = 0;
      auto it = preview.find(name);
      if (it != preview.end() && it->is_array()) {
        for (const nlohmann::json& row : *it) {
          if (stored == kDatasetPreviewRows) {
            split_preview.truncated = true;
            break;
          }
          ++stored;
          std::optional<nlohmann::json> shown = row.is_object() ? PreviewRow(row) : std::nullopt;
          const size_t bytes =
              shown.has_value() ? shown->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).size() : 0;
          if (!shown.has_value() || bytes > budget) {
            split_preview.truncated = true;
            if (shown.has_value()) budget = 0;  // the answer is full: no later row, of this split or the next
            continue;
          }
          budget -= bytes;
          split_preview.rows.push_back(std::move(*shown));
        }
      }
      // Rows too large for a preview were left out when it was stored.
      for (const DatasetSplitRecord& s : revision.splits) {
        if (s.name == name && static_cast<int64_t>(stored) < std::min<int64_t>(s.num_rows, kDatasetPreviewRows)) {
          split_preview.truncated = true;
        }
      }
      out.splits.push_back(std::move(split_preview));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<std::string>> DatasetService::RemoveDataset(const std::string& ref, bool force) {
  RETURN_IF_ERROR(CheckReference(ref, "dataset"));
  std::vector<std::string> removed;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(DatasetRecord dataset, FindDataset(tx, ref));
    datasets_.Lock(tx, dataset.id);
    RETURN_IF_ERROR(RemoveJobsUsing(tx, JobUsersFilter{"", dataset.id, "", ""}, force,
                                    absl::StrCat("dataset '", dataset.name, "'"), &removed));
    std::vector<DependentRecord> dependents = datasets_.Dependents(tx, dataset.id);
    if (!dependents.empty() && !force) {
      return absl::FailedPreconditionError(absl::StrCat(
          "dataset '", dataset.name, "' is used by ", DescribeDependents(dependents),
          "; remove those first, or pass force=true to remove them with the dataset"));
    }
    datasets_.DeletePrompts(tx, dataset.id);
    datasets_.DeleteRevisions(tx, dataset.id);
    datasets_.Delete(tx, dataset.id);
    for (const DependentRecord& d : dependents) removed.push_back(absl::StrCat(d.kind, " '", d.name, "' (", d.id, ")"));
    return absl::OkStatus();
  }));
  return removed;
}

}  // namespace tuneforge
