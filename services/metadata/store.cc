// Store: the connection pool with every embedded statement prepared, and the migration entry point.
#include "services/metadata/store.h"

#include <pqxx/pqxx>

#include <utility>
#include <vector>

#include "common/migrations.h"
#include "common/pg_pool.h"
#include "absl/strings/match.h"
#include "common/status_macros.h"
#include "services/metadata/embedded_files.h"
#include "services/metadata/store_internal.h"
#include "spdlog/spdlog.h"

namespace tuneforge {

namespace {

void PrepareStatements(pqxx::connection& conn) {
  for (const auto& [file, sql] : EmbeddedSqlFiles()) {
    conn.prepare(file.substr(0, file.size() - 4), sql);  // "model_get.sql" -> "model_get"
  }
}

}  // namespace

Store::Store(std::unique_ptr<PgPool> pool) : pool_(std::move(pool)) {}
Store::~Store() = default;

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& url, int pool_size) {
  PgPoolOptions options;
  options.url = url;
  options.size = pool_size;
  options.on_connect = PrepareStatements;
  ASSIGN_OR_RETURN(std::unique_ptr<PgPool> pool, PgPool::Create(std::move(options)));
  return std::unique_ptr<Store>(new Store(std::move(pool)));
}

absl::Status Store::InTransaction(const std::function<absl::Status(Tx&)>& fn) {
  absl::Status rules = absl::OkStatus();
  bool answered = false;
  const absl::Status status = pool_->Run([&](pqxx::work& work) {
    Tx tx(work);
    rules = fn(tx);
    answered = true;
    return rules;
  });
  // A status of the service's own rules goes to the client as it is; one from the database is scrubbed.
  if (status.ok() || (answered && status == rules)) return status;
  return DatabaseFailureForClients(status);
}

absl::Status Store::Read(const std::function<absl::Status(Tx&)>& fn) {
  absl::Status rules = absl::OkStatus();
  bool answered = false;
  const absl::Status status = pool_->RunReadOnly([&](pqxx::transaction_base& statements) {
    Tx tx(statements);
    rules = fn(tx);
    answered = true;
    return rules;
  });
  if (status.ok() || (answered && status == rules)) return status;
  return DatabaseFailureForClients(status);
}

absl::Status DatabaseFailureForClients(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
    // A constraint or value the request's own data broke, or a conflict with a concurrent call: the database's
    // message describes the data (the row, the unique key), which the caller needs.
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kAborted:
      return status;
    default:
      break;
  }
  spdlog::warn("database failure answered to a client as {}: {}", absl::StatusCodeToString(status.code()),
               std::string(status.message()));
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      if (absl::StrContains(status.message(), "may or may not have been saved")) {
        return absl::UnavailableError(
            "lost the database connection while committing, so the change may or may not have been saved; check "
            "its result before retrying");
      }
      return absl::UnavailableError("the database is unavailable; retry once it is back (the server log says why)");
    case absl::StatusCode::kResourceExhausted:
      return absl::ResourceExhaustedError(
          "the database is busy (all connections of the server's pool stayed in use, or the database is out of "
          "resources); retry later; operators can raise tuneforge-metadata --pool-size");
    case absl::StatusCode::kDeadlineExceeded:
      return absl::DeadlineExceededError("a database statement took too long and was cancelled; retry later");
    default:
      return absl::Status(status.code(),
                          "internal database error; the server log has the details for the operator");
  }
}

absl::StatusOr<int> MigrateDatabase(const std::string& url) {
  std::vector<Migration> migrations;
  for (const auto& [file, sql] : EmbeddedMigrationFiles()) {
    ASSIGN_OR_RETURN(Migration m, MigrationFromFile(file, sql));
    migrations.push_back(std::move(m));
  }
  RETURN_IF_ERROR(CheckMigrationSequence(migrations));
  return ApplyMigrations(url, migrations);
}

}  // namespace tuneforge
