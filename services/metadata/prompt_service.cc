// Prompts: parse template slots, check them against the dataset revision's features, then save_or_fetch a revision.
#include "services/metadata/prompt_service.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/prompt_template.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "services/metadata/job_repository.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace {

constexpr size_t kMaxColumnNameBytes = 1024;

void AddUnique(const std::string& s, std::vector<std::string>* out) {
  if (std::find(out->begin(), out->end(), s) == out->end()) out->push_back(s);
}

std::string AvailableColumns(const std::vector<DatasetFeatureRecord>& features) {
  if (features.empty()) return "(none)";
  std::vector<std::string> names;
  for (const DatasetFeatureRecord& f : features) names.push_back(f.name);
  return absl::StrJoin(names, ", ");
}

const DatasetFeatureRecord* FindFeature(const std::vector<DatasetFeatureRecord>& features, const std::string& name) {
  for (const DatasetFeatureRecord& f : features) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// Length-prefixed, so that moving text between the fields changes the fingerprint.
std::string Fingerprint(const std::string& mode, const std::string& input_template,
                        const std::string& completion_template, const std::string& messages_column,
                        const std::string& dataset_revision_id) {
  Sha256 h;
  h.Update(absl::StrCat("tuneforge.prompt.v1\nmode=", mode, "\n"));
  for (const std::string* part : {&input_template, &completion_template, &messages_column, &dataset_revision_id}) {
    h.Update(absl::StrCat(part->size(), ":"));
    h.Update(*part);
    h.Update("\n");
  }
  return h.HexDigest();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseTemplateSlots(std::string_view text, std::string_view field_name) {
  ASSIGN_OR_RETURN(PromptTemplate parsed, PromptTemplate::Parse(text, field_name));
  return parsed.slots();
}

PromptService::PromptService(Store& store) : store_(store) {}

absl::StatusOr<AddPromptResult> PromptService::AddPrompt(const AddPromptInput& input) {
  RETURN_IF_ERROR(CheckName(input.name, "name"));
  RETURN_IF_ERROR(CheckDescription(input.description, "description"));
  RETURN_IF_ERROR(CheckReference(input.dataset, "dataset"));
  if (!input.dataset_revision_id.empty()) RETURN_IF_ERROR(CheckUuid(input.dataset_revision_id, "dataset_revision_id"));

  PromptRecord wanted;
  wanted.name = input.name;
  wanted.description = input.description;
  wanted.mode = input.mode;
  std::vector<std::string> input_slots, completion_slots;
  if (input.mode == "template") {
    RETURN_IF_ERROR(CheckText(input.input_template, "template.input_template", kMaxPromptTemplateBytes));
    RETURN_IF_ERROR(CheckText(input.completion_template, "template.completion_template", kMaxPromptTemplateBytes));
    if (input.completion_template.empty()) {
      return absl::InvalidArgumentError(
          "template.completion_template is required: the text the model learns to write, e.g. \"{answer}\"");
    }
    ASSIGN_OR_RETURN(input_slots, ParseTemplateSlots(input.input_template, "template.input_template"));
    ASSIGN_OR_RETURN(completion_slots, ParseTemplateSlots(input.completion_template, "template.completion_template"));
    wanted.input_template = input.input_template;
    wanted.completion_template = input.completion_template;
    for (const std::string& s : input_slots) AddUnique(s, &wanted.slots);
    for (const std::string& s : completion_slots) AddUnique(s, &wanted.slots);
  } else if (input.mode == "chat") {
    if (input.messages_column.empty()) {
      return absl::InvalidArgumentError(
          "chat.messages_column is required: the column holding lists of {\"role\", \"content\"} messages");
    }
    RETURN_IF_ERROR(CheckText(input.messages_column, "chat.messages_column", kMaxColumnNameBytes));
    wanted.messages_column = input.messages_column;
    wanted.slots.push_back(input.messages_column);
  } else {
    return absl::InvalidArgumentError(
        "format is required: set template {input_template, completion_template} or chat {messages_column}");
  }

  AddPromptResult result;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(DatasetRecord found_dataset, FindDatasetByRef(tx, input.dataset));
    const DatasetRecord* dataset = &found_dataset;
    DatasetRevisionRecord revision;
    if (input.dataset_revision_id.empty()) {
      if (!dataset->latest_revision.has_value()) {
        return absl::FailedPreconditionError(absl::StrCat("dataset '", dataset->name, "' has no revisions"));
      }
      revision = *dataset->latest_revision;
    } else {
      std::optional<DatasetRevisionRecord> found = datasets_.GetRevision(tx, input.dataset_revision_id);
      if (!found.has_value() || found->dataset_id != dataset->id) {
        return absl::NotFoundError(absl::StrCat("dataset_revision_id ", input.dataset_revision_id,
                                                " is not a revision of dataset '", dataset->name,
                                                "'; ListDatasetRevisions shows them"));
      }
      revision = *found;
    }

    // Hub datasets are registered from their file listing alone: their features stay unknown (empty) until a
    // worker reads the rows, so no slot can be checked here and every slot is accepted. A job that renders the
    // prompt reports a missing column then.
    const bool features_known = !(dataset->source_type == "huggingface" && revision.features.empty());
    if (features_known) {
      const std::string where = absl::StrCat("dataset '", dataset->name, "' (revision ", revision.revision_number, ")");
      if (wanted.mode == "template") {
        for (const auto& [field, slots] : {std::make_pair("template.input_template", &input_slots),
                                           std::make_pair("template.completion_template", &completion_slots)}) {
          for (const std::string& slot : *slots) {
            if (FindFeature(revision.features, slot) == nullptr) {
              return absl::InvalidArgumentError(absl::StrCat(field, ": slot {", slot, "} is not a column of ", where,
                                                             "; available columns: ",
                                                             AvailableColumns(revision.features)));
            }
          }
        }
      } else {
        const DatasetFeatureRecord* column = FindFeature(revision.features, wanted.messages_column);
        if (column == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat("chat.messages_column: '", wanted.messages_column,
                                                         "' is not a column of ", where, "; available columns: ",
                                                         AvailableColumns(revision.features)));
        }
        if (column->type != "list" && column->type != "mixed") {
          return absl::InvalidArgumentError(absl::StrCat(
              "chat.messages_column: column '", wanted.messages_column, "' of ", where, " holds ", column->type,
              " values; a chat column must hold lists of {\"role\", \"content\"} messages"));
        }
      }
    }

    wanted.dataset_revision_id = revision.id;
    wanted.fingerprint = Fingerprint(wanted.mode, wanted.input_template, wanted.completion_template,
                                     wanted.messages_column, wanted.dataset_revision_id);
    prompts_.LockName(tx, wanted.name);
    if (std::optional<PromptRecord> same = prompts_.Find(tx, wanted.name, wanted.fingerprint)) {
      result.prompt = *same;
      result.outcome = AddOutcome::kExisting;
      return absl::OkStatus();
    }
    const bool exists = prompts_.GetLatest(tx, wanted.name).has_value();
    std::string id = prompts_.Insert(tx, wanted);
    result.prompt = *prompts_.GetById(tx, id);
    result.outcome = exists ? AddOutcome::kNewRevision : AddOutcome::kCreated;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<PromptRecord> PromptService::GetPrompt(const std::string& ref) {
  RETURN_IF_ERROR(CheckReference(ref, "prompt"));
  PromptRecord prompt;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(prompt, FindPromptByRef(tx, ref));
    return absl::OkStatus();
  }));
  return prompt;
}

absl::StatusOr<PromptPage> PromptService::ListPrompts(const ListPromptsInput& input) {
  ASSIGN_OR_RETURN(PageRequest page, ParsePage(input.page_size, input.page_token, "prompts"));
  if (!input.name_prefix.empty()) RETURN_IF_ERROR(CheckText(input.name_prefix, "name_prefix", 128));
  if (!input.dataset.empty()) RETURN_IF_ERROR(CheckReference(input.dataset, "dataset"));
  PromptListFilter filter;
  filter.after_name = page.after;
  filter.name_prefix = input.name_prefix;
  filter.limit = page.limit + 1;  // one more tells whether another page exists
  PromptPage out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    if (!input.dataset.empty()) {
      ASSIGN_OR_RETURN(DatasetRecord dataset, FindDatasetByRef(tx, input.dataset));
      filter.dataset_id = dataset.id;
    }
    out.prompts = prompts_.List(tx, filter);
    return absl::OkStatus();
  }));
  if (static_cast<int>(out.prompts.size()) > page.limit) {
    out.prompts.resize(page.limit);
    out.next_page_token = MakePageToken("prompts", out.prompts.back().name);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> PromptService::RemovePrompt(const std::string& ref, bool force) {
  RETURN_IF_ERROR(CheckReference(ref, "prompt"));
  // Fine-tuning jobs are the only records that refer to a prompt.
  std::vector<std::string> removed;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(PromptRecord found, FindPromptByRef(tx, ref));
    prompts_.LockName(tx, found.name);
    RETURN_IF_ERROR(RemoveJobsUsing(tx, JobUsersFilter{"", "", found.name, ""}, force,
                                    absl::StrCat("prompt '", found.name, "'"), &removed));
    prompts_.DeleteByName(tx, found.name);
    return absl::OkStatus();
  }));
  return removed;
}

}  // namespace tuneforge
