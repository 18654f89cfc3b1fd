// Rules of the Configs resource: schema validation, deduplication of identical content (save_or_fetch),
// per-family defaults for a model, and protection of those defaults. Knows neither gRPC nor SQL.
#ifndef TUNEFORGE_SERVICES_METADATA_CONFIG_SERVICE_H_
#define TUNEFORGE_SERVICES_METADATA_CONFIG_SERVICE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/metadata/config_records.h"
#include "services/metadata/config_repository.h"
#include "services/metadata/model_repository.h"
#include "services/metadata/records.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct AddConfigInput {
  std::string name;  // optional
  std::string description;
  std::string type;          // "lora" | "training" | "generation" | "quantization"; empty when unspecified
  std::string content_json;  // the request's content as a JSON object
};

struct AddConfigResult {
  ConfigRecord config;
  AddOutcome outcome = AddOutcome::kCreated;
  // The requested name when `config` does not carry it (its content existed already); empty otherwise.
  std::string ignored_name;
};

struct ListConfigsInput {
  int page_size = 0;
  std::string page_token;
  std::string type;    // empty: any
  std::string model;   // id or name; empty: no model filter
  std::string family;  // empty: any
};

struct ConfigPage {
  std::vector<ConfigRecord> configs;
  std::string next_page_token;
};

class ConfigService {
 public:
  explicit ConfigService(Store& store);

  absl::StatusOr<AddConfigResult> AddConfig(const AddConfigInput& input);
  absl::StatusOr<ConfigRecord> GetConfig(const std::string& ref);
  absl::StatusOr<ConfigPage> ListConfigs(const ListConfigsInput& input);
  // Returns what was removed besides the config ("fine-tuning job 'x' (id)", ...): jobs started with it, with
  // force; without force they block the removal, as a job that has not ended does either way.
  absl::StatusOr<std::vector<std::string>> RemoveConfig(const std::string& ref, bool force);

 private:
  absl::StatusOr<ConfigRecord> FindConfig(Tx& tx, const std::string& ref);

  Store& store_;
  ConfigRepository configs_;
  ModelRepository models_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_CONFIG_SERVICE_H_
