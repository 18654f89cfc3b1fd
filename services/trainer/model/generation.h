// Text generation over a CausalLM: a batch of prompts, left padded, decoded greedily or by sampling with a KV cache
// (or, as the reference, recomputing the whole sequence each step), with transformers' generate() semantics.
// Torch-free: the tokenizer stays outside, behind a decode callback for stop strings.
#ifndef TUNEFORGE_SERVICES_TRAINER_MODEL_GENERATION_H_
#define TUNEFORGE_SERVICES_TRAINER_MODEL_GENERATION_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tuneforge {

class CausalLM;

// What transformers' GenerationConfig calls the same names; unset values are transformers' defaults.
struct GenerationConfig {
  int64_t max_new_tokens = 20;  // >= 1: tokens generated per row at most
  bool do_sample = false;       // false: argmax (temperature, top_k and top_p are ignored)
  double temperature = 1.0;     // >= 0; 0 samples nothing: it decodes greedily
  int64_t top_k = 50;           // >= 0; 0 keeps every token (transformers' default is 50)
  double top_p = 1.0;           // (0, 1]; 1 keeps every token
  // > 0; 1 is off. A token already in the row (its prompt, padding excluded, and its new tokens) has its logit divided
  // by the penalty when positive and multiplied when negative.
  double repetition_penalty = 1.0;
  std::vector<int64_t> eos_token_ids;  // a row ends after generating any of these (the token is kept)
  // Fills the left padding of prompts and the steps after a row has finished. -1: eos_token_ids[0] (transformers'
  // fallback), or 0 without EOS ids.
  int64_t pad_token_id = -1;
  // A row ends once the decoded text of its new tokens contains one of these (Generate needs a decode function).
  std::vector<std::string> stop_strings;
  uint64_t seed = 0;      // sampling: the same seed gives the same tokens (drawn on the CPU, whatever the device)
  bool use_cache = true;  // false: recompute the whole sequence each step (the reference path; slow)
};

enum class FinishReason {
  kLength,      // max_new_tokens reached
  kEos,         // generated one of eos_token_ids
  kStopString,  // the new text contains a stop string
};
const char* FinishReasonName(FinishReason reason);  // "length" | "eos" | "stop_string"

struct GeneratedSequence {
  // The new tokens, as transformers' generate() returns them: after the row finished, pad_token_id up to the number
  // of steps the batch ran (the longest row).
  std::vector<int64_t> tokens;
  int64_t length = 0;  // tokens the row generated itself (the EOS or the stop string's last token included)
  FinishReason finish_reason = FinishReason::kLength;
  std::string stop_string;          // kStopString: the one found (the earliest in the text when several)
  size_t stop_string_offset = 0;    // kStopString: where it starts in decode(tokens[0, length)): the text to show
                                    // without it is decode(...).substr(0, stop_string_offset)
};

// Token ids -> text, for stop strings (the tokenizer's decode).
using DecodeFn = std::function<std::string(const std::vector<int64_t>&)>;

// INVALID_ARGUMENT naming the first key whose value is out of range.
absl::Status ValidateGenerationConfig(const GenerationConfig& config);

// A tuneforge generation config document or a Hugging Face generation_config.json, over `defaults`: max_new_tokens,
// do_sample, temperature, top_k, top_p, repetition_penalty, eos_token_id (an int or a list), pad_token_id,
// stop_strings (or tuneforge's `stop`; a string or a list), seed, use_cache. null leaves the default; other keys
// (bos_token_id, max_length, transformers_version, ...) are ignored, except num_beams other than 1, which we cannot
// honour. INVALID_ARGUMENT starting with `label` and naming the key for a bad value.
absl::StatusOr<GenerationConfig> ParseGenerationConfig(std::string_view json, std::string_view label,
                                                       const GenerationConfig& defaults = {});

// Generates for every prompt (token ids, at least one each) in one left-padded batch. Position ids are what
// transformers' generate() uses (cumsum of the attention mask - 1, clamped at 0); padding is never attended to.
// One result per prompt, in order. INVALID_ARGUMENT for a bad config, an empty prompt or an id outside the
// vocabulary, or stop strings without `decode`; FAILED_PRECONDITION when the model is in training mode.
absl::StatusOr<std::vector<GeneratedSequence>> Generate(const CausalLM& model,
                                                        const std::vector<std::vector<int64_t>>& prompts,
                                                        const GenerationConfig& config, const DecodeFn& decode = {});

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_MODEL_GENERATION_H_
