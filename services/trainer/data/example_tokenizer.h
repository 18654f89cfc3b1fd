// A model directory's tokenizer, chat template and special tokens, with a prompt, turning dataset rows into
// training examples as every recipe needs them (fine-tuning, evaluation): the same masking, truncation and checks.
#ifndef TUNEFORGE_SERVICES_TRAINER_DATA_EXAMPLE_TOKENIZER_H_
#define TUNEFORGE_SERVICES_TRAINER_DATA_EXAMPLE_TOKENIZER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "nlohmann/json.hpp"
#include "services/trainer/data/examples.h"
#include "services/trainer/tokenizer/chat_template.h"
#include "services/trainer/tokenizer/tokenizer.h"

namespace tuneforge {

class ExampleTokenizer {
 public:
  // tokenizer.json, tokenizer_config.json (optional) and, for a chat prompt, the chat template of `model_dir`.
  // `options.eos_id` is resolved here from the tokenizer and `arch`.
  static absl::StatusOr<std::unique_ptr<ExampleTokenizer>> Load(const std::string& model_dir,
                                                               const ModelArchitecture& arch,
                                                               const PromptFormat& prompt, ExampleOptions options);

  // The examples of `rows` (split "train" or "test"; `labels` name the rows in errors, may be empty). `on_event`
  // gets a summary and warnings for truncated and skipped rows. FAILED_PRECONDITION when a token id is outside the
  // model's vocabulary (the tokenizer is not the model's).
  absl::StatusOr<ExampleSet> Build(const std::vector<nlohmann::json>& rows, std::string_view split,
                                   const std::vector<std::string>& labels,
                                   const std::function<void(std::string_view, const std::string&)>& on_event) const;

  const Tokenizer& tokenizer() const { return *tokenizer_; }
  int32_t eos_id() const { return options_.eos_id; }
  // A valid id for padding (masked out everywhere).
  int32_t pad_id() const { return pad_id_; }

 private:
  ExampleTokenizer() = default;

  std::unique_ptr<Tokenizer> tokenizer_;
  std::optional<ChatFormat> chat_;
  std::optional<ExampleBuilder> builder_;
  ExampleOptions options_;
  int32_t pad_id_ = 0;
  int64_t vocab_size_ = 0;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_DATA_EXAMPLE_TOKENIZER_H_
