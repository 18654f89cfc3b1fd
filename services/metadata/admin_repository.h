// SQL for the Admin resource (database export and import): runs sql/admin_*.sql, one export and one import
// statement per table, each table named by its SQL name ("models", "model_revisions", ...).
#ifndef TUNEFORGE_SERVICES_METADATA_ADMIN_REPOSITORY_H_
#define TUNEFORGE_SERVICES_METADATA_ADMIN_REPOSITORY_H_

#include <cstdint>
#include <string>

#include "services/metadata/store.h"

namespace tuneforge {

// One table as exported: a JSON array of row objects (to_jsonb of each row) and its length.
struct TableRows {
  std::string rows_json;
  int64_t row_count = 0;
};

class AdminRepository {
 public:
  // Makes every later statement of the transaction read one snapshot (REPEATABLE READ, READ ONLY).
  // Must be the first statement of the transaction.
  void UseOneSnapshot(Tx& tx);
  // The highest applied migration version (admin_schema_version.sql).
  int SchemaVersion(Tx& tx);
  // admin_export_<table>.sql.
  TableRows ExportTable(Tx& tx, const std::string& table);
  // admin_import_<table>.sql with `rows_json` bound as $1; returns the number of rows inserted.
  int64_t ImportTable(Tx& tx, const std::string& table, const std::string& rows_json);
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_ADMIN_REPOSITORY_H_
