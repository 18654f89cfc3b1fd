// Adapters: find the base model revision, check the adapter against it (local directory or Hub repo, reading
// only the config and the safetensors header), then save_or_fetch by name, source and fingerprint.
#include "services/metadata/adapter_service.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/model_config.h"
#include "common/peft_adapter.h"
#include "common/safetensors_header.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace {

constexpr char kAdapterConfig[] = "adapter_config.json";
constexpr char kAdapterWeights[] = "adapter_model.safetensors";
constexpr size_t kMaxAdapterConfigBytes = 1u << 20;
constexpr char kPageKind[] = "adapters";

absl::Status NotFoundAdapter(const std::string& ref) {
  return absl::NotFoundError(absl::StrCat("adapter '", ref, "' not found; ListAdapters shows the registered adapters"));
}

absl::Status NotFoundModel(const std::string& ref) {
  return absl::NotFoundError(absl::StrCat("model '", ref, "' not found; ListModels shows the registered models"));
}

std::string DescribeSource(const AdapterRecord& a) {
  if (a.source_type == "huggingface") return absl::StrCat("huggingface '", a.source, "' at ", a.commit_sha);
  return absl::StrCat(a.source_type, " '", a.source, "'");
}

std::string ShortFingerprint(const std::string& fingerprint) { return fingerprint.substr(0, 12); }

}  // namespace

AdapterService::AdapterService(Store& store, const AllowedRoots& roots, const HubClient& hub,
                               std::string default_hf_token)
    : store_(store), roots_(roots), hub_(hub), default_hf_token_(std::move(default_hf_token)) {}

AdapterRecord AdapterRecordFromDirectory(const LocalAdapterInfo& local, const std::string& source_type) {
  AdapterRecord adapter;
  adapter.source_type = source_type;
  adapter.source = local.directory;
  adapter.peft_type = local.info.peft_type;
  adapter.rank = static_cast<int>(local.info.rank);
  adapter.alpha = local.info.alpha;
  adapter.target_modules = local.info.target_modules;
  adapter.use_rslora = local.info.use_rslora;
  for (const LocalFile& f : local.files) adapter.files.push_back({f.path, f.size, f.sha256});
  adapter.fingerprint = local.fingerprint;
  return adapter;
}

absl::StatusOr<AdapterRecord> AdapterService::ResolveLocal(const std::string& canonical_dir,
                                                           const std::string& base_config_json) {
  ASSIGN_OR_RETURN(ModelArchitecture base, ParseModelConfig(base_config_json, "", "base model config.json"));
  ASSIGN_OR_RETURN(LocalAdapterInfo local, InspectLocalAdapterDirectory(canonical_dir, base));
  return AdapterRecordFromDirectory(local, "local");
}

absl::StatusOr<AdapterRecord> AdapterService::ResolveHuggingFace(const AddAdapterInput& input,
                                                                 const std::string& base_config_json) {
  const std::string& repo = input.repo_id;
  const std::string& token = input.token.empty() ? default_hf_token_ : input.token;
  ASSIGN_OR_RETURN(HubRepoInfo info, hub_.GetRepoInfo(RepoKind::kModel, repo, input.revision, token));

  AdapterRecord adapter;
  const HubFile* weights = nullptr;
  bool has_config = false;
  for (const HubFile& f : info.files) {
    has_config |= f.path == kAdapterConfig;
    if (f.path == kAdapterWeights) weights = &f;
    adapter.files.push_back({f.path, f.size, f.sha256});
  }
  std::sort(adapter.files.begin(), adapter.files.end(),
            [](const FileRecord& a, const FileRecord& b) { return a.path < b.path; });
  for (const auto& [present, file] : {std::pair<bool, const char*>{has_config, kAdapterConfig},
                                      std::pair<bool, const char*>{weights != nullptr, kAdapterWeights}}) {
    if (!present) {
      return absl::InvalidArgumentError(absl::StrCat(
          "huggingface.repo_id: '", repo, "' at ", info.sha, " has no ", file,
          "; a PEFT adapter repository holds adapter_config.json and adapter_model.safetensors "
          "(save the adapter with PEFT's save_pretrained)"));
    }
  }

  ASSIGN_OR_RETURN(ModelArchitecture base, ParseModelConfig(base_config_json, "", "base model config.json"));
  ASSIGN_OR_RETURN(std::string config_json,
                   hub_.FetchFile(RepoKind::kModel, repo, info.sha, kAdapterConfig, token, kMaxAdapterConfigBytes));
  const std::string weights_label = absl::StrCat(repo, "/", kAdapterWeights);
  const uint64_t file_size = static_cast<uint64_t>(std::max<int64_t>(weights->size, 0));
  ASSIGN_OR_RETURN(std::string first8, hub_.FetchRange(RepoKind::kModel, repo, info.sha, kAdapterWeights, token, 0, 8));
  ASSIGN_OR_RETURN(uint64_t header_length, SafetensorsHeaderLength(first8, file_size, weights_label));
  ASSIGN_OR_RETURN(std::string header_json, hub_.FetchRange(RepoKind::kModel, repo, info.sha, kAdapterWeights, token,
                                                            8, header_length));
  if (header_json.size() != header_length) {
    return absl::InvalidArgumentError(absl::StrCat(weights_label, ": the Hub returned ", header_json.size(),
                                                   " header bytes of ", header_length,
                                                   "; the file is truncated, re-upload it"));
  }
  ASSIGN_OR_RETURN(SafetensorsHeader header,
                   ParseSafetensorsHeader(header_json, file_size - 8 - header_length, weights_label));
  ASSIGN_OR_RETURN(PeftAdapterInfo peft, ValidatePeftAdapter(config_json, header, base, repo));

  Sha256 fingerprint;
  fingerprint.Update(absl::StrCat("huggingface\n", repo, "\n", info.sha, "\n"));
  for (const FileRecord& f : adapter.files) fingerprint.Update(absl::StrCat(f.path, "\t", f.size, "\t", f.sha256, "\n"));
  adapter.source_type = "huggingface";
  adapter.source = repo;
  adapter.commit_sha = info.sha;
  adapter.peft_type = peft.peft_type;
  adapter.rank = static_cast<int>(peft.rank);
  adapter.alpha = peft.alpha;
  adapter.target_modules = peft.target_modules;
  adapter.use_rslora = peft.use_rslora;
  adapter.fingerprint = fingerprint.HexDigest();
  return adapter;
}

absl::StatusOr<AddAdapterResult> AdapterService::AddAdapter(const AddAdapterInput& input) {
  RETURN_IF_ERROR(CheckName(input.name, "name"));
  RETURN_IF_ERROR(CheckDescription(input.description, "description"));
  RETURN_IF_ERROR(CheckReference(input.model, "model"));
  if (!input.model_revision_id.empty()) RETURN_IF_ERROR(CheckUuid(input.model_revision_id, "model_revision_id"));
  std::string local_dir;
  if (input.source_type == "huggingface") {
    RETURN_IF_ERROR(ValidateRepoId(input.repo_id, "huggingface.repo_id"));
    RETURN_IF_ERROR(ValidateRevision(input.revision, "huggingface.revision"));
    RETURN_IF_ERROR(ValidateHubToken(input.token, "huggingface.token"));
  } else if (input.source_type == "local") {
    ASSIGN_OR_RETURN(local_dir, roots_.Resolve(input.path, "local.path"));
  } else {
    return absl::InvalidArgumentError("source is required: set local {path} or huggingface {repo_id, revision}");
  }

  // The base revision first (a short transaction), then the source outside any transaction: Hub calls and
  // hashing can take a while.
  ModelRecord model;
  ModelRevisionRecord revision;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    std::optional<ModelRecord> found =
        IsUuid(input.model) ? models_.GetById(tx, input.model) : models_.GetByName(tx, input.model);
    if (!found.has_value()) return NotFoundModel(input.model);
    model = *found;
    if (input.model_revision_id.empty()) {
      if (!model.latest_revision.has_value()) {
        return absl::FailedPreconditionError(absl::StrCat("model '", model.name, "' has no revision; add one first"));
      }
      revision = *model.latest_revision;
      return absl::OkStatus();
    }
    std::optional<ModelRevisionRecord> r = models_.GetRevision(tx, input.model_revision_id);
    if (!r.has_value() || r->model_id != model.id) {
      return absl::NotFoundError(absl::StrCat("model_revision_id ", input.model_revision_id,
                                              " is not a revision of model '", model.name,
                                              "'; ListModelRevisions shows them"));
    }
    revision = *r;
    return absl::OkStatus();
  }));

  AdapterRecord wanted;
  if (input.source_type == "huggingface") {
    ASSIGN_OR_RETURN(wanted, ResolveHuggingFace(input, revision.config_json));
  } else {
    ASSIGN_OR_RETURN(wanted, ResolveLocal(local_dir, revision.config_json));
  }
  wanted.name = input.name;
  wanted.description = input.description;
  wanted.model_id = model.id;
  wanted.model_revision_id = revision.id;

  AddAdapterResult result;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    if (std::optional<AdapterRecord> named = adapters_.GetByName(tx, wanted.name)) {
      const bool same_content = named->source_type == wanted.source_type && named->source == wanted.source &&
                                named->fingerprint == wanted.fingerprint;
      // Without an explicit revision, any revision of the same model is the same adapter (the model may have
      // gained a revision since the adapter was imported).
      const bool same_base = input.model_revision_id.empty() ? named->model_id == wanted.model_id
                                                             : named->model_revision_id == wanted.model_revision_id;
      if (same_content && same_base) {
        result.adapter = *named;
        result.outcome = AddOutcome::kExisting;
        return absl::OkStatus();
      }
      std::string what = "different content";
      if (named->source_type != wanted.source_type || named->source != wanted.source) {
        what = absl::StrCat("source ", DescribeSource(*named));
      } else if (named->fingerprint == wanted.fingerprint) {
        what = absl::StrCat("another base (model ", named->model_id, ", revision ", named->model_revision_id, ")");
      } else {
        what = absl::StrCat("different content (fingerprint ", ShortFingerprint(named->fingerprint), ", now ",
                            ShortFingerprint(wanted.fingerprint), ")");
      }
      return absl::AlreadyExistsError(absl::StrCat("adapter '", wanted.name, "' already exists (", named->id,
                                                   ") with ", what, "; choose another name or remove it"));
    }
    if (std::optional<AdapterRecord> same =
            adapters_.GetBySource(tx, wanted.source_type, wanted.source, wanted.fingerprint)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "this adapter (", DescribeSource(wanted), ", same content) is already registered as adapter '", same->name,
          "' (", same->id, "); use that adapter, or remove it before adding it under another name"));
    }
    const std::string id = adapters_.Insert(tx, wanted);
    result.adapter = *adapters_.GetById(tx, id);
    result.outcome = AddOutcome::kCreated;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<AdapterRecord> AdapterService::GetAdapter(const std::string& ref) {
  RETURN_IF_ERROR(CheckReference(ref, "adapter"));
  AdapterRecord adapter;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    std::optional<AdapterRecord> found = IsUuid(ref) ? adapters_.GetById(tx, ref) : adapters_.GetByName(tx, ref);
    if (!found.has_value()) return NotFoundAdapter(ref);
    adapter = *found;
    return absl::OkStatus();
  }));
  return adapter;
}

absl::StatusOr<AdapterPage> AdapterService::ListAdapters(const ListAdaptersInput& input) {
  ASSIGN_OR_RETURN(PageRequest page, ParsePage(input.page_size, input.page_token, kPageKind));
  if (!input.name_prefix.empty()) RETURN_IF_ERROR(CheckText(input.name_prefix, "name_prefix", 128));
  if (!input.model.empty()) RETURN_IF_ERROR(CheckReference(input.model, "model"));
  AdapterListFilter filter;
  filter.after_name = page.after;
  filter.name_prefix = input.name_prefix;
  filter.source_type = input.source_type;
  filter.limit = page.limit + 1;  // one more tells whether another page exists
  AdapterPage out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    if (!input.model.empty()) {
      std::optional<ModelRecord> model =
          IsUuid(input.model) ? models_.GetById(tx, input.model) : models_.GetByName(tx, input.model);
      if (!model.has_value()) return NotFoundModel(input.model);
      filter.model_id = model->id;
    }
    out.adapters = adapters_.List(tx, filter);
    return absl::OkStatus();
  }));
  if (static_cast<int>(out.adapters.size()) > page.limit) {
    out.adapters.resize(page.limit);
    out.next_page_token = MakePageToken(kPageKind, out.adapters.back().name);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> AdapterService::RemoveAdapter(const std::string& ref, bool force) {
  RETURN_IF_ERROR(CheckReference(ref, "adapter"));
  std::vector<std::string> removed;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    std::optional<AdapterRecord> adapter = IsUuid(ref) ? adapters_.GetById(tx, ref) : adapters_.GetByName(tx, ref);
    if (!adapter.has_value()) return NotFoundAdapter(ref);
    std::vector<DependentRecord> dependents = adapters_.Dependents(tx, adapter->id);
    if (!dependents.empty() && !force) {
      return absl::FailedPreconditionError(absl::StrCat(
          "adapter '", adapter->name, "' is used by ", DescribeDependents(dependents),
          "; remove those first, or pass force=true to remove them with the adapter"));
    }
    adapters_.DeleteExports(tx, adapter->id);
    adapters_.Delete(tx, adapter->id);
    for (const DependentRecord& d : dependents) removed.push_back(absl::StrCat(d.kind, " '", d.name, "' (", d.id, ")"));
    return absl::OkStatus();
  }));
  return removed;
}

}  // namespace tuneforge
