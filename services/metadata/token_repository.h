// SQL for API tokens: one method per statement in sql/token_*.sql.
#ifndef TUNEFORGE_SERVICES_METADATA_TOKEN_REPOSITORY_H_
#define TUNEFORGE_SERVICES_METADATA_TOKEN_REPOSITORY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct TokenRecord {
  std::string id;
  std::string name;
  std::string role;  // viewer, operator, admin or trainer
  std::string description;
  std::string prefix;
  std::string created_by;
  absl::Time create_time;
  std::optional<absl::Time> expire_time;
  std::optional<absl::Time> revoke_time;
  std::optional<absl::Time> last_use_time;
};

// What authentication needs of an active token.
struct ActiveToken {
  std::string id;
  std::string name;
  std::string role;
  std::optional<absl::Time> expire_time;
  std::optional<absl::Time> last_use_time;
};

struct NewToken {
  std::string name;
  std::string role;
  std::string description;
  std::string secret_sha256;
  std::string prefix;
  std::string created_by;
  int64_t ttl_seconds = 0;  // 0: never expires
};

class TokenRepository {
 public:
  // The new token's id, or nullopt when the name is taken.
  std::optional<std::string> Insert(Tx& tx, const NewToken& token);
  std::vector<TokenRecord> List(Tx& tx, bool include_inactive);
  // By id or name.
  std::optional<TokenRecord> Get(Tx& tx, const std::string& ref);
  void Revoke(Tx& tx, const std::string& id);
  std::optional<ActiveToken> Authenticate(Tx& tx, const std::string& secret_sha256);
  void Touch(Tx& tx, const std::string& id);
  int64_t CountActiveAdmins(Tx& tx);
  // Held until the transaction ends.
  void Lock(Tx& tx);
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_TOKEN_REPOSITORY_H_
