// Per-table rules of ImportDatabase, each built from the validators the Add RPCs and StartFineTuningJob use.
#include "services/metadata/import_checks.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/hf_hub_client.h"
#include "common/hub_dataset_layout.h"
#include "common/model_config.h"
#include "common/prompt_template.h"
#include "common/status_macros.h"
#include "services/metadata/config_schema.h"
#include "services/metadata/job_records.h"
#include "services/metadata/job_repository.h"
#include "services/metadata/prompt_service.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace {

using nlohmann::json;

const std::string& Str(const json& row, const char* column) { return row.at(column).get_ref<const std::string&>(); }

std::string At(const std::string& where, const char* column) { return absl::StrCat(where, ".", column); }

absl::Status Invalid(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", what));
}

absl::Status OneOf(const std::string& value, const std::vector<std::string>& allowed, const std::string& field) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return absl::OkStatus();
  return Invalid(field, absl::StrCat("is '", value.substr(0, 80), "'; expected one of ", absl::StrJoin(allowed, ", ")));
}

absl::Status CheckFamily(const std::string& family, const std::string& field) {
  return OneOf(family, SupportedFamilies(), field);
}

// A local source as AddModel / AddDataset / AddAdapter / ExportModel take it: inside the allowed roots. The files
// need not be on this server yet (they may be copied after the metadata).
absl::Status CheckConfined(const ImportContext& context, const std::string& path, const std::string& field) {
  absl::StatusOr<std::string> resolved = context.roots.Resolve(path, field);
  if (resolved.ok() || resolved.status().code() == absl::StatusCode::kNotFound) return absl::OkStatus();
  return resolved.status();
}

constexpr char kArtifactsDir[] = "this server's artifacts directory (tuneforge-metadata --artifacts-dir)";

// Source of a model, dataset or adapter, by its source_type.
absl::Status CheckSource(const json& row, const std::string& where, const ImportContext& context) {
  const std::string& type = Str(row, "source_type");
  const std::string& source = Str(row, "source");
  const std::string field = At(where, "source");
  if (type == "huggingface") return ValidateRepoId(source, field);
  return CheckConfined(context, source, field);
}

// ---- shapes of JSON columns (what the repositories read back)

using ElementCheck = std::function<absl::Status(const json&, const std::string&)>;

absl::Status ArrayOf(const json& value, const std::string& field, const ElementCheck& each) {
  if (!value.is_array()) return Invalid(field, absl::StrCat("must be an array; got ", value.type_name()));
  for (size_t i = 0; i < value.size(); ++i) RETURN_IF_ERROR(each(value[i], absl::StrCat(field, "[", i, "]")));
  return absl::OkStatus();
}

absl::Status IsString(const json& v, const std::string& field) {
  return v.is_string() ? absl::OkStatus() : Invalid(field, absl::StrCat("must be a string; got ", v.type_name()));
}

absl::Status IsInteger(const json& v, const std::string& field) {
  return v.is_number_integer() ? absl::OkStatus()
                               : Invalid(field, absl::StrCat("must be a whole number; got ", v.type_name()));
}

absl::Status IsBool(const json& v, const std::string& field) {
  return v.is_boolean() ? absl::OkStatus() : Invalid(field, absl::StrCat("must be true or false; got ", v.type_name()));
}

absl::Status IsUuidString(const json& v, const std::string& field) {
  RETURN_IF_ERROR(IsString(v, field));
  return CheckUuid(v.get_ref<const std::string&>(), field);
}

// An object whose listed keys, where present, pass their checks.
absl::Status ObjectWith(const json& v, const std::string& field,
                        const std::vector<std::pair<const char*, ElementCheck>>& keys) {
  if (!v.is_object()) return Invalid(field, absl::StrCat("must be an object; got ", v.type_name()));
  for (const auto& [key, check] : keys) {
    auto it = v.find(key);
    if (it != v.end()) RETURN_IF_ERROR(check(*it, absl::StrCat(field, ".", key)));
  }
  return absl::OkStatus();
}

absl::Status Files(const json& v, const std::string& field) {
  return ArrayOf(v, field, [](const json& f, const std::string& at) {
    return ObjectWith(f, at, {{"path", IsString}, {"size", IsInteger}, {"sha256", IsString}});
  });
}

// progress / metrics: tuneforge.v1.JobProgress / JobMetrics as JSON, all numbers.
absl::Status NumbersObject(const json& v, const std::string& field) {
  if (!v.is_object()) return Invalid(field, absl::StrCat("must be an object; got ", v.type_name()));
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->is_number()) return Invalid(absl::StrCat(field, ".", it.key()), "must be a number");
  }
  return absl::OkStatus();
}

// ---- tables

absl::Status CheckModel(const json& row, const std::string& where, const ImportContext& context) {
  RETURN_IF_ERROR(CheckName(Str(row, "name"), At(where, "name")));
  RETURN_IF_ERROR(CheckDescription(Str(row, "description"), At(where, "description")));
  RETURN_IF_ERROR(CheckSource(row, where, context));
  return CheckFamily(Str(row, "family"), At(where, "family"));
}

absl::Status CheckModelRevision(const json& row, const std::string& where) {
  RETURN_IF_ERROR(CheckFamily(Str(row, "family"), At(where, "family")));
  RETURN_IF_ERROR(ValidateRevision(Str(row, "requested_revision"), At(where, "requested_revision")));
  ASSIGN_OR_RETURN(ModelArchitecture arch, ParseModelConfig(Str(row, "config_json"), "", At(where, "config_json")));
  if (arch.family != Str(row, "family")) {
    return Invalid(At(where, "family"), absl::StrCat("is '", Str(row, "family"), "' but its config_json is a ",
                                                     arch.family, " model"));
  }
  RETURN_IF_ERROR(Files(row.at("files"), At(where, "files")));
  RETURN_IF_ERROR(ArrayOf(row.at("bos_token_ids"), At(where, "bos_token_ids"), IsInteger));
  return ArrayOf(row.at("eos_token_ids"), At(where, "eos_token_ids"), IsInteger);
}

absl::Status CheckDataset(const json& row, const std::string& where, const ImportContext& context) {
  RETURN_IF_ERROR(CheckName(Str(row, "name"), At(where, "name")));
  RETURN_IF_ERROR(CheckDescription(Str(row, "description"), At(where, "description")));
  return CheckSource(row, where, context);
}

absl::Status CheckDatasetRevision(const json& row, const std::string& where) {
  RETURN_IF_ERROR(ValidateRevision(Str(row, "requested_revision"), At(where, "requested_revision")));
  RETURN_IF_ERROR(ArrayOf(row.at("features"), At(where, "features"), [](const json& f, const std::string& at) {
    return ObjectWith(f, at, {{"name", IsString}, {"type", IsString}, {"null_count", IsInteger}});
  }));
  RETURN_IF_ERROR(ArrayOf(row.at("splits"), At(where, "splits"), [](const json& s, const std::string& at) {
    return ObjectWith(s, at, {{"name", IsString}, {"num_rows", IsInteger}, {"source_split", IsString},
                              {"files", [](const json& f, const std::string& a) { return ArrayOf(f, a, IsString); }}});
  }));
  RETURN_IF_ERROR(ArrayOf(row.at("available_configs"), At(where, "available_configs"), IsString));
  const std::string data_revision = Str(row, "data_revision");
  if (!data_revision.empty() && data_revision != kParquetConversionRevision) {
    return Invalid(At(where, "data_revision"), absl::StrCat("must be empty or ", kParquetConversionRevision));
  }
  const json& preview = row.at("preview");
  if (!preview.is_object()) return Invalid(At(where, "preview"), "must be an object of split -> rows");
  for (auto it = preview.begin(); it != preview.end(); ++it) {
    RETURN_IF_ERROR(ArrayOf(*it, absl::StrCat(where, ".preview.", it.key()), [](const json& r, const std::string& at) {
      return r.is_object() ? absl::OkStatus() : Invalid(at, "must be an object (a row)");
    }));
  }
  return Files(row.at("files"), At(where, "files"));
}

absl::Status CheckPrompt(const json& row, const std::string& where) {
  RETURN_IF_ERROR(CheckName(Str(row, "name"), At(where, "name")));
  RETURN_IF_ERROR(CheckDescription(Str(row, "description"), At(where, "description")));
  if (Str(row, "mode") == "template") {
    for (const char* column : {"input_template", "completion_template"}) {
      RETURN_IF_ERROR(CheckText(Str(row, column), At(where, column), kMaxPromptTemplateBytes));
      RETURN_IF_ERROR(PromptTemplate::Parse(Str(row, column), At(where, column)).status());
    }
    if (Str(row, "completion_template").empty()) return Invalid(At(where, "completion_template"), "is empty");
  } else if (Str(row, "mode") == "alpaca") {
    for (const char* column : {"instruction_column", "input_column", "output_column"}) {
      if (Str(row, column).empty()) return Invalid(At(where, column), "is empty; an alpaca prompt names its columns");
    }
  } else if (Str(row, "messages_column").empty()) {
    return Invalid(At(where, "messages_column"), "is empty; a chat prompt names its messages column");
  }
  return ArrayOf(row.at("slots"), At(where, "slots"), IsString);
}

absl::Status CheckConfig(const json& row, const std::string& where) {
  if (!row.at("name").is_null()) RETURN_IF_ERROR(CheckName(Str(row, "name"), At(where, "name")));
  RETURN_IF_ERROR(CheckDescription(Str(row, "description"), At(where, "description")));
  const std::string& type = Str(row, "type");
  RETURN_IF_ERROR(OneOf(type, ConfigTypeNames(), At(where, "type")));
  RETURN_IF_ERROR(ValidateConfigContent(type, row.at("content"), At(where, "content")).status());
  if (row.at("is_default").get<bool>()) return CheckFamily(Str(row, "family"), At(where, "family"));
  if (!Str(row, "family").empty()) return Invalid(At(where, "family"), "is set on a config that is not a default");
  return absl::OkStatus();
}

absl::Status CheckAdapter(const json& row, const std::string& where, const ImportContext& context) {
  RETURN_IF_ERROR(CheckName(Str(row, "name"), At(where, "name")));
  RETURN_IF_ERROR(CheckDescription(Str(row, "description"), At(where, "description")));
  if (Str(row, "source_type") == "trained") {
    RETURN_IF_ERROR(CheckPathUnder(Str(row, "source"), context.artifacts_dir, At(where, "source"), kArtifactsDir));
  } else {
    RETURN_IF_ERROR(CheckSource(row, where, context));
  }
  RETURN_IF_ERROR(OneOf(Str(row, "peft_type"), {"LORA"}, At(where, "peft_type")));
  RETURN_IF_ERROR(ArrayOf(row.at("target_modules"), At(where, "target_modules"), IsString));
  return Files(row.at("files"), At(where, "files"));
}

absl::Status CheckModelExport(const json& row, const std::string& where, const ImportContext& context) {
  RETURN_IF_ERROR(CheckConfined(context, Str(row, "destination_path"), At(where, "destination_path")));
  RETURN_IF_ERROR(OneOf(Str(row, "type"), {"merged", "adapter"}, At(where, "type")));
  RETURN_IF_ERROR(OneOf(Str(row, "dtype"), {"", "fp32", "bf16", "fp16"}, At(where, "dtype")));
  if (Str(row, "type") == "merged") {
    RETURN_IF_ERROR(CheckName(Str(row, "exported_model_name"), At(where, "exported_model_name")));
  }
  return absl::OkStatus();
}

absl::Status CheckJob(const json& row, const std::string& where, const ImportContext& context) {
  const std::string& id = Str(row, "id");
  RETURN_IF_ERROR(CheckName(Str(row, "name"), At(where, "name")));
  RETURN_IF_ERROR(CheckDescription(Str(row, "description"), At(where, "description")));
  const std::string& kind = Str(row, "kind");
  RETURN_IF_ERROR(OneOf(kind, {kJobKindFineTune, kJobKindExport, kJobKindEvaluation}, At(where, "kind")));
  const bool export_job = kind == kJobKindExport;
  const bool evaluation_job = kind == kJobKindEvaluation;
  if (kind == kJobKindFineTune) RETURN_IF_ERROR(CheckName(Str(row, "adapter_name"), At(where, "adapter_name")));
  // The states and attempts a job can reach through StartFineTuningJob and the trainers' calls.
  const std::string& state = Str(row, "state");
  const int attempts = row.at("attempts").get<int>();
  const int max_attempts = row.at("max_attempts").get<int>();
  if (attempts < 0 || attempts > max_attempts) {
    return Invalid(At(where, "attempts"),
                   absl::StrCat("is ", attempts, "; a job makes 0 to max_attempts (", max_attempts, ") attempts"));
  }
  if (state == "QUEUED" && attempts == max_attempts) {
    return Invalid(At(where, "state"), "is QUEUED with no attempts left; such a job has FAILED");
  }
  const bool leased = state == "RUNNING" || state == "CANCELLING";
  if (leased && (attempts == 0 || Str(row, "worker_id").empty())) {
    return Invalid(At(where, "state"), absl::StrCat("is ", state, " but no trainer attempt holds it (attempts ",
                                                    attempts, ", worker_id empty or not)"));
  }
  if (!leased && !row.at("lease_expires_at").is_null()) {
    return Invalid(At(where, "lease_expires_at"), absl::StrCat("is set on a ", state, " job; only leased jobs have one"));
  }
  RETURN_IF_ERROR(ArrayOf(row.at("config_ids"), At(where, "config_ids"), IsUuidString));
  if (export_job) {
    // What ExportModel writes; the export's own row carries the rest.
    RETURN_IF_ERROR(ObjectWith(row.at("settings"), At(where, "settings"),
                               {{"export", [](const json& v, const std::string& at) {
                                   return ObjectWith(v, at, {{"type", IsString}, {"dtype", IsString},
                                                             {"max_shard_size", IsInteger}, {"overwrite", IsBool}});
                                 }}}));
  } else if (evaluation_job) {
    // What StartEvaluationJob writes: the options with their defaults, and generation settings of the schema.
    RETURN_IF_ERROR(ObjectWith(
        row.at("settings"), At(where, "settings"),
        {{"evaluation",
          [](const json& v, const std::string& at) {
            RETURN_IF_ERROR(ObjectWith(v, at,
                                       {{"split",
                                         [](const json& split, const std::string& a) {
                                           RETURN_IF_ERROR(IsString(split, a));
                                           return OneOf(split.get<std::string>(), {"test", "train"}, a);
                                         }},
                                        {"adapter_ids",
                                         [](const json& ids, const std::string& a) {
                                           return ArrayOf(ids, a, IsUuidString);
                                         }},
                                        {"max_examples", IsInteger},
                                        {"num_samples", IsInteger},
                                        {"max_seq_len", IsInteger},
                                        {"batch_size", IsInteger},
                                        {"device", IsString},
                                        {"dtype", IsString}}));
            return v.contains("adapter_ids") ? absl::OkStatus() : Invalid(At(at, "adapter_ids"), "is missing");
          }},
         {"generation", [](const json& v, const std::string& at) {
            return ValidateConfigContent("generation", v, at).status();
          }}}));
  } else {
    RETURN_IF_ERROR(ObjectWith(row.at("settings"), At(where, "settings"),
                               {{"lora", [](const json& v, const std::string& at) {
                                   return ValidateConfigContent("lora", v, at).status();
                                 }},
                                {"training", [](const json& v, const std::string& at) {
                                   return ValidateConfigContent("training", v, at).status();
                                 }}}));
  }
  RETURN_IF_ERROR(NumbersObject(row.at("progress"), At(where, "progress")));
  RETURN_IF_ERROR(NumbersObject(row.at("metrics"), At(where, "metrics")));
  // Trainers write exactly where the job says: only this server's folders for the job.
  for (const auto& [column, expected] :
       {std::pair<const char*, std::string>{"output_dir", JobOutputDir(context.artifacts_dir, id, kind)},
                                         {"checkpoint_dir", JobCheckpointDir(context.artifacts_dir, id)}}) {
    if (Str(row, column) != expected) {
      RETURN_IF_ERROR(CheckPathUnder(Str(row, column), context.artifacts_dir, At(where, column), kArtifactsDir));
      return Invalid(At(where, column),
                     absl::StrCat("must be the job's own folder in ", kArtifactsDir, ", .../jobs/", id, "/",
                                  column == std::string("output_dir") ? JobOutputFolder(kind) : "checkpoints"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckJobEvent(const json& row, const std::string& where) {
  for (const char* column : {"progress", "metrics"}) {
    if (!row.at(column).is_null()) RETURN_IF_ERROR(NumbersObject(row.at(column), At(where, column)));
  }
  return absl::OkStatus();
}

// A result as a trainer reports it and CompleteJob stores it: finite, non-negative numbers (the table refuses the
// rest too) and samples of the shape the repository reads back.
absl::Status CheckEvaluationResult(const json& row, const std::string& where) {
  for (const char* column : {"loss", "perplexity", "generation_tokens_per_second"}) {
    const double value = row.at(column).get<double>();
    if (!(value >= 0) || !std::isfinite(value)) {
      return Invalid(At(where, column), absl::StrCat("is ", row.at(column).dump(), "; it must be a finite number >= 0"));
    }
  }
  for (const char* column : {"examples", "tokens", "label_tokens"}) {
    if (row.at(column).get<int64_t>() < 0) return Invalid(At(where, column), "is negative");
  }
  if (!row.at("adapter_id").is_null() && Str(row, "adapter_name").empty()) {
    return Invalid(At(where, "adapter_name"), "is empty for an adapter's result");
  }
  return ArrayOf(row.at("samples"), At(where, "samples"), [](const json& s, const std::string& at) {
    return ObjectWith(s, at,
                      {{"row", IsInteger},
                       {"prompt", IsString},
                       {"reference", IsString},
                       {"output", IsString},
                       {"stop_reason", IsString}});
  });
}

absl::Status CheckJobCheckpoint(const json& row, const std::string& where, const ImportContext& context) {
  return CheckPathUnder(Str(row, "path"), JobCheckpointDir(context.artifacts_dir, Str(row, "job_id")),
                        At(where, "path"), "the job's checkpoint_dir");
}

}  // namespace

absl::Status CheckImportedRecord(const std::string& table, const json& row, const std::string& where,
                                 const ImportContext& context) {
  if (table == "models") return CheckModel(row, where, context);
  if (table == "model_revisions") return CheckModelRevision(row, where);
  if (table == "datasets") return CheckDataset(row, where, context);
  if (table == "dataset_revisions") return CheckDatasetRevision(row, where);
  if (table == "prompts") return CheckPrompt(row, where);
  if (table == "configs") return CheckConfig(row, where);
  if (table == "adapters") return CheckAdapter(row, where, context);
  if (table == "model_exports") return CheckModelExport(row, where, context);
  if (table == "fine_tuning_jobs") return CheckJob(row, where, context);
  if (table == "job_events") return CheckJobEvent(row, where);
  if (table == "job_checkpoints") return CheckJobCheckpoint(row, where, context);
  if (table == "evaluation_results") return CheckEvaluationResult(row, where);
  return absl::OkStatus();
}

}  // namespace tuneforge
