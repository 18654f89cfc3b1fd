// Datasets: resolve a source to a revision (Hub file listing or local files), then save_or_fetch it.
#include "services/metadata/dataset_service.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <cctype>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/dataset_files.h"
#include "common/hub_dataset_layout.h"
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

// Config and split names as the Hub and the datasets library write them: 1-128 printable characters, no '/'.
absl::Status CheckHubName(const std::string& name, const char* field) {
  RETURN_IF_ERROR(CheckText(name, field, 128));
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '/' || c == '\\') {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " '", name.substr(0, 40), "' has a control character or a slash; use the name the Hub shows"));
    }
  }
  return absl::OkStatus();
}

// The config a request names, or the repo's default one.
absl::StatusOr<HubDataConfig> ChooseConfig(const HubDatasetLayout& layout, const std::string& wanted,
                                           const std::string& at) {
  std::vector<std::string> names;
  for (const HubDataConfig& c : layout.configs) names.push_back(c.name);
  const std::string& name = wanted.empty() ? layout.default_config : wanted;
  for (const HubDataConfig& c : layout.configs) {
    if (c.name == name) return c;
  }
  if (wanted.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "huggingface.config: ", at, " has ", names.size(), " configs and none is the default (",
        absl::StrJoin(names, ", "), "); name one (tuneforge datasets add --config NAME)"));
  }
  return absl::InvalidArgumentError(absl::StrCat("huggingface.config: '", wanted, "' is not a config of ", at,
                                                 "; its configs: ", absl::StrJoin(names, ", ")));
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

absl::StatusOr<DatasetRevisionRecord> DatasetService::ResolveHuggingFace(const AddDatasetInput& input,
                                                                        std::string* config_name) {
  RETURN_IF_ERROR(ValidateRepoId(input.repo_id, "huggingface.repo_id"));
  RETURN_IF_ERROR(ValidateRevision(input.revision, "huggingface.revision"));
  RETURN_IF_ERROR(ValidateHubToken(input.token, "huggingface.token"));
  if (!input.config.empty()) RETURN_IF_ERROR(CheckHubName(input.config, "huggingface.config"));
  if (!input.train_split.empty()) RETURN_IF_ERROR(CheckHubName(input.train_split, "huggingface.train_split"));
  if (!input.test_split.empty()) RETURN_IF_ERROR(CheckHubName(input.test_split, "huggingface.test_split"));
  if (!input.train_split.empty() && input.train_split == input.test_split) {
    return absl::InvalidArgumentError(absl::StrCat(
        "huggingface.test_split '", input.test_split, "' is the train split too; name another split, or \"none\""));
  }
  if (!input.data_files.empty() && input.data_files != "repo" && input.data_files != "parquet_conversion") {
    return absl::InvalidArgumentError(absl::StrCat(
        "huggingface.data_files ", input.data_files, " is not a HubDataFiles value; use HUB_DATA_FILES_REPO, "
        "HUB_DATA_FILES_PARQUET_CONVERSION, or leave it unset"));
  }
  const std::string& token = input.token.empty() ? default_hf_token_ : input.token;
  ASSIGN_OR_RETURN(HubRepoInfo info, hub_.GetRepoInfo(RepoKind::kDataset, input.repo_id, input.revision, token));
  const std::string at = absl::StrCat("'", input.repo_id, "' at ", info.sha.substr(0, 12));
  nlohmann::json card;
  if (!info.card_data.empty()) card = nlohmann::json::parse(info.card_data, nullptr, /*allow_exceptions=*/false);
  if (card.is_discarded() || !card.is_object()) card = nlohmann::json();

  // The repo's own files, as the datasets library sees them, unless they cannot be read here: then the Hub's
  // Parquet conversion of the repo.
  const bool revision_is_conversion = absl::StartsWith(input.revision, kParquetConversionRevision);
  const bool want_conversion = input.data_files == "parquet_conversion" || revision_is_conversion;
  std::vector<std::string> paths;
  for (const HubFile& f : info.files) paths.push_back(f.path);
  DatasetRevisionRecord revision;
  HubDataConfig chosen;
  std::vector<std::string> config_names;
  std::string why_not_repo;  // why the repo's own files are not used
  const std::vector<HubFile>* files = &info.files;
  std::vector<HubFile> conversion_files;
  if (!want_conversion) {
    absl::StatusOr<HubDatasetLayout> layout = ResolveHubDatasetLayout(paths, card, "huggingface.repo_id");
    if (layout.ok()) {
      ASSIGN_OR_RETURN(chosen, ChooseConfig(*layout, input.config, at));
      for (const HubDataConfig& c : layout->configs) config_names.push_back(c.name);
      if (!chosen.unreadable.empty()) {
        why_not_repo = absl::StrCat("config '", chosen.name, "' of ", at, " cannot be read here: ", chosen.unreadable);
      } else if (chosen.module == "parquet" &&
                 DatasetFormatFromPath(chosen.splits.front().files.front(), "huggingface.repo_id").status().code() ==
                     absl::StatusCode::kUnimplemented) {
        why_not_repo = absl::StrCat(at, " has parquet data files and this tuneforge was built without Parquet "
                                    "support; rebuild it with pyarrow in its Python environment");
      }
    } else if (layout.status().code() == absl::StatusCode::kNotFound) {
      why_not_repo = absl::StrCat(at, " has no data files the datasets library would read (", layout.status().message(),
                                  ")");
    } else {
      return layout.status();
    }
    if (!why_not_repo.empty() && input.data_files == "repo") {
      return absl::FailedPreconditionError(absl::StrCat(
          "huggingface.repo_id: ", why_not_repo, "; leave huggingface.data_files unset (or set "
          "HUB_DATA_FILES_PARQUET_CONVERSION, tuneforge datasets add --data-files parquet_conversion) to read the "
          "Hub's Parquet conversion of the repo instead"));
    }
  }
  if (want_conversion || !why_not_repo.empty()) {
    // The Hub converts the main branch's newest commit: an older commit has no conversion of its own.
    if (!revision_is_conversion && !input.revision.empty() && input.revision != "main") {
      ASSIGN_OR_RETURN(HubRepoInfo main, hub_.GetRepoInfo(RepoKind::kDataset, input.repo_id, "main", token));
      if (main.sha != info.sha) {
        return absl::FailedPreconditionError(absl::StrCat(
            "huggingface.revision: ", why_not_repo.empty() ? "" : absl::StrCat(why_not_repo, ", and "),
            "the Hub's Parquet conversion is of the main branch's newest commit (", main.sha.substr(0, 12),
            "), not of ", at, "; leave huggingface.revision empty to use it"));
      }
    }
    absl::StatusOr<HubRepoInfo> converted =
        revision_is_conversion
            ? absl::StatusOr<HubRepoInfo>(info)
            : hub_.GetRepoInfo(RepoKind::kDataset, input.repo_id, kParquetConversionRevision, token);
    if (!converted.ok()) {
      if (converted.status().code() != absl::StatusCode::kNotFound) return converted.status();
      return absl::FailedPreconditionError(absl::StrCat(
          "huggingface.repo_id: ", why_not_repo.empty() ? "" : absl::StrCat(why_not_repo, ", and "), "'",
          input.repo_id, "' has no Parquet conversion (branch ", kParquetConversionRevision,
          ") on the Hub; convert its data to jsonl, json, csv or parquet files in the repo"));
    }
    conversion_files = converted->files;
    std::vector<std::string> converted_paths;
    for (const HubFile& f : conversion_files) converted_paths.push_back(f.path);
    ASSIGN_OR_RETURN(HubDatasetLayout layout,
                     ResolveParquetConversionLayout(converted_paths, card, "huggingface.repo_id"));
    ASSIGN_OR_RETURN(chosen, ChooseConfig(layout, input.config,
                                          absl::StrCat("the Parquet conversion of '", input.repo_id, "'")));
    config_names.clear();
    for (const HubDataConfig& c : layout.configs) config_names.push_back(c.name);
    revision.data_revision = kParquetConversionRevision;
    revision.data_commit_sha = converted->sha;
    files = &conversion_files;
  } else {
    revision.data_commit_sha = info.sha;
  }

  // The splits to train and evaluate on.
  auto find_split = [&](const std::string& name) -> const HubDataSplit* {
    for (const HubDataSplit& s : chosen.splits) {
      if (s.name == name) return &s;
    }
    return nullptr;
  };
  std::vector<std::string> split_names;
  for (const HubDataSplit& s : chosen.splits) split_names.push_back(s.name);
  const std::string listed =
      absl::StrCat("config '", chosen.name, "' has the splits ", absl::StrJoin(split_names, ", "));
  const HubDataSplit* train = nullptr;
  if (!input.train_split.empty()) {
    train = find_split(input.train_split);
    if (train == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("huggingface.train_split: '", input.train_split,
                                                     "' is not a split of ", at, "; ", listed));
    }
  } else {
    train = find_split("train");
    if (train == nullptr && chosen.splits.size() == 1) train = &chosen.splits.front();
    if (train == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("huggingface.train_split: ", at, " has no split named train; ",
                                                     listed, "; name the one to train on (--train-split)"));
    }
  }
  const HubDataSplit* test = nullptr;
  if (input.test_split == "none") {
    test = nullptr;
  } else if (!input.test_split.empty()) {
    test = find_split(input.test_split);
    if (test == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("huggingface.test_split: '", input.test_split,
                                                     "' is not a split of ", at, "; ", listed, ", or use \"none\""));
    }
  } else {
    for (const char* name : {"test", "validation"}) {
      const HubDataSplit* s = find_split(name);
      if (test == nullptr && s != nullptr && s != train) test = s;
    }
  }
  if (test == train) test = nullptr;

  std::map<std::string, const HubFile*> by_path;
  for (const HubFile& f : *files) by_path[f.path] = &f;
  int64_t bytes = 0, rows = 0;
  std::set<std::string> formats;
  for (const HubDataSplit* s : {train, test}) {
    if (s == nullptr) continue;
    DatasetSplitRecord split{s == train ? "train" : "test", std::max<int64_t>(s->num_rows, 0), s->files};
    split.source_split = s->name;
    revision.splits.push_back(std::move(split));
    rows += std::max<int64_t>(s->num_rows, 0);
    for (const std::string& path : s->files) {
      const HubFile* f = by_path.at(path);
      revision.files.push_back({f->path, f->size, f->sha256});
      bytes += f->size;
      const size_t dot = path.rfind('.');
      const std::string ext = absl::AsciiStrToLower(path.substr(dot + 1));
      formats.insert(ext == "ndjson" ? "jsonl" : ext);
    }
  }
  if (revision.files.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("huggingface.repo_id: ", at, ": ", listed, ", and they hold no "
                                                   "data file"));
  }
  std::sort(revision.files.begin(), revision.files.end(),
            [](const FileRecord& a, const FileRecord& b) { return a.path < b.path; });
  const std::string what = absl::StrCat("huggingface.repo_id: ", at, " (config '", chosen.name, "')");
  RETURN_IF_ERROR(CheckLimits(rows, bytes, what));

  // A gated repo lists its files to anyone but serves them only to accepted users: read one byte to find out now
  // rather than when a job starts.
  if (info.gated) {
    absl::StatusOr<std::string> probe = hub_.FetchRange(RepoKind::kDataset, input.repo_id, revision.data_commit_sha,
                                                        revision.files.front().path, token, 0, 1);
    if (!probe.ok() && probe.status().code() != absl::StatusCode::kOutOfRange) return probe.status();
  }

  for (const HubDataFeature& f : chosen.features) revision.features.push_back({f.name, f.type, -1});
  Sha256 fingerprint;
  fingerprint.Update(absl::StrCat("huggingface\n", input.repo_id, "\n", info.sha, "\nconfig ", chosen.name, "\n",
                                  revision.data_revision, "\n", revision.data_commit_sha, "\n"));
  for (const DatasetSplitRecord& s : revision.splits) {
    fingerprint.Update(absl::StrCat(s.name, "=", s.source_split, "\n"));
  }
  for (const FileRecord& f : revision.files) {
    fingerprint.Update(absl::StrCat(f.path, "\t", f.size, "\t", f.sha256, "\n"));
  }
  revision.requested_revision = input.revision.empty() ? "main" : input.revision;
  revision.commit_sha = info.sha;
  revision.fingerprint = fingerprint.HexDigest();
  revision.format = formats.size() == 1 ? *formats.begin() : "mixed";
  revision.available_configs = std::move(config_names);
  *config_name = chosen.name;
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
    ASSIGN_OR_RETURN(revision, ResolveHuggingFace(input, &wanted.config));
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
      // A Hub dataset recorded before configs were has none: it takes the config it is added with now.
      const bool same_config = existing->config == wanted.config || existing->config.empty();
      if (existing->source_type != wanted.source_type || existing->source != wanted.source || !same_config) {
        return absl::AlreadyExistsError(absl::StrCat(
            "dataset '", wanted.name, "' already exists with source ", existing->source_type, " '", existing->source,
            "'", existing->config.empty() ? "" : absl::StrCat(" (config '", existing->config, "')"),
            "; choose another name, or remove the existing dataset first"));
      }
      datasets_.Lock(tx, existing->id);
      if (existing->config != wanted.config) datasets_.SetConfig(tx, existing->id, wanted.config);
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
    std::optional<DatasetRecord> same_source =
        datasets_.GetBySource(tx, wanted.source_type, wanted.source, wanted.config);
    if (!same_source.has_value() && !wanted.config.empty()) {
      same_source = datasets_.GetBySource(tx, wanted.source_type, wanted.source, "");
    }
    if (same_source.has_value()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "the ", wanted.source_type, " source '", wanted.source, "'",
          wanted.config.empty() ? "" : absl::StrCat(" (config '", wanted.config, "')"),
          " is already registered as dataset '", same_source->name, "' (", same_source->id,
          "); use that name to add revisions"));
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
