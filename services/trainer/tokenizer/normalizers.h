// The "normalizer" stage of tokenizer.json: rewrites the text between added tokens before pre-tokenization
// (Llama 2's Prepend "▁" + Replace " " -> "▁", Gemma's Replace, Qwen's NFC).
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_NORMALIZERS_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_NORMALIZERS_H_

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace tuneforge {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void Normalize(std::string* text) const = 0;
};

// Builds the normalizer described by `config` (the "normalizer" object of tokenizer.json, not null).
// Fails naming the type when it is not one we support.
absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const nlohmann::json& config);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_NORMALIZERS_H_
