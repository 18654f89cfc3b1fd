// API tokens repository: runs sql/token_*.sql and maps rows to records.
#include "services/metadata/token_repository.h"

#include "services/metadata/store_internal.h"

namespace tuneforge {

namespace {

std::optional<absl::Time> OptionalMicros(const pqxx::row& row, const char* column) {
  if (row[column].is_null()) return std::nullopt;
  return Micros(row, column);
}

TokenRecord TokenFromRow(const pqxx::row& row) {
  TokenRecord t;
  t.id = Str(row, "id");
  t.name = Str(row, "name");
  t.role = Str(row, "role");
  t.description = Str(row, "description");
  t.prefix = Str(row, "prefix");
  t.created_by = Str(row, "created_by");
  t.create_time = Micros(row, "create_us");
  t.expire_time = OptionalMicros(row, "expire_us");
  t.revoke_time = OptionalMicros(row, "revoke_us");
  t.last_use_time = OptionalMicros(row, "last_use_us");
  return t;
}

}  // namespace

std::optional<std::string> TokenRepository::Insert(Tx& tx, const NewToken& t) {
  const std::optional<int64_t> ttl = t.ttl_seconds > 0 ? std::optional<int64_t>(t.ttl_seconds) : std::nullopt;
  const pqxx::result r = tx.work().exec_prepared("token_insert", t.name, t.role, t.description, t.secret_sha256,
                                                 t.prefix, t.created_by, ttl);
  if (r.empty()) return std::nullopt;
  return Str(r[0], "id");
}

std::vector<TokenRecord> TokenRepository::List(Tx& tx, bool include_inactive) {
  std::vector<TokenRecord> out;
  for (const auto& row : tx.work().exec_prepared("token_list", include_inactive)) out.push_back(TokenFromRow(row));
  return out;
}

std::optional<TokenRecord> TokenRepository::Get(Tx& tx, const std::string& ref) {
  const pqxx::result r = tx.work().exec_prepared("token_get", ref, ref);
  if (r.empty()) return std::nullopt;
  return TokenFromRow(r[0]);
}

void TokenRepository::Revoke(Tx& tx, const std::string& id) { tx.work().exec_prepared("token_revoke", id); }

std::optional<ActiveToken> TokenRepository::Authenticate(Tx& tx, const std::string& secret_sha256) {
  const pqxx::result r = tx.work().exec_prepared("token_authenticate", secret_sha256);
  if (r.empty()) return std::nullopt;
  ActiveToken t;
  t.id = Str(r[0], "id");
  t.name = Str(r[0], "name");
  t.role = Str(r[0], "role");
  t.expire_time = OptionalMicros(r[0], "expire_us");
  t.last_use_time = OptionalMicros(r[0], "last_use_us");
  return t;
}

void TokenRepository::Touch(Tx& tx, const std::string& id) { tx.work().exec_prepared("token_touch", id); }

int64_t TokenRepository::CountActiveAdmins(Tx& tx) {
  return Int(tx.work().exec_prepared1("token_count_active_admins"), "n");
}

void TokenRepository::Lock(Tx& tx) { tx.work().exec_prepared("token_lock"); }

}  // namespace tuneforge
