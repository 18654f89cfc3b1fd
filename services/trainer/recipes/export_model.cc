// Export, top to bottom: check the spec, read the adapter against its base, merge or copy, report.
#include "services/trainer/recipes/export_model.h"

#include <chrono>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "services/trainer/peft/merge_adapter.h"

namespace tuneforge {
namespace {

absl::Status CheckSpec(const ExportSpec& spec) {
  if (spec.type != "merged" && spec.type != "adapter") {
    return absl::InvalidArgumentError(
        absl::StrCat("export type '", spec.type, "' is not one we write; use \"merged\" or \"adapter\""));
  }
  if (spec.adapter_dir.empty()) return absl::InvalidArgumentError("adapter_dir is empty; name the adapter to export");
  if (spec.output_dir.empty()) return absl::InvalidArgumentError("output_dir is empty; name a new directory");
  if (spec.type == "merged") {
    if (spec.base_model_dir.empty()) {
      return absl::InvalidArgumentError("base_model_dir is empty; a merged export needs the base model's directory");
    }
    if (spec.max_shard_bytes == 0) return absl::InvalidArgumentError("max_shard_bytes must be positive");
  } else if (!spec.dtype.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype '", spec.dtype, "' applies to merged exports only; an adapter is copied as it is"));
  }
  return absl::OkStatus();
}

std::string AdapterSummary(const PeftAdapterInfo& adapter) {
  return absl::StrCat("r=", adapter.rank, " alpha=", adapter.alpha, adapter.use_rslora ? " rslora" : "",
                      " targets=", absl::StrJoin(adapter.target_modules, ","));
}

std::string Seconds(std::chrono::steady_clock::time_point start) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return text;
}

}  // namespace

absl::StatusOr<ExportResult> RunExport(const ExportSpec& spec, const ExportHooks& hooks) {
  const auto start = std::chrono::steady_clock::now();
  auto event = [&](std::string_view level, const std::string& message) {
    if (hooks.on_event) hooks.on_event(level, message);
  };
  RETURN_IF_ERROR(CheckSpec(spec));
  if (hooks.cancelled && hooks.cancelled()) return absl::CancelledError("the export was cancelled before it began");
  ExportResult result;
  result.output_dir = spec.output_dir;

  if (spec.type == "adapter") {
    if (!spec.base_model_dir.empty()) {
      ASSIGN_OR_RETURN(const PeftAdapterInfo adapter, ReadAdapterForBase(spec.base_model_dir, spec.adapter_dir));
      event("info", absl::StrCat("export adapter: adapter '", spec.adapter_dir, "' (", AdapterSummary(adapter),
                                 ") fits base '", spec.base_model_dir, "'"));
    } else {
      event("info", absl::StrCat("export adapter: adapter '", spec.adapter_dir, "' (not checked against a base)"));
    }
    ASSIGN_OR_RETURN(const CopiedAdapterInfo copied, CopyPeftAdapter(spec.adapter_dir, spec.output_dir));
    for (const std::string& name : copied.skipped) {
      event("warning", absl::StrCat("not copied: '", name, "' of the adapter directory is not a regular file"));
    }
    result.bytes = copied.bytes;
    result.files = copied.files;
    const int64_t files = static_cast<int64_t>(copied.files.size());
    if (hooks.on_progress) hooks.on_progress(files, files);
    event("info", absl::StrCat("export adapter: copied ", copied.files.size(), " files, ", copied.bytes,
                               " bytes to '", spec.output_dir, "' in ", Seconds(start), " s"));
    return result;
  }

  ASSIGN_OR_RETURN(const PeftAdapterInfo adapter, ReadAdapterForBase(spec.base_model_dir, spec.adapter_dir));
  event("info", absl::StrCat("export merged: base '", spec.base_model_dir, "', adapter '", spec.adapter_dir, "' (",
                             AdapterSummary(adapter), "), dtype ", spec.dtype.empty() ? "of the base" : spec.dtype,
                             ", shards of at most ", spec.max_shard_bytes, " bytes"));
  MergedModelOptions options;
  options.dtype = spec.dtype;
  options.max_shard_bytes = spec.max_shard_bytes;
  ASSIGN_OR_RETURN(
      const MergedModelInfo merged,
      WriteMergedModel(
          spec.base_model_dir, spec.adapter_dir, spec.output_dir, options,
          [&](const MergeProgress& p) {
            if (hooks.on_progress) hooks.on_progress(p.tensors_done, p.tensors_total);
          },
          hooks.cancelled));
  for (const std::string& name : merged.skipped) {
    event("warning", absl::StrCat("not copied: '", name, "' of the base model directory is not a regular file"));
  }
  result.dtype = merged.dtype;
  result.shards = merged.shards;
  result.bytes = merged.total_bytes;
  result.files = merged.files;
  event("info", absl::StrCat("export merged: ", merged.merged_modules, " weights merged, ", merged.dtype, ", ",
                             merged.shards, merged.shards == 1 ? " shard, " : " shards, ", merged.total_bytes,
                             " bytes of tensors, ", merged.files.size(), " files in '", spec.output_dir, "' in ",
                             Seconds(start), " s"));
  return result;
}

}  // namespace tuneforge
