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
#include "absl/strings/string_view.h"
#include "common/allowed_roots.h"
#include "services/metadata/admin_repository.h"
#include "services/metadata/store.h"

namespace tuneforge {

// The largest document ImportDatabase accepts (and ExportDatabase produces): 256 MiB.
inline constexpr size_t kMaxDatabaseDocumentBytes = size_t{256} << 20;
// The gRPC receive limit the server needs so that a document of max_document_bytes arrives whole and gets our
// RESOURCE_EXHAUSTED message when it is too large: the limit plus 1 MiB for the message framing.
constexpr size_t ImportRequestBytes(size_t max_document_bytes) { return max_document_bytes + (size_t{1} << 20); }
inline constexpr int kAdminMaxMessageBytes = static_cast<int>(ImportRequestBytes(kMaxDatabaseDocumentBytes));

// The size of the pieces ExportDatabaseStream sends, and of those ImportDatabaseStream should get: far below the
// per-method limit (--max-request-bytes, 4 MiB by default) and clients' default receive limit (4 MiB).
inline constexpr size_t kDatabaseChunkBytes = size_t{1} << 20;

inline constexpr char kDatabaseDocumentFormat[] = "tuneforge-database";
// The row count of ImportDatabase that says how many per-family default configs already existed and were kept.
inline constexpr char kSkippedDefaultConfigs[] = "configs_skipped_defaults";

// The tables a document holds, in dependency order (a table refers only to tables before it).
const std::vector<std::string>& DatabaseDocumentTables();

struct DatabaseExport {
  std::string document;
  std::map<std::string, int64_t> row_counts;  // per table
};

// A document that arrives in pieces (ImportDatabaseStream). The first piece declares the document's size, which is
// checked against the document limit before anything is held; the pieces must add up to exactly that size, so no
// more than the limit is ever held and a stream cut short is never imported.
class StreamedDocument {
 public:
  explicit StreamedDocument(size_t max_document_bytes) : max_document_bytes_(max_document_bytes) {}

  // One message of the stream: `document_bytes` as the message declares it (0 when unset), and its piece.
  // RESOURCE_EXHAUSTED past the document limit, INVALID_ARGUMENT for a message that breaks the stream's rules.
  absl::Status Add(int64_t document_bytes, absl::string_view data);
  // The whole document once the stream has ended; INVALID_ARGUMENT when it ended short of the declared size.
  absl::StatusOr<std::string> Finish() &&;

 private:
  size_t max_document_bytes_;
  int64_t declared_bytes_ = 0;
  int64_t messages_ = 0;
  std::string document_;
};

class AdminService {
 public:
  // Imported records must keep their local paths inside `roots`, and jobs their folders in `artifacts_dir`.
  AdminService(Store& store, const AllowedRoots& roots, std::string artifacts_dir,
               size_t max_document_bytes = kMaxDatabaseDocumentBytes);

  // {"format", "schema_version", "exported_at", "row_counts", "tables": {table: [row, ...]}}, read from one
  // snapshot. RESOURCE_EXHAUSTED when the document would exceed the limit.
  absl::StatusOr<DatabaseExport> ExportDatabase();
  // Validates `document` completely (the columns' types, then each record by the rules of its Add RPC, see
  // import_checks.h), then inserts every row in one transaction (or nothing). Returns the rows inserted per table,
  // and kSkippedDefaultConfigs.
  absl::StatusOr<std::map<std::string, int64_t>> ImportDatabase(const std::string& document);
  // Collects the pieces of an ImportDatabaseStream under this service's document limit.
  StreamedDocument NewStreamedDocument() const { return StreamedDocument(max_document_bytes_); }

 private:
  Store& store_;
  const AllowedRoots& roots_;
  std::string artifacts_dir_;
  size_t max_document_bytes_;
  AdminRepository admin_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_ADMIN_SERVICE_H_
