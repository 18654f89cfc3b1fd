// Prompt templates with {column} slots ("### Question:\n{question}\n### Answer:\n"; literal braces written {{ and
// }}): parsing, shared by the metadata service (slot checks) and the trainer (rendering dataset rows).
#ifndef TUNEFORGE_COMMON_PROMPT_TEMPLATE_H_
#define TUNEFORGE_COMMON_PROMPT_TEMPLATE_H_

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace tuneforge {

class PromptTemplate {
 public:
  // Unbalanced or empty braces -> INVALID_ARGUMENT "<field>: ..." with the byte offset and the fix.
  static absl::StatusOr<PromptTemplate> Parse(std::string_view text, std::string_view field);

  // Column names in first-use order, each once.
  const std::vector<std::string>& slots() const { return slots_; }

  // Fills the slots from a dataset row (a JSON object). Strings are inserted as they are, integers and booleans
  // as Python's str() writes them (3, True), floats with the shortest round-trip form, lists and objects as JSON.
  // A missing column, a null value or a row that is not an object -> INVALID_ARGUMENT naming `row_label` (e.g.
  // "train row 17") and the column, and saying how to fix the data or the prompt.
  absl::StatusOr<std::string> Render(const nlohmann::json& row, std::string_view row_label) const;

 private:
  struct Piece {
    bool slot = false;
    std::string text;  // literal text, or the column name
  };
  std::vector<Piece> pieces_;
  std::vector<std::string> slots_;
  std::string field_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_PROMPT_TEMPLATE_H_
