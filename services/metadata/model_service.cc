// Models: resolve a source to a revision (Hub metadata or a local directory), then save_or_fetch it.
#include "services/metadata/model_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/local_model.h"
#include "common/model_config.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "services/metadata/job_repository.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace {

constexpr size_t kMaxConfigBytes = 4u << 20;

bool IsWeightFile(const std::string& path) { return absl::EndsWith(path, ".safetensors"); }

}  // namespace

ModelService::ModelService(Store& store, const AllowedRoots& roots, const HubClient& hub,
                           std::string default_hf_token)
    : store_(store), roots_(roots), hub_(hub), default_hf_token_(std::move(default_hf_token)) {}

absl::StatusOr<ModelRevisionRecord> ModelService::ResolveHuggingFace(const AddModelInput& input,
                                                                     std::string* family) {
  RETURN_IF_ERROR(ValidateRepoId(input.repo_id, "huggingface.repo_id"));
  RETURN_IF_ERROR(ValidateRevision(input.revision, "huggingface.revision"));
  RETURN_IF_ERROR(ValidateHubToken(input.token, "huggingface.token"));
  const std::string& token = input.token.empty() ? default_hf_token_ : input.token;
  ASSIGN_OR_RETURN(HubRepoInfo info, hub_.GetRepoInfo(RepoKind::kModel, input.repo_id, input.revision, token));

  bool has_config = false, has_generation_config = false, has_weights = false;
  ModelRevisionRecord revision;
  for (const HubFile& f : info.files) {
    has_config |= f.path == "config.json";
    has_generation_config |= f.path == "generation_config.json";
    has_weights |= IsWeightFile(f.path);
    revision.files.push_back({f.path, f.size, f.sha256});
  }
  std::sort(revision.files.begin(), revision.files.end(),
            [](const FileRecord& a, const FileRecord& b) { return a.path < b.path; });
  if (!has_config) {
    return absl::InvalidArgumentError(absl::StrCat("huggingface.repo_id: '", input.repo_id, "' at ", info.sha,
                                                   " has no config.json; it is not a transformers model repository"));
  }
  if (!has_weights) {
    return absl::InvalidArgumentError(absl::StrCat(
        "huggingface.repo_id: '", input.repo_id, "' has no *.safetensors weights; tuneforge loads safetensors only "
        "(convert the checkpoint with transformers' save_pretrained(safe_serialization=True))"));
  }
  ASSIGN_OR_RETURN(std::string config_json,
                   hub_.FetchFile(RepoKind::kModel, input.repo_id, info.sha, "config.json", token, kMaxConfigBytes));
  std::string generation_json;
  if (has_generation_config) {
    ASSIGN_OR_RETURN(generation_json, hub_.FetchFile(RepoKind::kModel, input.repo_id, info.sha,
                                                     "generation_config.json", token, kMaxConfigBytes));
  }
  ASSIGN_OR_RETURN(ModelArchitecture arch,
                   ParseModelConfig(config_json, generation_json, absl::StrCat(input.repo_id, "/config.json")));

  Sha256 fingerprint;
  fingerprint.Update(absl::StrCat("huggingface\n", input.repo_id, "\n", info.sha, "\n"));
  for (const FileRecord& f : revision.files) fingerprint.Update(absl::StrCat(f.path, "\t", f.size, "\t", f.sha256, "\n"));
  revision.requested_revision = input.revision.empty() ? "main" : input.revision;
  revision.commit_sha = info.sha;
  revision.fingerprint = fingerprint.HexDigest();
  revision.family = arch.family;
  revision.architecture = arch.architecture;
  revision.bos_token_ids = arch.bos_token_ids;
  revision.eos_token_ids = arch.eos_token_ids;
  revision.parameter_count = arch.parameter_count;
  revision.config_json = config_json;
  *family = arch.family;
  return revision;
}

absl::StatusOr<ModelRevisionRecord> ModelService::ResolveLocal(const std::string& canonical_dir, std::string* family) {
  ASSIGN_OR_RETURN(LocalModelInfo info, local_models_.Inspect(canonical_dir));
  ModelRevisionRecord revision;
  for (const LocalFile& f : info.files) revision.files.push_back({f.path, f.size, f.sha256});
  revision.fingerprint = info.fingerprint;
  revision.family = info.arch.family;
  revision.architecture = info.arch.architecture;
  revision.bos_token_ids = info.arch.bos_token_ids;
  revision.eos_token_ids = info.arch.eos_token_ids;
  revision.parameter_count = info.arch.parameter_count;
  revision.config_json = info.config_json;
  *family = info.arch.family;
  return revision;
}

absl::StatusOr<AddModelResult> ModelService::AddModel(const AddModelInput& input) {
  RETURN_IF_ERROR(CheckName(input.name, "name"));
  RETURN_IF_ERROR(CheckDescription(input.description, "description"));

  // Resolve the source outside the transaction: Hub calls and hashing can take a while.
  ModelRecord wanted;
  wanted.name = input.name;
  wanted.description = input.description;
  ModelRevisionRecord revision;
  if (input.source_type == "huggingface") {
    wanted.source_type = "huggingface";
    wanted.source = input.repo_id;
    ASSIGN_OR_RETURN(revision, ResolveHuggingFace(input, &wanted.family));
  } else if (input.source_type == "local") {
    wanted.source_type = "local";
    ASSIGN_OR_RETURN(wanted.source, roots_.Resolve(input.path, "local.path"));
    ASSIGN_OR_RETURN(revision, ResolveLocal(wanted.source, &wanted.family));
  } else {
    return absl::InvalidArgumentError(
        "source is required: set huggingface {repo_id, revision} or local {path}");
  }

  // A model added again unchanged (scripts add theirs before every job) is answered by two reads without a
  // transaction block. Anything else takes the locked path below, which looks again.
  AddModelResult result;
  bool unchanged = false;
  RETURN_IF_ERROR(store_.Read([&](Tx& tx) -> absl::Status {
    std::optional<ModelRecord> existing = models_.GetByName(tx, wanted.name);
    if (!existing.has_value() || existing->source_type != wanted.source_type || existing->source != wanted.source) {
      return absl::OkStatus();
    }
    std::optional<ModelRevisionRecord> same = models_.FindRevision(tx, existing->id, revision.fingerprint);
    if (!same.has_value()) return absl::OkStatus();
    result.model = std::move(*existing);
    result.revision = std::move(*same);
    result.outcome = AddOutcome::kExisting;
    unchanged = true;
    return absl::OkStatus();
  }));
  if (unchanged) return result;

  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    std::optional<ModelRecord> existing = models_.GetByName(tx, wanted.name);
    if (existing.has_value()) {
      if (existing->source_type != wanted.source_type || existing->source != wanted.source) {
        return absl::AlreadyExistsError(absl::StrCat(
            "model '", wanted.name, "' already exists with source ", existing->source_type, " '", existing->source,
            "'; choose another name, or remove the existing model first"));
      }
      models_.Lock(tx, existing->id);
      if (std::optional<ModelRevisionRecord> same = models_.FindRevision(tx, existing->id, revision.fingerprint)) {
        result.revision = *same;
        result.outcome = AddOutcome::kExisting;
      } else {
        revision.model_id = existing->id;
        std::string id = models_.InsertRevision(tx, revision);
        models_.Touch(tx, existing->id);
        result.revision = *models_.GetRevision(tx, id);
        result.outcome = AddOutcome::kNewRevision;
      }
      result.model = *models_.GetById(tx, existing->id);
      return absl::OkStatus();
    }
    if (std::optional<ModelRecord> same_source = models_.GetBySource(tx, wanted.source_type, wanted.source)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "the ", wanted.source_type, " source '", wanted.source, "' is already registered as model '",
          same_source->name, "' (", same_source->id, "); use that name to add revisions"));
    }
    std::string model_id = models_.Insert(tx, wanted);
    revision.model_id = model_id;
    std::string revision_id = models_.InsertRevision(tx, revision);
    result.model = *models_.GetById(tx, model_id);
    result.revision = *models_.GetRevision(tx, revision_id);
    result.outcome = AddOutcome::kCreated;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<ModelRecord> ModelService::FindModel(Tx& tx, const std::string& ref, const std::string& field) {
  return FindModelByRef(tx, ref);
}

absl::StatusOr<ModelRecord> ModelService::GetModel(const std::string& ref) {
  RETURN_IF_ERROR(CheckReference(ref, "model"));
  ModelRecord model;
  RETURN_IF_ERROR(store_.Read([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(model, FindModel(tx, ref, "model"));
    return absl::OkStatus();
  }));
  return model;
}

absl::StatusOr<ModelPage> ModelService::ListModels(const ListModelsInput& input) {
  ASSIGN_OR_RETURN(PageRequest page, ParsePage(input.page_size, input.page_token, "models"));
  if (!input.name_prefix.empty()) RETURN_IF_ERROR(CheckText(input.name_prefix, "name_prefix", 128));
  if (!input.family.empty()) {
    const auto& families = SupportedFamilies();
    if (std::find(families.begin(), families.end(), input.family) == families.end()) {
      return absl::InvalidArgumentError(absl::StrCat("family '", input.family, "' is not one of ",
                                                     absl::StrJoin(families, ", ")));
    }
  }
  ModelListFilter filter;
  filter.after_name = page.after;
  filter.name_prefix = input.name_prefix;
  filter.family = input.family;
  filter.source_type = input.source_type;
  filter.limit = page.limit + 1;  // one more tells whether another page exists
  ModelPage out;
  RETURN_IF_ERROR(store_.Read([&](Tx& tx) -> absl::Status {
    out.models = models_.List(tx, filter);
    return absl::OkStatus();
  }));
  if (static_cast<int>(out.models.size()) > page.limit) {
    out.models.resize(page.limit);
    out.next_page_token = MakePageToken("models", out.models.back().name);
  }
  return out;
}

absl::StatusOr<ModelRevisionPage> ModelService::ListModelRevisions(const std::string& ref, int page_size,
                                                                   const std::string& page_token) {
  RETURN_IF_ERROR(CheckReference(ref, "model"));
  ModelRevisionPage out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(ModelRecord model, FindModel(tx, ref, "model"));
    const std::string kind = absl::StrCat("model_revisions:", model.id);
    ASSIGN_OR_RETURN(PageRequest page, ParsePage(page_size, page_token, kind));
    int below = 0;
    if (!page.after.empty() && (!absl::SimpleAtoi(page.after, &below) || below <= 0)) {
      return absl::InvalidArgumentError("page_token is damaged; omit it to start from the first page");
    }
    out.revisions = models_.ListRevisions(tx, model.id, below, page.limit + 1);
    if (static_cast<int>(out.revisions.size()) > page.limit) {
      out.revisions.resize(page.limit);
      out.next_page_token = MakePageToken(kind, std::to_string(out.revisions.back().revision_number));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<std::string>> ModelService::RemoveModel(const std::string& ref, bool force) {
  RETURN_IF_ERROR(CheckReference(ref, "model"));
  std::vector<std::string> removed;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(ModelRecord model, FindModel(tx, ref, "model"));
    models_.Lock(tx, model.id);
    RETURN_IF_ERROR(RemoveJobsUsing(tx, JobUsersFilter{model.id, "", "", ""}, force,
                                    absl::StrCat("model '", model.name, "'"), &removed));
    std::vector<DependentRecord> dependents = models_.Dependents(tx, model.id);
    if (!dependents.empty() && !force) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model '", model.name, "' is used by ", DescribeDependents(dependents),
          "; remove those first, or pass force=true to remove them with the model"));
    }
    models_.DeleteExports(tx, model.id);
    models_.DeleteAdapters(tx, model.id);
    models_.DeleteRevisions(tx, model.id);
    models_.Delete(tx, model.id);
    for (const DependentRecord& d : dependents) removed.push_back(absl::StrCat(d.kind, " '", d.name, "' (", d.id, ")"));
    return absl::OkStatus();
  }));
  return removed;
}

}  // namespace tuneforge
