// Admin repository: runs sql/admin_*.sql. libpqxx errors propagate to Store::InTransaction, which rolls back
// and turns them into a status (unique violation -> ALREADY_EXISTS, foreign key -> FAILED_PRECONDITION).
#include "services/metadata/admin_repository.h"

#include "services/metadata/store_internal.h"

namespace tuneforge {

void AdminRepository::UseOneSnapshot(Tx& tx) {
  // Not an embedded sql/ file: PostgreSQL cannot PREPARE a SET TRANSACTION. It is a constant with no parameters.
  tx.work().exec0("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
}

int AdminRepository::SchemaVersion(Tx& tx) {
  return static_cast<int>(Int(tx.work().exec_prepared1("admin_schema_version"), "schema_version"));
}

TableRows AdminRepository::ExportTable(Tx& tx, const std::string& table) {
  const pqxx::row row = tx.work().exec_prepared1("admin_export_" + table);
  return TableRows{Str(row, "rows_json"), Int(row, "row_count")};
}

int64_t AdminRepository::ImportTable(Tx& tx, const std::string& table, const std::string& rows_json) {
  return static_cast<int64_t>(tx.work().exec_prepared("admin_import_" + table, rows_json).affected_rows());
}

}  // namespace tuneforge
