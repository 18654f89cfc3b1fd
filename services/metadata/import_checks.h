// ImportDatabase's rules for each record of a document: the checks its Add RPC applies (names, descriptions, Hub
// repo ids and revisions, supported families, config.json, prompt templates, config schemas, paths confined to the
// allowed roots or the artifacts directory), plus what a record read back later needs (the shape of its JSON
// columns, job states and attempts that agree). Knows neither gRPC nor SQL.
#ifndef TUNEFORGE_SERVICES_METADATA_IMPORT_CHECKS_H_
#define TUNEFORGE_SERVICES_METADATA_IMPORT_CHECKS_H_

#include <string>

#include "absl/status/status.h"
#include "common/allowed_roots.h"
#include "nlohmann/json.hpp"

namespace tuneforge {

struct ImportContext {
  const AllowedRoots& roots;
  // Where this server's jobs write (--artifacts-dir): imported jobs, trained adapters and checkpoints must be there.
  std::string artifacts_dir;
};

// Checks one row of `table` whose columns have the right SQL types already. INVALID_ARGUMENT (PERMISSION_DENIED for a
// path outside the allowed roots) naming `where`.<column>, e.g. "document.tables.models[0].name ...".
absl::Status CheckImportedRecord(const std::string& table, const nlohmann::json& row, const std::string& where,
                                 const ImportContext& context);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_IMPORT_CHECKS_H_
