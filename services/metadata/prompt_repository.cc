// Prompts repository: runs sql/prompt_*.sql and maps rows to records. libpqxx errors propagate to
// Store::InTransaction, which rolls back and turns them into a status.
#include "services/metadata/prompt_repository.h"

#include "absl/strings/str_cat.h"
#include "services/metadata/request_checks.h"
#include "services/metadata/store_internal.h"

namespace tuneforge {

namespace {

PromptRecord PromptFromRow(const pqxx::row& row) {
  PromptRecord p;
  p.id = Str(row, "id");
  p.name = Str(row, "name");
  p.description = Str(row, "description");
  p.revision_number = static_cast<int>(Int(row, "revision_number"));
  p.dataset_id = Str(row, "dataset_id");
  p.dataset_revision_id = Str(row, "dataset_revision_id");
  p.mode = Str(row, "mode");
  p.input_template = Str(row, "input_template");
  p.completion_template = Str(row, "completion_template");
  p.messages_column = Str(row, "messages_column");
  p.message_format = Str(row, "message_format");
  p.instruction_column = Str(row, "instruction_column");
  p.input_column = Str(row, "input_column");
  p.output_column = Str(row, "output_column");
  p.use_chat_template = Bool(row, "use_chat_template");
  const nlohmann::json slots = Json(row, "slots");
  if (slots.is_array()) {
    for (const nlohmann::json& s : slots) p.slots.push_back(s.get<std::string>());
  }
  p.fingerprint = Str(row, "fingerprint");
  p.create_time = Micros(row, "create_us");
  return p;
}

std::optional<PromptRecord> FirstPrompt(const pqxx::result& result) {
  if (result.empty()) return std::nullopt;
  return PromptFromRow(result[0]);
}

}  // namespace

std::optional<PromptRecord> PromptRepository::GetById(Tx& tx, const std::string& id) {
  return FirstPrompt(tx.work().exec_prepared("prompt_get_by_id", id));
}

std::optional<PromptRecord> PromptRepository::GetLatest(Tx& tx, const std::string& name) {
  return FirstPrompt(tx.work().exec_prepared("prompt_get_latest", name));
}

std::optional<PromptRecord> PromptRepository::Find(Tx& tx, const std::string& name, const std::string& fingerprint) {
  return FirstPrompt(tx.work().exec_prepared("prompt_find", name, fingerprint));
}

void PromptRepository::LockName(Tx& tx, const std::string& name) { tx.work().exec_prepared("prompt_lock_name", name); }

std::string PromptRepository::Insert(Tx& tx, const PromptRecord& p) {
  // Slots come from templates that passed the UTF-8 check, so the strict dump cannot throw.
  return tx.work()
      .exec_prepared1("prompt_insert", p.name, p.description, p.dataset_revision_id, p.mode, p.input_template,
                      p.completion_template, p.messages_column, nlohmann::json(p.slots).dump(), p.fingerprint,
                      p.message_format, p.instruction_column, p.input_column, p.output_column,
                      p.use_chat_template)["id"]
      .as<std::string>();
}

std::vector<PromptRecord> PromptRepository::List(Tx& tx, const PromptListFilter& f) {
  std::vector<PromptRecord> out;
  for (const auto& row : tx.work().exec_prepared("prompt_list", NullIfEmpty(f.after_name), NullIfEmpty(f.name_prefix),
                                                 NullIfEmpty(f.dataset_id), f.limit)) {
    out.push_back(PromptFromRow(row));
  }
  return out;
}

void PromptRepository::DeleteByName(Tx& tx, const std::string& name) { tx.work().exec_prepared("prompt_delete", name); }


absl::StatusOr<PromptRecord> FindPromptByRef(Tx& tx, const std::string& ref) {
  PromptRepository prompts;
  std::optional<PromptRecord> prompt = IsUuid(ref) ? prompts.GetById(tx, ref) : prompts.GetLatest(tx, ref);
  if (!prompt) {
    return absl::NotFoundError(absl::StrCat("prompt '", ref, "' not found; ListPrompts shows the registered prompts"));
  }
  return *prompt;
}

}  // namespace tuneforge
