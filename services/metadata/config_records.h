// Domain records of the Configs resource, shared by its repository, service and handler.
#ifndef TUNEFORGE_SERVICES_METADATA_CONFIG_RECORDS_H_
#define TUNEFORGE_SERVICES_METADATA_CONFIG_RECORDS_H_

#include <string>

#include "absl/time/time.h"

namespace tuneforge {

struct ConfigRecord {
  std::string id;
  std::string name;  // empty when the config has none
  std::string description;
  std::string type;     // "lora" | "training" | "generation" | "quantization"
  std::string content;  // JSON object as PostgreSQL's jsonb prints it (keys sorted)
  std::string fingerprint;  // config_fingerprint(type, content) computed by the database
  std::string family;       // per-family defaults only; "" for user configs
  bool is_default = false;
  absl::Time create_time;
  absl::Time update_time;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_CONFIG_RECORDS_H_
