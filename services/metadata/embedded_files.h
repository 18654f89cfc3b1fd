// Files embedded into the binary at build time: the SQL statements (sql/*.sql) and the migrations.
#ifndef TUNEFORGE_SERVICES_METADATA_EMBEDDED_FILES_H_
#define TUNEFORGE_SERVICES_METADATA_EMBEDDED_FILES_H_

#include <string>
#include <utility>
#include <vector>

namespace tuneforge {

// {file name, content}, sorted by file name.
const std::vector<std::pair<std::string, std::string>>& EmbeddedSqlFiles();
const std::vector<std::pair<std::string, std::string>>& EmbeddedMigrationFiles();

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_EMBEDDED_FILES_H_
