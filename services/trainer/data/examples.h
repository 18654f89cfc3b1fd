// Training examples from dataset rows: a prompt template ({column} slots, an input part and a completion part), a
// chat-messages column (OpenAI or ShareGPT shape) rendered with the model's chat template, or Alpaca
// instruction/input/output columns (as Stanford Alpaca's prompt text or as chat messages), tokenized, with labels
// -100 on the tokens the model only reads, EOS appended and truncation at max_seq_len.
#ifndef TUNEFORGE_SERVICES_TRAINER_DATA_EXAMPLES_H_
#define TUNEFORGE_SERVICES_TRAINER_DATA_EXAMPLES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/prompt_template.h"
#include "services/trainer/data/labels.h"
#include "services/trainer/tokenizer/chat_template.h"
#include "services/trainer/tokenizer/tokenizer.h"

namespace tuneforge {

struct PromptFormat {
  enum class Mode { kTemplate, kChat, kAlpaca };
  // How a chat column writes a message: OpenAI {"role", "content"} or ShareGPT {"from", "value"} (human -> user,
  // gpt -> assistant, system -> system).
  enum class MessageFormat { kOpenAi, kShareGpt };
  Mode mode = Mode::kTemplate;
  std::string input_template;       // kTemplate: what the model reads
  std::string completion_template;  // kTemplate: what it learns to write
  std::string messages_column;      // kChat: a column of [{"role", "content"}, ...]
  MessageFormat message_format = MessageFormat::kOpenAi;  // kChat
  std::string instruction_column = "instruction";         // kAlpaca: a string
  std::string input_column = "input";                     // kAlpaca: a string, or absent, null or "" for none
  std::string output_column = "output";                   // kAlpaca: a string, the completion
  // kAlpaca: user = instruction (+ "\n\n" + input), assistant = output through the model's chat template, instead
  // of Stanford Alpaca's prompt text.
  bool alpaca_chat = false;
};

// Stanford Alpaca's prompt text (PROMPT_DICT in its train.py) for an instruction and an input ("" for none); the
// output follows it directly as the completion.
std::string AlpacaPromptText(const std::string& instruction, const std::string& input);

// A chat column's value as OpenAI messages ([{"role", "content"}, ...]): checked, and converted from ShareGPT turns
// when `format` says so. Errors are INVALID_ARGUMENT starting with `row_label`, naming the column and the turn.
absl::StatusOr<nlohmann::ordered_json> RowMessages(const nlohmann::json& row, const std::string& column,
                                                   PromptFormat::MessageFormat format, const std::string& row_label);

struct ExampleOptions {
  int64_t max_seq_len = 2048;
  // Loss on every token, the prompt (or the system/user turns) included.
  bool train_on_input = false;
  // Template mode: appended after the completion unless the completion already ends with it; -1 for none. Chat
  // mode leaves end-of-turn tokens to the template.
  int32_t eos_id = -1;
};

struct Example {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> labels;  // same length; kIgnoreLabel where there is no loss
  size_t row = 0;               // index of the dataset row it came from
  bool truncated = false;
};

struct ExampleSet {
  std::vector<Example> examples;
  int64_t rows = 0;
  int64_t truncated = 0;  // examples cut at max_seq_len (kept when a completion token is left)
  // Rows left out because no token would carry a loss: the prompt alone fills max_seq_len, or a conversation has
  // no assistant turn. Their indices, for the job's events.
  std::vector<size_t> skipped_rows;
  int64_t tokens = 0;        // over the kept examples
  int64_t label_tokens = 0;  // tokens with a loss
};

class ExampleBuilder {
 public:
  // `chat` is needed in chat mode (INVALID_ARGUMENT otherwise); templates are parsed here, and bad braces are
  // INVALID_ARGUMENT naming the template. max_seq_len must be >= 2.
  static absl::StatusOr<ExampleBuilder> Create(const Tokenizer* tokenizer, const ChatFormat* chat,
                                               const PromptFormat& format, const ExampleOptions& options);

  // One row, untruncated. A row without a column a slot needs, a null value, a messages column that is not a
  // list of {"role": string, "content": string} (or ShareGPT {"from", "value"} turns), or an Alpaca column that is
  // missing or not a string -> INVALID_ARGUMENT starting with `row_label` and naming the column.
  absl::StatusOr<Example> Build(const nlohmann::json& row, std::string_view row_label) const;

  // Every row of a split, truncated and filtered as ExampleSet says. The first bad row fails the whole set; its
  // error names it by row_labels[r] when given (e.g. "train.jsonl row 11", where it is in the file), else
  // "<split> row <n>" (1-based).
  absl::StatusOr<ExampleSet> BuildAll(const std::vector<nlohmann::json>& rows, std::string_view split,
                                      const std::vector<std::string>& row_labels = {}) const;

  const ExampleOptions& options() const { return options_; }

 private:
  ExampleBuilder() = default;
  absl::StatusOr<Example> BuildTemplate(const nlohmann::json& row, std::string_view row_label) const;
  absl::StatusOr<Example> BuildChat(const nlohmann::json& row, std::string_view row_label) const;
  absl::StatusOr<Example> BuildAlpaca(const nlohmann::json& row, std::string_view row_label) const;
  absl::StatusOr<Example> BuildText(const std::string& input, const std::string& completion) const;
  // `source` names what the messages came from in errors, e.g. "column 'messages'".
  absl::StatusOr<Example> BuildMessages(const nlohmann::ordered_json& messages, const std::string& label,
                                        const std::string& source) const;

  const Tokenizer* tokenizer_ = nullptr;
  const ChatFormat* chat_ = nullptr;
  PromptFormat format_;
  ExampleOptions options_;
  std::optional<PromptTemplate> input_;
  std::optional<PromptTemplate> completion_;
};

// The id appended after completions: tokenizer_config.json's eos_token when the tokenizer knows it, else the first
// of the model's eos_token_id list, else -1.
int32_t ResolveEosId(const Tokenizer& tokenizer, const std::optional<std::string>& eos_token,
                     const std::vector<int64_t>& model_eos_ids);

// Padding id: the pad_token when the tokenizer knows it, else eos_id, else 0. Padded positions carry no loss and
// are masked out, so the choice does not change training.
int32_t ResolvePadId(const Tokenizer& tokenizer, const std::optional<std::string>& pad_token, int32_t eos_id);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_DATA_EXAMPLES_H_
