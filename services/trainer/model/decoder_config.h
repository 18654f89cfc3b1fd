// What the decoder needs from config.json beyond the weight shapes: the family's row (norm offset,
// embedding scale, activation), RoPE settings and the sliding window. Torch-free.
#ifndef TUNEFORGE_SERVICES_TRAINER_MODEL_DECODER_CONFIG_H_
#define TUNEFORGE_SERVICES_TRAINER_MODEL_DECODER_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"

namespace tuneforge {

enum class Activation { kSilu, kGeluTanh, kGeluErf };

// How inv_freq is derived (transformers 4.44 names in comments).
enum class RopeKind {
  kDefault,   // 1 / theta^(2i/d)
  kLinear,    // "linear": inv_freq / factor
  kLlama3,    // "llama3": per-band rescaling
  kLongRope,  // phi3 "longrope" / "su": short or long factors, cos/sin scaled
};

struct RopeSettings {
  RopeKind kind = RopeKind::kDefault;
  double theta = 10000.0;
  int64_t rotary_dim = 0;                        // = head_dim (no partial rotary in the supported families)
  double factor = 1.0;                           // linear, llama3
  double low_freq_factor = 1.0;                  // llama3
  double high_freq_factor = 4.0;                 // llama3
  int64_t original_max_position_embeddings = 0;  // llama3 (rope_scaling), longrope (top level)
  int64_t max_position_embeddings = 0;           // longrope: scale = max / original
  std::vector<double> short_factor;              // longrope, rotary_dim / 2 entries each
  std::vector<double> long_factor;
};

struct DecoderConfig {
  ModelArchitecture arch;
  double rms_norm_eps = 1e-6;
  double norm_weight_offset = 0.0;  // gemma: RMSNorm multiplies by (1 + w)
  bool scale_embeddings = false;    // gemma: embeddings * sqrt(hidden_size)
  Activation activation = Activation::kSilu;
  int64_t sliding_window = 0;  // 0: none; else key j is visible to query i iff i - window < j <= i
  RopeSettings rope;
};

// Parses config.json (and generation_config.json, may be empty) as transformers 4.44 reads it.
// Errors are INVALID_ARGUMENT starting with `label` and naming the key.
absl::StatusOr<DecoderConfig> ParseDecoderConfig(std::string_view config_json, std::string_view generation_config_json,
                                                 std::string_view label);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_MODEL_DECODER_CONFIG_H_
