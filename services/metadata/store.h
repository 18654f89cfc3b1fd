// Transactions for the metadata service: services run repository calls inside InTransaction without
// seeing libpqxx; a statement error rolls the whole transaction back and becomes an absl::Status.
#ifndef TUNEFORGE_SERVICES_METADATA_STORE_H_
#define TUNEFORGE_SERVICES_METADATA_STORE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tuneforge {

class PgPool;
class Tx;  // a transaction in progress; only repositories look inside (store_internal.h)

class Store {
 public:
  // Opens a pool on `url` that prepares every embedded SQL statement on each new connection.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& url, int pool_size);
  ~Store();

  // Runs fn in one transaction; commits only when fn returns OK.
  absl::Status InTransaction(const std::function<absl::Status(Tx&)>& fn);

  // Runs fn's statements outside a transaction block, each on its own snapshot: for reads that one statement
  // answers, or whose statements need not agree, without the BEGIN and COMMIT round trips. Writes in fn would
  // commit at once; don't.
  absl::Status Read(const std::function<absl::Status(Tx&)>& fn);

 private:
  explicit Store(std::unique_ptr<PgPool> pool);
  std::unique_ptr<PgPool> pool_;
};

// What a client may see of a failure that came from the database rather than from a service's rules: statuses
// about the request's data (ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT, ABORTED) as they are; the others
// (UNAVAILABLE, RESOURCE_EXHAUSTED, INTERNAL, ...) logged in full and answered with a message that names no
// server, socket, user or SQL.
absl::Status DatabaseFailureForClients(const absl::Status& status);

// Applies the embedded migrations to the database at `url`; returns the schema version.
absl::StatusOr<int> MigrateDatabase(const std::string& url);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_STORE_H_
