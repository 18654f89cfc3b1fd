// Prompts: parse template slots, check them against the dataset revision's features, then save_or_fetch a revision.
#include "services/metadata/prompt_service.h"

#include <algorithm>
#include <optional>
#include <tuple>
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

// Length-prefixed, so that moving text between the fields changes the fingerprint. Fields added after the first
// version are hashed only when they differ from what a prompt of that mode meant before, so that prompts written
// then keep their fingerprints.
std::string Fingerprint(const PromptRecord& p) {
  Sha256 h;
  h.Update(absl::StrCat("tuneforge.prompt.v1\nmode=", p.mode, "\n"));
  std::vector<const std::string*> parts = {&p.input_template, &p.completion_template, &p.messages_column,
                                           &p.dataset_revision_id};
  const std::string chat_template_flag = p.use_chat_template ? "chat_template" : "text";
  if (p.mode == "chat" && p.message_format != "openai") parts.push_back(&p.message_format);
  if (p.mode == "alpaca") {
    for (const std::string* part : {&p.instruction_column, &p.input_column, &p.output_column, &chat_template_flag}) {
      parts.push_back(part);
    }
  }
  for (const std::string* part : parts) {
    h.Update(absl::StrCat(part->size(), ":"));
    h.Update(*part);
    h.Update("\n");
  }
  return h.HexDigest();
}

// An Alpaca column's feature type: text, or values of several types (checked row by row when training).
bool HoldsText(const DatasetFeatureRecord& f) { return f.type == "string" || f.type == "mixed"; }

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
    wanted.message_format = input.message_format.empty() ? "openai" : input.message_format;
    if (wanted.message_format != "openai" && wanted.message_format != "sharegpt") {
      return absl::InvalidArgumentError(absl::StrCat(
          "chat.message_format is '", input.message_format,
          "'; set \"openai\" ({\"role\", \"content\"} messages) or \"sharegpt\" ({\"from\", \"value\"} turns)"));
    }
  } else if (input.mode == "alpaca") {
    wanted.instruction_column = input.instruction_column.empty() ? "instruction" : input.instruction_column;
    wanted.input_column = input.input_column.empty() ? "input" : input.input_column;
    wanted.output_column = input.output_column.empty() ? "output" : input.output_column;
    wanted.use_chat_template = input.use_chat_template;
    RETURN_IF_ERROR(CheckText(wanted.instruction_column, "alpaca.instruction_column", kMaxColumnNameBytes));
    RETURN_IF_ERROR(CheckText(wanted.input_column, "alpaca.input_column", kMaxColumnNameBytes));
    RETURN_IF_ERROR(CheckText(wanted.output_column, "alpaca.output_column", kMaxColumnNameBytes));
    if (wanted.output_column == wanted.instruction_column || wanted.output_column == wanted.input_column) {
      return absl::InvalidArgumentError(absl::StrCat("alpaca.output_column '", wanted.output_column,
                                                     "' is also the instruction or input column; the model would "
                                                     "read what it learns to write. Set another column"));
    }
    for (const std::string* c : {&wanted.instruction_column, &wanted.input_column, &wanted.output_column}) {
      AddUnique(*c, &wanted.slots);
    }
  } else {
    return absl::InvalidArgumentError(
        "format is required: set template {input_template, completion_template}, chat {messages_column} or alpaca "
        "{instruction_column, input_column, output_column}");
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
      } else if (wanted.mode == "alpaca") {
        for (const auto& [field, name, flag] :
             {std::make_tuple("alpaca.instruction_column", &wanted.instruction_column, "--alpaca-instruction"),
              std::make_tuple("alpaca.input_column", &wanted.input_column, "--alpaca-input"),
              std::make_tuple("alpaca.output_column", &wanted.output_column, "--alpaca-output")}) {
          const DatasetFeatureRecord* column = FindFeature(revision.features, *name);
          const bool is_input = name == &wanted.input_column;
          if (column == nullptr) {
            // Instruction-only datasets leave out the default input column: every row then has no input.
            if (is_input && input.input_column.empty()) {
              wanted.slots.erase(std::remove(wanted.slots.begin(), wanted.slots.end(), *name), wanted.slots.end());
              continue;
            }
            return absl::InvalidArgumentError(absl::StrCat(field, ": '", *name, "' is not a column of ", where,
                                                           "; available columns: ", AvailableColumns(revision.features),
                                                           ". Set ", field, " (", flag, ") to the column to use"));
          }
          if (!HoldsText(*column) && !(is_input && column->type == "null")) {
            return absl::InvalidArgumentError(absl::StrCat(field, ": column '", *name, "' of ", where, " holds ",
                                                           column->type, " values; an alpaca column holds text. Set ",
                                                           field, " (", flag, ") to a text column"));
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
    wanted.fingerprint = Fingerprint(wanted);
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
