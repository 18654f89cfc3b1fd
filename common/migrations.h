// Schema migrations: append-only V###__name.sql files, applied at start-up in one transaction under an advisory
// lock and recorded (version, name, sha256, applied_at) in tuneforge_schema_migrations.
#ifndef TUNEFORGE_COMMON_MIGRATIONS_H_
#define TUNEFORGE_COMMON_MIGRATIONS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tuneforge {

struct Migration {
  int version = 0;   // from the file name: V001__init.sql -> 1
  std::string name;  // "init"
  std::string sql;   // one or more statements
};

// Parses "V###__name.sql" (a leading directory is ignored): version >= 1, name of letters, digits and '_'.
// INVALID_ARGUMENT naming the file for a bad name or an empty sql.
absl::StatusOr<Migration> MigrationFromFile(const std::string& file_name, std::string sql);

// The versions, in any order, must be exactly 1..N: duplicates and gaps -> INVALID_ARGUMENT naming them.
absl::Status CheckMigrationSequence(const std::vector<Migration>& migrations);

// Applies the pending migrations in order, in one transaction under pg_advisory_xact_lock(kMigrationLockKey), so
// concurrent callers apply each migration once. Applied versions are skipped; an applied version whose checksum
// differs, or a database at a version newer than `migrations` know, -> FAILED_PRECONDITION. A failing migration
// rolls everything back and is named in the error. Returns the schema version afterwards (0 when none).
absl::StatusOr<int> ApplyMigrations(const std::string& url, const std::vector<Migration>& migrations);

inline constexpr long long kMigrationLockKey = 0x74756e65666f7267;  // "tuneforg"
inline constexpr char kMigrationsTable[] = "tuneforge_schema_migrations";

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_MIGRATIONS_H_
