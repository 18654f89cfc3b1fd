// The "decoder" stage of tokenizer.json: turns the token strings of ids back into text (ByteLevel for
// Llama 3 / Qwen; Replace, ByteFallback, Fuse, Strip for Llama 2 / Gemma; Metaspace).
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_DECODERS_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_DECODERS_H_

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace tuneforge {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token list; the decoded text is the concatenation of the final list.
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

// Builds the decoder described by `config` (not null). Fails naming the type when unsupported.
absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const nlohmann::json& config);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_DECODERS_H_
