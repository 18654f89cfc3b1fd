// Schemas of the typed config documents (lora, training, generation, quantization): which keys each type
// accepts, their kinds and ranges, and the rules that tie keys together.
#ifndef TUNEFORGE_SERVICES_METADATA_CONFIG_SCHEMA_H_
#define TUNEFORGE_SERVICES_METADATA_CONFIG_SCHEMA_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tuneforge {

// {"lora", "training", "generation", "quantization"}
const std::vector<std::string>& ConfigTypeNames();
bool IsConfigType(const std::string& type);

// The keys a config of `type` accepts, in schema order (empty for an unknown type).
std::vector<std::string> ConfigKeys(const std::string& type);

// Validates `content` (a JSON object) against the schema of `type` and returns it normalised: integer keys
// hold JSON integers (16.0 -> 16, since google.protobuf.Struct numbers arrive as doubles), whole numbers of
// number keys too, everything else unchanged. Errors are INVALID_ARGUMENT naming `field`.<key>, the value and
// what is accepted, e.g. "content.foo: unknown key for a lora config; known keys: r, lora_alpha, ...".
absl::StatusOr<nlohmann::json> ValidateConfigContent(const std::string& type, const nlohmann::json& content,
                                                     const std::string& field = "content");

// One key of a `type` config checked and normalised as ValidateConfigContent checks it, for a request field that takes
// the same values (an evaluation's device takes what training.device takes); errors name `field`.
absl::StatusOr<nlohmann::json> ValidateConfigValue(const std::string& type, const std::string& key,
                                                   const nlohmann::json& value, const std::string& field);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_CONFIG_SCHEMA_H_
