// Rules of the Prompts resource: template slot parsing, checks against a dataset revision's features,
// save_or_fetch revisions of named prompts. Knows neither gRPC nor SQL.
#ifndef TUNEFORGE_SERVICES_METADATA_PROMPT_SERVICE_H_
#define TUNEFORGE_SERVICES_METADATA_PROMPT_SERVICE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/metadata/dataset_repository.h"
#include "services/metadata/prompt_records.h"
#include "services/metadata/prompt_repository.h"
#include "services/metadata/records.h"
#include "services/metadata/store.h"

namespace tuneforge {

inline constexpr size_t kMaxPromptTemplateBytes = 64 * 1024;

struct AddPromptInput {
  std::string name;
  std::string description;
  std::string dataset;              // id or name
  std::string dataset_revision_id;  // empty: the dataset's latest revision
  std::string mode;                 // "template" | "chat" | "alpaca"; empty when the request named no format
  std::string input_template;
  std::string completion_template;
  std::string messages_column;
  std::string message_format;      // chat: "openai" | "sharegpt"; empty: openai
  std::string instruction_column;  // alpaca; empty: "instruction"
  std::string input_column;        // alpaca; empty: "input" (then a dataset without that column has no inputs)
  std::string output_column;       // alpaca; empty: "output"
  bool use_chat_template = false;  // alpaca
};

struct AddPromptResult {
  PromptRecord prompt;
  AddOutcome outcome = AddOutcome::kCreated;
};

struct ListPromptsInput {
  int page_size = 0;
  std::string page_token;
  std::string name_prefix;
  std::string dataset;  // id or name; empty: any
};

struct PromptPage {
  std::vector<PromptRecord> prompts;
  std::string next_page_token;
};

// The {column} slots of a template in order of first use; "{{" and "}}" are literal braces. An unbalanced or empty
// brace is INVALID_ARGUMENT naming `field` and the byte offset.
absl::StatusOr<std::vector<std::string>> ParseTemplateSlots(std::string_view text, std::string_view field);

class PromptService {
 public:
  explicit PromptService(Store& store);

  absl::StatusOr<AddPromptResult> AddPrompt(const AddPromptInput& input);
  // A name gives the latest revision, an id that revision.
  absl::StatusOr<PromptRecord> GetPrompt(const std::string& ref);
  absl::StatusOr<PromptPage> ListPrompts(const ListPromptsInput& input);
  // Removes every revision of the prompt named by `ref` (a name or the id of any revision). Returns what was
  // removed besides it: nothing yet, as nothing stores a reference to a prompt.
  absl::StatusOr<std::vector<std::string>> RemovePrompt(const std::string& ref, bool force);

 private:
  Store& store_;
  PromptRepository prompts_;
  DatasetRepository datasets_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_PROMPT_SERVICE_H_
