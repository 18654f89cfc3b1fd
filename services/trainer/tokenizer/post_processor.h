// The "post_processor" stage of tokenizer.json: adds the special tokens of a single sequence when
// add_special_tokens is true (TemplateProcessing: <s>, <|begin_of_text|>, <bos>).
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_POST_PROCESSOR_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_POST_PROCESSOR_H_

#include <cstdint>
#include <memory>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace tuneforge {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Applies the single-sequence template to *ids (called only when add_special_tokens is true).
  virtual void Process(std::vector<int32_t>* ids) const = 0;
};

// Builds the post-processor described by `config` (not null). Fails naming the type when unsupported.
absl::StatusOr<std::unique_ptr<PostProcessor>> PostProcessorFromJson(const nlohmann::json& config);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_POST_PROCESSOR_H_
