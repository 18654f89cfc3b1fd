// The authentication interceptor and Authorize. The interceptor removes any caller keys a client sent, then adds
// its own (x-tuneforge-caller-*) to the call's received metadata, which the handler reads through its context.
#include "services/metadata/auth.h"

#include <array>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tuneforge {

namespace {

constexpr char kKeyPrefix[] = "x-tuneforge-caller-";
constexpr char kRoleKey[] = "x-tuneforge-caller-role";
constexpr char kNameKey[] = "x-tuneforge-caller-token-name";
constexpr char kIdKey[] = "x-tuneforge-caller-token-id";
constexpr char kErrorCodeKey[] = "x-tuneforge-caller-error-code";
constexpr char kErrorKey[] = "x-tuneforge-caller-error";
constexpr char kMethodKey[] = "x-tuneforge-caller-method";
constexpr char kAuthKey[] = "x-tuneforge-caller-auth";

std::string Value(const grpc::ServerContext* context, const char* key) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(key);
  return it == metadata.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

class AuthInterceptor : public grpc::experimental::Interceptor {
 public:
  AuthInterceptor(grpc::experimental::ServerRpcInfo* info, TokenService& tokens, bool auth_enabled)
      : method_(info->method() != nullptr ? info->method() : ""), tokens_(tokens), auth_enabled_(auth_enabled) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      Authenticate(methods->GetRecvInitialMetadata());
    }
    methods->Proceed();
  }

 private:
  void Authenticate(std::multimap<grpc::string_ref, grpc::string_ref>* metadata) {
    for (auto it = metadata->begin(); it != metadata->end();) {
      if (absl::StartsWith(absl::string_view(it->first.data(), it->first.size()), kKeyPrefix)) {
        it = metadata->erase(it);
      } else {
        ++it;
      }
    }
    if (!absl::StartsWith(method_, "/tuneforge.")) return;
    values_[0] = method_.substr(1);
    values_[1] = auth_enabled_ ? "on" : "off";
    Add(metadata, kMethodKey, 0);
    Add(metadata, kAuthKey, 1);
    auto header = metadata->find("authorization");
    if (header == metadata->end()) {
      if (auth_enabled_) {
        Fail(metadata, grpc::StatusCode::UNAUTHENTICATED,
             "this call needs a token: send the metadata 'authorization: Bearer <token>' (the CLI reads "
             "--api-token-file, TUNEFORGE_API_TOKEN or <home>/admin-token); an admin creates tokens with "
             "'tuneforge tokens create', and the server's first start wrote <home>/admin-token");
      } else {
        Succeed(metadata, Caller{"", "", Role::kAdmin});
      }
      return;
    }
    const std::string value(header->second.data(), header->second.size());
    constexpr absl::string_view kScheme = "bearer ";
    if (value.size() <= kScheme.size() || !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
      Fail(metadata, grpc::StatusCode::UNAUTHENTICATED,
           "the authorization metadata must be 'Bearer <token>'");
      return;
    }
    absl::StatusOr<Caller> caller =
        tokens_.Authenticate(std::string(absl::StripAsciiWhitespace(absl::string_view(value).substr(kScheme.size()))));
    if (!caller.ok()) {
      // A token that is not valid is the caller's error; anything else came from the database.
      const absl::Status status =
          absl::IsUnauthenticated(caller.status()) ? caller.status() : DatabaseFailureForClients(caller.status());
      Fail(metadata, static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
      return;
    }
    Succeed(metadata, *caller);
  }

  void Succeed(std::multimap<grpc::string_ref, grpc::string_ref>* metadata, const Caller& caller) {
    values_[2] = std::string(RoleName(caller.role));
    values_[3] = caller.token_name;
    values_[4] = caller.token_id;
    Add(metadata, kRoleKey, 2);
    Add(metadata, kNameKey, 3);
    Add(metadata, kIdKey, 4);
  }

  void Fail(std::multimap<grpc::string_ref, grpc::string_ref>* metadata, grpc::StatusCode code, std::string message) {
    values_[5] = std::to_string(static_cast<int>(code));
    values_[6] = std::move(message);
    Add(metadata, kErrorCodeKey, 5);
    Add(metadata, kErrorKey, 6);
  }

  // The map holds references: the strings live in this interceptor, which lives as long as the call.
  void Add(std::multimap<grpc::string_ref, grpc::string_ref>* metadata, const char* key, int value) {
    metadata->emplace(grpc::string_ref(key), grpc::string_ref(values_[value]));
  }

  const std::string method_;
  TokenService& tokens_;
  const bool auth_enabled_;
  std::array<std::string, 7> values_;
};

}  // namespace

grpc::experimental::Interceptor* AuthInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new AuthInterceptor(info, tokens_, auth_enabled_);
}

grpc::Status Authorize(const grpc::ServerContext* context, Role needs) {
  if (const std::string error = Value(context, kErrorKey); !error.empty()) {
    int code = 0;
    if (!absl::SimpleAtoi(Value(context, kErrorCodeKey), &code) || code <= 0 || code > 16) {
      code = static_cast<int>(grpc::StatusCode::UNAUTHENTICATED);
    }
    return grpc::Status(static_cast<grpc::StatusCode>(code), error);
  }
  const std::optional<Role> role = RoleFromName(Value(context, kRoleKey));
  if (!role.has_value()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "this call was not authenticated");
  }
  const std::string name = Value(context, kNameKey);
  if (needs == Role::kTrainer && name.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "trainers send 'authorization: Bearer <token>' with the worker-token file's secret or a trainer "
                        "token (tuneforge-trainer --worker-token-file or --token-file)");
  }
  if (RoleAllows(*role, needs)) return grpc::Status::OK;
  const std::string who = name.empty() ? "a call without a token" : absl::StrCat("token '", name, "'");
  std::string advice = needs == Role::kTrainer
                           ? "only tuneforge-trainer calls it, with the worker-token file or a trainer token"
                           : absl::StrCat("ask an admin for a token with that role (tuneforge tokens create --role ",
                                          RoleName(needs), ")");
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      absl::StrCat(Value(context, kMethodKey), " needs the ", RoleName(needs), " role; ", who,
                                   " has ", RoleName(*role), "; ", advice));
}

Caller CallerOf(const grpc::ServerContext* context) {
  Caller caller;
  caller.role = RoleFromName(Value(context, kRoleKey)).value_or(Role::kViewer);
  caller.token_name = Value(context, kNameKey);
  caller.token_id = Value(context, kIdKey);
  return caller;
}

bool AuthEnabled(const grpc::ServerContext* context) { return Value(context, kAuthKey) == "on"; }

}  // namespace tuneforge
