// Token rules: names and roles checked as the other resources' are, secrets made from 32 random bytes, a short
// cache in front of the database lookup so that authentication costs a hash and a map lookup per call.
#include "services/metadata/token_service.h"

#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "common/secret_file.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace {

constexpr char kSecretPrefix[] = "tft_";
constexpr size_t kPrefixShown = 10;  // "tft_" and six hex digits
constexpr int64_t kMaxTtlSeconds = int64_t{10} * 366 * 24 * 3600;
constexpr size_t kMaxCachedTokens = 4096;
constexpr absl::Duration kTouchEvery = absl::Minutes(1);

absl::Status NotValid() {
  return absl::UnauthenticatedError(
      "the bearer token is not valid: it is unknown, revoked or expired; ask an admin for a token "
      "(tuneforge tokens create)");
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer: return "viewer";
    case Role::kOperator: return "operator";
    case Role::kAdmin: return "admin";
    case Role::kTrainer: return "trainer";
  }
  return "?";
}

std::optional<Role> RoleFromName(std::string_view name) {
  for (Role r : {Role::kViewer, Role::kOperator, Role::kAdmin, Role::kTrainer}) {
    if (name == RoleName(r)) return r;
  }
  return std::nullopt;
}

bool RoleAllows(Role has, Role needs) {
  if (has == Role::kTrainer || needs == Role::kTrainer) return has == needs;
  return static_cast<int>(has) >= static_cast<int>(needs);
}

absl::StatusOr<CreatedToken> TokenService::Create(const CreateTokenInput& input, const Caller& creator) {
  RETURN_IF_ERROR(CheckName(input.name, "name"));
  if (!input.role.has_value()) {
    return absl::InvalidArgumentError("role is required: viewer, operator, admin or trainer");
  }
  RETURN_IF_ERROR(CheckDescription(input.description, "description"));
  if (input.ttl_seconds != 0 && (input.ttl_seconds < 60 || input.ttl_seconds > kMaxTtlSeconds)) {
    return absl::InvalidArgumentError(absl::StrCat("ttl_seconds is ", input.ttl_seconds,
                                                   "; give 0 (never expires) or 60 to ", kMaxTtlSeconds));
  }
  ASSIGN_OR_RETURN(std::string random, RandomHexSecret(32));
  const std::string secret = absl::StrCat(kSecretPrefix, random);
  NewToken token;
  token.name = input.name;
  token.role = std::string(RoleName(*input.role));
  token.description = input.description;
  token.ttl_seconds = input.ttl_seconds;
  token.created_by = creator.token_name.empty() ? "local (auth off)" : creator.token_name;
  ASSIGN_OR_RETURN(std::optional<CreatedToken> created, Insert(token, secret, ""));
  return std::move(*created);
}

absl::StatusOr<std::optional<CreatedToken>> TokenService::Insert(const NewToken& input, const std::string& secret,
                                                  const std::string& file_to_write) {
  NewToken token = input;
  token.secret_sha256 = Sha256Hex(secret);
  token.prefix = secret.substr(0, kPrefixShown);
  CreatedToken out;
  bool created = true;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    TokenRepository tokens;
    if (!file_to_write.empty()) {
      tokens.Lock(tx);
      if (tokens.CountActiveAdmins(tx) > 0) {
        created = false;
        return absl::OkStatus();
      }
    }
    std::optional<std::string> id = tokens.Insert(tx, token);
    if (!id.has_value()) {
      return absl::AlreadyExistsError(absl::StrCat("a token named '", token.name,
                                                   "' exists; choose another name, or revoke it first"));
    }
    std::optional<TokenRecord> record = tokens.Get(tx, *id);
    if (!record.has_value()) return absl::InternalError("the new token disappeared");
    out.token = std::move(*record);
    // Inside the transaction: a secret that cannot be written is not stored either.
    if (!file_to_write.empty()) RETURN_IF_ERROR(WriteSecretFile(file_to_write, secret));
    return absl::OkStatus();
  }));
  if (!created) return std::nullopt;
  out.secret = secret;
  return out;
}

absl::StatusOr<std::vector<TokenRecord>> TokenService::List(bool include_inactive) {
  std::vector<TokenRecord> out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    out = TokenRepository().List(tx, include_inactive);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<TokenRecord> TokenService::Revoke(const std::string& ref) {
  if (ref.empty()) return absl::InvalidArgumentError("token is required: the name or id of the token to revoke");
  RETURN_IF_ERROR(CheckText(ref, "token", 256));
  TokenRecord out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    TokenRepository tokens;
    std::optional<TokenRecord> token = tokens.Get(tx, ref);
    if (!token.has_value()) {
      return absl::NotFoundError(absl::StrCat("token '", ref, "' not found; ListTokens shows the tokens"));
    }
    tokens.Revoke(tx, token->id);
    out = *tokens.Get(tx, token->id);
    return absl::OkStatus();
  }));
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (it->second.caller.token_id == out.id) {
      cache_.erase(it++);
    } else {
      ++it;
    }
  }
  return out;
}

void TokenService::SetFixedSecret(std::string name, Role role, std::string secret) {
  std::lock_guard<std::mutex> lock(mu_);
  fixed_name_ = std::move(name);
  fixed_role_ = role;
  fixed_secret_ = std::move(secret);
}

absl::StatusOr<Caller> TokenService::Authenticate(std::string_view secret) {
  if (secret.empty()) return NotValid();
  const absl::Time now = absl::Now();
  const std::string hash = Sha256Hex(secret);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!fixed_secret_.empty() && fixed_secret_.size() == secret.size() &&
        CRYPTO_memcmp(fixed_secret_.data(), secret.data(), secret.size()) == 0) {
      return Caller{"", fixed_name_, fixed_role_};
    }
    auto it = cache_.find(hash);
    if (it != cache_.end() && now - it->second.checked < absl::Seconds(kCacheSeconds) &&
        (!it->second.expire_time.has_value() || *it->second.expire_time > now)) {
      return it->second.caller;
    }
  }
  std::optional<ActiveToken> token;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    TokenRepository tokens;
    token = tokens.Authenticate(tx, hash);
    if (token.has_value() && (!token->last_use_time.has_value() || now - *token->last_use_time > kTouchEvery)) {
      tokens.Touch(tx, token->id);
    }
    return absl::OkStatus();
  }));
  if (!token.has_value()) return NotValid();
  const std::optional<Role> role = RoleFromName(token->role);
  if (!role.has_value()) return NotValid();
  Caller caller{token->id, token->name, *role};
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() >= kMaxCachedTokens) cache_.clear();
  cache_[hash] = CachedCaller{caller, now, token->expire_time};
  return caller;
}

absl::StatusOr<bool> TokenService::BootstrapAdmin(const std::string& path) {
  ASSIGN_OR_RETURN(std::string random, RandomHexSecret(32));
  NewToken token;
  token.name = "admin";
  token.role = "admin";
  token.description = "the first admin token, written at the first start with --auth=on";
  token.created_by = "bootstrap";
  absl::StatusOr<std::optional<CreatedToken>> created = Insert(token, absl::StrCat(kSecretPrefix, random), path);
  if (absl::IsAlreadyExists(created.status())) {
    // An inactive token named "admin" (revoked or expired) and no other admin: name this one after the time.
    token.name = absl::StrCat("admin-", absl::ToUnixSeconds(absl::Now()));
    created = Insert(token, absl::StrCat(kSecretPrefix, random), path);
  }
  if (!created.ok()) return created.status();
  return created->has_value();
}

}  // namespace tuneforge
