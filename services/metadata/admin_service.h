// Rules of the Admin resource: export every record as one consistent JSON document, and import such a
// document (validated in full first) into a database in one transaction. Knows neither gRPC nor SQL.
#ifndef TUNEFORGE_SERVICES_METADATA_ADMIN_SERVICE_H_
#define TUNEFORGE_SERVICES_METADATA_ADMIN_SERVICE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/metadata/admin_repository.h"
#include "services/metadata/store.h"

namespace tuneforge {

// The largest document ImportDatabase accepts (and ExportDatabase produces): 256 MiB.
inline constexpr size_t kMaxDatabaseDocumentBytes = size_t{256} << 20;
// The gRPC max receive message size the server needs so that such a document arrives whole and gets our
// RESOURCE_EXHAUSTED message when it is too large: the limit plus 1 MiB for the message framing.
inline constexpr int kAdminMaxMessageBytes = static_cast<int>(kMaxDatabaseDocumentBytes + (size_t{1} << 20));

inline constexpr char kDatabaseDocumentFormat[] = "tuneforge-database";
// The row count of ImportDatabase that says how many per-family default configs already existed and were kept.
inline constexpr char kSkippedDefaultConfigs[] = "configs_skipped_defaults";

// The tables a document holds, in dependency order (a table refers only to tables before it).
const std::vector<std::string>& DatabaseDocumentTables();

struct DatabaseExport {
  std::string document;
  std::map<std::string, int64_t> row_counts;  // per table
};

class AdminService {
 public:
  explicit AdminService(Store& store, size_t max_document_bytes = kMaxDatabaseDocumentBytes);

  // {"format", "schema_version", "exported_at", "row_counts", "tables": {table: [row, ...]}}, read from one
  // snapshot. RESOURCE_EXHAUSTED when the document would exceed the limit.
  absl::StatusOr<DatabaseExport> ExportDatabase();
  // Validates `document` completely, then inserts every row in one transaction (or nothing). Returns the rows
  // inserted per table, and kSkippedDefaultConfigs.
  absl::StatusOr<std::map<std::string, int64_t>> ImportDatabase(const std::string& document);

 private:
  Store& store_;
  size_t max_document_bytes_;
  AdminRepository admin_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_ADMIN_SERVICE_H_
