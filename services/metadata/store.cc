// Store: the connection pool with every embedded statement prepared, and the migration entry point.
#include "services/metadata/store.h"

#include <pqxx/pqxx>

#include <utility>
#include <vector>

#include "common/migrations.h"
#include "common/pg_pool.h"
#include "common/status_macros.h"
#include "services/metadata/embedded_files.h"
#include "services/metadata/store_internal.h"

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
  return pool_->Run([&](pqxx::work& work) {
    Tx tx(work);
    return fn(tx);
  });
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
