// Model exports: request checks, the queued export job, and publishing what the trainer wrote.
#include "services/metadata/export_service.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "services/metadata/adapter_repository.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace fs = std::filesystem;

namespace {

bool IsExportDtype(const std::string& dtype) {
  return dtype.empty() || dtype == "fp32" || dtype == "bf16" || dtype == "fp16";
}

absl::Status FileSystemError(const std::string& what, const std::error_code& ec) {
  return absl::InternalError(absl::StrCat(what, ": ", ec.message(),
                                          "; check the permissions and free space of the destination's file system"));
}

// Moves directory `from` to `to` (which must not exist): a rename, or a copy and a removal across file systems.
absl::Status MoveDirectory(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (!ec) return absl::OkStatus();
  if (ec != std::errc::cross_device_link) {
    return FileSystemError(absl::StrCat("cannot move ", from.string(), " to ", to.string()), ec);
  }
  fs::copy(from, to, fs::copy_options::recursive, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove_all(to, ignored);
    return FileSystemError(absl::StrCat("cannot copy ", from.string(), " to ", to.string()), ec);
  }
  fs::remove_all(from, ec);  // the copy is complete; a leftover source only costs space
  return absl::OkStatus();
}

// What a finished export directory must hold before it is published.
absl::Status CheckStagedExport(const std::string& dir, const std::string& type) {
  std::error_code ec;
  const bool merged = type == "merged";
  const std::vector<std::string> required =
      merged ? std::vector<std::string>{"config.json"} : std::vector<std::string>{"adapter_config.json"};
  for (const std::string& name : required) {
    if (!fs::is_regular_file(fs::path(dir) / name, ec)) {
      return absl::FailedPreconditionError(absl::StrCat("the trainer reported the export written, but ", dir,
                                                        " has no ", name, "; run the export again"));
    }
  }
  if (merged && !fs::is_regular_file(fs::path(dir) / "model.safetensors", ec) &&
      !fs::is_regular_file(fs::path(dir) / "model.safetensors.index.json", ec)) {
    return absl::FailedPreconditionError(absl::StrCat("the trainer reported the export written, but ", dir,
                                                      " has no model.safetensors or index; run the export again"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ExportService::CheckNotARoot(const std::string& path) const {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  for (const std::string& root : roots_.roots()) {
    if (trimmed == root) {
      return absl::InvalidArgumentError(
          absl::StrCat("destination_path: '", path, "' is an allowed root; export into a directory below it"));
    }
  }
  return absl::OkStatus();
}

ExportService::ExportService(Store& store, const AllowedRoots& roots, ModelService& models, std::string artifacts_root)
    : store_(store), roots_(roots), models_(models), artifacts_root_(std::move(artifacts_root)) {}

absl::StatusOr<ModelExportRecord> ExportService::StartExport(const ExportModelInput& in) {
  RETURN_IF_ERROR(CheckReference(in.model, "model"));
  if (!in.revision_id.empty()) RETURN_IF_ERROR(CheckUuid(in.revision_id, "revision_id"));
  RETURN_IF_ERROR(CheckReference(in.adapter, "adapter"));
  if (!in.job_name.empty()) RETURN_IF_ERROR(CheckName(in.job_name, "job_name"));
  if (in.type != "merged" && in.type != "adapter") {
    return absl::InvalidArgumentError(
        "type is required: EXPORT_TYPE_MERGED (adapter merged into the base weights) or EXPORT_TYPE_ADAPTER (the "
        "PEFT adapter alone)");
  }
  if (in.type == "merged") {
    RETURN_IF_ERROR(CheckName(in.exported_model_name, "exported_model_name"));
    if (!IsExportDtype(in.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dtype: '", in.dtype, "' is not fp32, bf16 or fp16; leave it empty to keep the base model's dtype"));
    }
    if (in.max_shard_size < 0) {
      return absl::InvalidArgumentError(absl::StrCat("max_shard_size is ", in.max_shard_size,
                                                     "; give a size in bytes, or 0 for the default 5 GB"));
    }
  } else if (!in.exported_model_name.empty() || !in.dtype.empty() || in.max_shard_size != 0) {
    return absl::InvalidArgumentError(
        "exported_model_name, dtype and max_shard_size apply to merged exports only; leave them empty for an "
        "adapter export");
  }
  RETURN_IF_ERROR(CheckNotARoot(in.destination_path));
  absl::StatusOr<std::string> destination = roots_.ResolveNew(in.destination_path, "destination_path");
  const bool replaces = !destination.ok() && destination.status().code() == absl::StatusCode::kAlreadyExists;
  if (replaces && !in.overwrite) {
    return absl::AlreadyExistsError(absl::StrCat("destination_path: '", in.destination_path,
                                                 "' already exists; choose a new directory, or set overwrite to "
                                                 "replace a directory an earlier export wrote"));
  }
  if (replaces) {
    destination = roots_.Resolve(in.destination_path, "destination_path");
    if (destination.ok()) {
      std::error_code ec;
      if (!fs::is_directory(*destination, ec)) {
        return absl::InvalidArgumentError(absl::StrCat("destination_path: '", in.destination_path,
                                                       "' exists and is not a directory; overwrite replaces "
                                                       "directories only"));
      }
      RETURN_IF_ERROR(CheckNotARoot(*destination));
    }
  }
  if (!destination.ok()) return destination.status();

  std::string export_id;
  ModelExportRecord out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(ModelRecord model, FindModelByRef(tx, in.model));
    std::string revision_id = model.latest_revision.has_value() ? model.latest_revision->id : "";
    if (!in.revision_id.empty()) {
      std::optional<ModelRevisionRecord> revision = model_repo_.GetRevision(tx, in.revision_id);
      if (!revision.has_value() || revision->model_id != model.id) {
        return absl::NotFoundError(absl::StrCat("revision_id ", in.revision_id, " is not a revision of model '",
                                                model.name, "'; ListModelRevisions shows them"));
      }
      revision_id = revision->id;
    }
    if (revision_id.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("model '", model.name, "' has no revision to export"));
    }
    AdapterRepository adapters;
    std::optional<AdapterRecord> adapter =
        IsUuid(in.adapter) ? adapters.GetById(tx, in.adapter) : adapters.GetByName(tx, in.adapter);
    if (!adapter.has_value()) {
      return absl::NotFoundError(absl::StrCat("adapter '", in.adapter, "' not found; ListAdapters shows them"));
    }
    if (adapter->model_revision_id != revision_id) {
      return absl::FailedPreconditionError(absl::StrCat(
          "adapter '", adapter->name, "' was made for model revision ", adapter->model_revision_id, ", not ",
          revision_id, " of model '", model.name, "'; export it with its own base model revision"));
    }
    if (replaces) {
      // Overwrite replaces only what an export wrote, and never the directory of another registered model.
      if (std::optional<ModelRecord> there = model_repo_.GetBySource(tx, "local", *destination);
          there.has_value() && (in.type != "merged" || there->name != in.exported_model_name)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "destination_path '", *destination, "' is the directory of model '", there->name, "' (", there->id,
            "); overwrite may only replace the directory of the model it registers (exported_model_name)"));
      }
      if (!model_repo_.ExportSucceededAt(tx, *destination).has_value()) {
        return absl::AlreadyExistsError(absl::StrCat(
            "destination_path '", *destination, "' exists and no export wrote it (it may hold a registered model, "
            "adapter or dataset); overwrite replaces only a directory an earlier export wrote: choose a new "
            "directory"));
      }
    }
    if (in.type == "merged") {
      if (std::optional<ModelRecord> taken = model_repo_.GetByName(tx, in.exported_model_name)) {
        const bool same_place = taken->source_type == "local" && taken->source == *destination;
        if (!(same_place && in.overwrite)) {
          return absl::AlreadyExistsError(absl::StrCat(
              "exported_model_name '", in.exported_model_name, "' is already the name of model ", taken->id,
              same_place ? "; set overwrite to replace its directory and give it a new revision"
                         : "; choose a name for the merged model that is not taken"));
        }
      }
    }
    if (std::optional<std::string> other = model_repo_.ExportByDestination(tx, *destination)) {
      return absl::AlreadyExistsError(absl::StrCat("destination_path '", *destination,
                                                   "' is the destination of export ", *other,
                                                   ", which has not finished; wait for it or cancel its job"));
    }
    JobRecord job;
    job.kind = kJobKindExport;
    if (!in.job_name.empty()) {
      job.name = in.job_name;
      if (jobs_.GetByName(tx, job.name)) {
        return absl::AlreadyExistsError(
            absl::StrCat("job_name: a job named '", job.name, "' exists; choose another name or remove that job"));
      }
    } else {
      const std::string base = absl::StrCat("export-", adapter->name, "-",
                                            absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone()));
      job.name = base;
      for (int i = 2; jobs_.GetByName(tx, job.name); ++i) job.name = absl::StrCat(base, "-", i);
    }
    job.description = absl::StrCat(in.type, " export of adapter '", adapter->name, "' to ", *destination);
    job.model_id = model.id;
    job.model_revision_id = revision_id;
    job.settings = {{"export",
                     {{"type", in.type},
                      {"dtype", in.dtype},
                      {"max_shard_size", in.type == "merged" && in.max_shard_size == 0 ? kDefaultMaxShardSize
                                                                                       : in.max_shard_size},
                      {"overwrite", in.overwrite}}}};
    job.max_attempts = 3;
    const JobRecord created = jobs_.Insert(tx, job, artifacts_root_);
    JobEventRecord queued;
    queued.kind = "state";
    queued.level = "info";
    queued.state = "QUEUED";
    queued.message = absl::StrCat("export queued: ", in.type, " export of adapter '", adapter->name, "' into ",
                                  *destination);
    jobs_.AddEvent(tx, created.id, queued);

    ModelExportRecord request;
    request.model_revision_id = revision_id;
    request.adapter_id = adapter->id;
    request.type = in.type;
    request.destination_path = *destination;
    request.exported_model_name = in.exported_model_name;
    request.job_id = created.id;
    request.dtype = in.dtype;
    request.max_shard_size = job.settings["export"]["max_shard_size"].get<int64_t>();
    request.overwrite = in.overwrite;
    export_id = model_repo_.InsertExport(tx, request);
    out = *model_repo_.GetExport(tx, export_id);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ModelExportRecord> ExportService::GetExport(const std::string& id) {
  RETURN_IF_ERROR(CheckUuid(id, "id"));
  std::optional<ModelExportRecord> out;
  RETURN_IF_ERROR(store_.Read([&](Tx& tx) -> absl::Status {
    out = model_repo_.GetExport(tx, id);
    return absl::OkStatus();
  }));
  if (!out.has_value()) {
    return absl::NotFoundError(absl::StrCat("export ", id, " not found; ListModelExports shows the exports"));
  }
  return *out;
}

absl::StatusOr<ExportPage> ExportService::ListExports(const ListExportsInput& in) {
  ASSIGN_OR_RETURN(PageRequest page, ParsePage(in.page_size, in.page_token, "exports"));
  int64_t after_us = 0;
  std::string after_id;
  if (!page.after.empty()) RETURN_IF_ERROR(ParseTimeIdKey(page.after, &after_us, &after_id));
  if (!in.model.empty()) RETURN_IF_ERROR(CheckReference(in.model, "model"));
  if (!in.adapter.empty()) RETURN_IF_ERROR(CheckReference(in.adapter, "adapter"));
  ExportPage out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    std::string model_id, adapter_id;
    if (!in.model.empty()) {
      ASSIGN_OR_RETURN(ModelRecord model, FindModelByRef(tx, in.model));
      model_id = model.id;
    }
    if (!in.adapter.empty()) {
      AdapterRepository adapters;
      std::optional<AdapterRecord> adapter =
          IsUuid(in.adapter) ? adapters.GetById(tx, in.adapter) : adapters.GetByName(tx, in.adapter);
      if (!adapter.has_value()) {
        return absl::NotFoundError(absl::StrCat("adapter '", in.adapter, "' not found; ListAdapters shows them"));
      }
      adapter_id = adapter->id;
    }
    out.exports = model_repo_.ListExports(tx, model_id, adapter_id, after_us, after_id, page.limit + 1);
    return absl::OkStatus();
  }));
  if (static_cast<int>(out.exports.size()) > page.limit) {
    out.exports.resize(page.limit);
    const ModelExportRecord& last = out.exports.back();
    out.next_page_token = MakePageToken("exports", TimeIdKey(last.create_time, last.id));
  }
  return out;
}

absl::StatusOr<PublishedExport> ExportService::Publish(const JobRecord& job, const ModelExportRecord& e) {
  RETURN_IF_ERROR(CheckStagedExport(job.output_dir, e.type));
  // The destination was checked when the export started; check it again, as the directory tree may have changed.
  absl::StatusOr<std::string> fresh = roots_.ResolveNew(e.destination_path, "destination_path");
  const bool exists = !fresh.ok() && fresh.status().code() == absl::StatusCode::kAlreadyExists;
  if (!fresh.ok() && !exists) return fresh.status();
  if (exists && !e.overwrite) {
    return absl::AlreadyExistsError(absl::StrCat("destination_path '", e.destination_path,
                                                 "' appeared while the export ran; remove it, or export again with "
                                                 "overwrite"));
  }
  if (exists) RETURN_IF_ERROR(roots_.Resolve(e.destination_path, "destination_path").status());

  // Move the new directory next to the destination first, so the swap itself is two renames.
  const std::string suffix = job.id.substr(0, 8);
  const fs::path destination(e.destination_path);
  const fs::path incoming(absl::StrCat(e.destination_path, ".tuneforge-export-", suffix));
  std::error_code ec;
  fs::remove_all(incoming, ec);  // left by an earlier attempt
  RETURN_IF_ERROR(MoveDirectory(job.output_dir, incoming));
  if (exists) {
    const fs::path replaced(absl::StrCat(e.destination_path, ".tuneforge-replaced-", suffix));
    fs::remove_all(replaced, ec);
    fs::rename(destination, replaced, ec);
    if (ec) return FileSystemError(absl::StrCat("cannot move the old ", destination.string(), " aside"), ec);
    fs::rename(incoming, destination, ec);
    if (ec) {
      std::error_code restore;
      fs::rename(replaced, destination, restore);
      return FileSystemError(absl::StrCat("cannot move the export into ", destination.string()), ec);
    }
    fs::remove_all(replaced, ec);
  } else {
    fs::rename(incoming, destination, ec);
    if (ec) return FileSystemError(absl::StrCat("cannot move the export into ", destination.string()), ec);
  }

  PublishedExport out;
  out.destination = e.destination_path;
  if (e.type == "merged") {
    AddModelInput add;
    add.name = e.exported_model_name;
    add.description = absl::StrCat("adapter ", e.adapter_id, " merged into model revision ", e.model_revision_id,
                                   " by export ", e.id);
    add.source_type = "local";
    add.path = e.destination_path;
    absl::StatusOr<AddModelResult> added = models_.AddModel(add);
    if (!added.ok()) {
      return absl::Status(added.status().code(),
                          absl::StrCat("the merged model is in ", e.destination_path, " but registering it as '",
                                       e.exported_model_name, "' failed: ", added.status().message()));
    }
    out.exported_model_id = added->model.id;
    out.exported_model_revision_id = added->revision.id;
    out.exported_model_name = added->model.name;
  }
  return out;
}

}  // namespace tuneforge
