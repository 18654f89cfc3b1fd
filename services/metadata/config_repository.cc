// Configs repository: runs sql/config_*.sql and maps rows to records. libpqxx errors propagate to
// Store::InTransaction, which rolls back and turns them into a status.
#include "services/metadata/config_repository.h"

#include "services/metadata/store_internal.h"

namespace tuneforge {

namespace {

ConfigRecord ConfigFromRow(const pqxx::row& row) {
  ConfigRecord c;
  c.id = Str(row, "id");
  c.name = Str(row, "name");
  c.description = Str(row, "description");
  c.type = Str(row, "type");
  c.content = Str(row, "content");
  c.fingerprint = Str(row, "fingerprint");
  c.family = Str(row, "family");
  c.is_default = Bool(row, "is_default");
  c.create_time = Micros(row, "create_us");
  c.update_time = Micros(row, "update_us");
  return c;
}

std::optional<ConfigRecord> FirstConfig(const pqxx::result& result) {
  if (result.empty()) return std::nullopt;
  return ConfigFromRow(result[0]);
}

}  // namespace

std::optional<ConfigRecord> ConfigRepository::GetById(Tx& tx, const std::string& id) {
  return FirstConfig(tx.work().exec_prepared("config_get_by_id", id));
}

std::optional<ConfigRecord> ConfigRepository::GetByName(Tx& tx, const std::string& name) {
  return FirstConfig(tx.work().exec_prepared("config_get_by_name", name));
}

std::string ConfigRepository::Fingerprint(Tx& tx, const std::string& type, const std::string& content_json) {
  return Str(tx.work().exec_prepared1("config_fingerprint", type, content_json), "fingerprint");
}

std::optional<ConfigRecord> ConfigRepository::FindUserConfig(Tx& tx, const std::string& type,
                                                            const std::string& fingerprint) {
  return FirstConfig(tx.work().exec_prepared("config_find_user", type, fingerprint));
}

std::optional<ConfigRecord> ConfigRepository::Insert(Tx& tx, const ConfigRecord& c) {
  return FirstConfig(
      tx.work().exec_prepared("config_insert", NullIfEmpty(c.name), c.description, c.type, c.content));
}

std::vector<ConfigRecord> ConfigRepository::List(Tx& tx, const ConfigListFilter& f) {
  std::optional<int64_t> after_us;
  if (!f.after_id.empty()) after_us = f.after_create_us;
  std::vector<ConfigRecord> out;
  for (const auto& row : tx.work().exec_prepared("config_list", after_us, NullIfEmpty(f.after_id), NullIfEmpty(f.type),
                                                 NullIfEmpty(f.family), f.defaults_only, f.limit)) {
    out.push_back(ConfigFromRow(row));
  }
  return out;
}

void ConfigRepository::Delete(Tx& tx, const std::string& id) { tx.work().exec_prepared("config_delete", id); }

}  // namespace tuneforge
