// SQL for the Configs resource: one method per statement in sql/config_*.sql.
#ifndef TUNEFORGE_SERVICES_METADATA_CONFIG_REPOSITORY_H_
#define TUNEFORGE_SERVICES_METADATA_CONFIG_REPOSITORY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "services/metadata/config_records.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct ConfigListFilter {
  // Keyset of the last row of the previous page; after_id empty: first page.
  int64_t after_create_us = 0;
  std::string after_id;
  std::string type;    // empty: any
  std::string family;  // empty: any
  bool defaults_only = false;
  int limit = 50;
};

class ConfigRepository {
 public:
  std::optional<ConfigRecord> GetById(Tx& tx, const std::string& id);
  std::optional<ConfigRecord> GetByName(Tx& tx, const std::string& name);
  // The database's fingerprint of a document: config_fingerprint(type, content::jsonb).
  std::string Fingerprint(Tx& tx, const std::string& type, const std::string& content_json);
  // The user config (family '') of this type with this fingerprint, if any.
  std::optional<ConfigRecord> FindUserConfig(Tx& tx, const std::string& type, const std::string& fingerprint);
  // Inserts a user config (name may be empty); nullopt when identical content of the type already exists.
  std::optional<ConfigRecord> Insert(Tx& tx, const ConfigRecord& config);
  std::vector<ConfigRecord> List(Tx& tx, const ConfigListFilter& filter);
  void Delete(Tx& tx, const std::string& id);
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_CONFIG_REPOSITORY_H_
