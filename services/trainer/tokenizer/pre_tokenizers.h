// The "pre_tokenizer" stage of tokenizer.json: splits normalized text into words that BPE sees one at a time
// (regex Split for Llama 3 / Qwen, ByteLevel byte spelling, Split " " for Gemma, Metaspace).
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_PRE_TOKENIZERS_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_PRE_TOKENIZERS_H_

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace tuneforge {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece of *pieces by its sub-pieces (in order); empty pieces are dropped.
  // `starts_input`: the first piece begins at offset 0 of the text given to Encode (Metaspace's
  // prepend_scheme "first" prepends only there).
  virtual void Split(std::vector<std::string>* pieces, bool starts_input) const = 0;
};

// Builds the pre-tokenizer described by `config` (not null). Fails naming the type when unsupported.
absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const nlohmann::json& config);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_PRE_TOKENIZERS_H_
