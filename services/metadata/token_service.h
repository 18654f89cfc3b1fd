// API tokens and roles: creating, listing and revoking tokens, the first admin token, and turning a bearer secret
// into the caller it names. Secrets are returned once and kept only as SHA-256.
#ifndef TUNEFORGE_SERVICES_METADATA_TOKEN_SERVICE_H_
#define TUNEFORGE_SERVICES_METADATA_TOKEN_SERVICE_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/metadata/store.h"
#include "services/metadata/token_repository.h"

namespace tuneforge {

// viewer < operator < admin: each may do what the ones before it may. trainer stands apart: only WorkerQueue.
enum class Role { kViewer, kOperator, kAdmin, kTrainer };

const char* RoleName(Role role);
std::optional<Role> RoleFromName(std::string_view name);
// Whether a caller with role `has` may call a method that needs `needs`.
bool RoleAllows(Role has, Role needs);

// Who made a call.
struct Caller {
  std::string token_id;    // empty for the worker-token file and for calls without a token (--auth=off)
  std::string token_name;  // empty for calls without a token
  Role role = Role::kViewer;
};

struct CreateTokenInput {
  std::string name;
  std::optional<Role> role;
  std::string description;
  int64_t ttl_seconds = 0;
};

struct CreatedToken {
  TokenRecord token;
  std::string secret;
};

class TokenService {
 public:
  explicit TokenService(Store& store) : store_(store) {}

  absl::StatusOr<CreatedToken> Create(const CreateTokenInput& input, const Caller& creator);
  absl::StatusOr<std::vector<TokenRecord>> List(bool include_inactive);
  // By name or id; revoking a revoked token returns it unchanged.
  absl::StatusOr<TokenRecord> Revoke(const std::string& ref);

  // The caller `secret` names: the fixed secret (the worker-token file) or an active token in the database.
  // UNAUTHENTICATED otherwise. Database answers are cached for a few seconds; a revocation through this server
  // takes effect at once, through another server sharing the database within kCacheSeconds.
  absl::StatusOr<Caller> Authenticate(std::string_view secret);
  static constexpr int kCacheSeconds = 5;

  // Accepts `secret` as the token `name` with `role` without storing it (the trainers' worker-token file).
  void SetFixedSecret(std::string name, Role role, std::string secret);

  // When the database has no usable admin token, creates one named "admin" and writes its secret to `path`
  // (mode 0600). Returns whether it did. Servers sharing a database take turns (an advisory lock).
  absl::StatusOr<bool> BootstrapAdmin(const std::string& path);

 private:
  struct CachedCaller {
    Caller caller;
    absl::Time checked;
    std::optional<absl::Time> expire_time;
  };
  // Inserts the token. With `file_to_write` (the bootstrap), only when no admin token is active (nullopt
  // otherwise), and the secret is written to that file before the transaction commits.
  absl::StatusOr<std::optional<CreatedToken>> Insert(const NewToken& token, const std::string& secret,
                                                     const std::string& file_to_write);

  Store& store_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, CachedCaller> cache_;  // by secret SHA-256
  std::string fixed_name_;
  Role fixed_role_ = Role::kTrainer;
  std::string fixed_secret_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_TOKEN_SERVICE_H_
