// tuneforge.v1.Tokens over TokenService: only admins manage tokens; GetCaller answers any role.
#include "services/metadata/tokens_handler.h"

#include "common/grpc_status.h"
#include "services/metadata/auth.h"
#include "services/metadata/proto_convert.h"

namespace tuneforge {

namespace {

v1::Role RoleToProto(Role role) {
  switch (role) {
    case Role::kViewer: return v1::ROLE_VIEWER;
    case Role::kOperator: return v1::ROLE_OPERATOR;
    case Role::kAdmin: return v1::ROLE_ADMIN;
    case Role::kTrainer: return v1::ROLE_TRAINER;
  }
  return v1::ROLE_UNSPECIFIED;
}

std::optional<Role> RoleFromProto(v1::Role role) {
  switch (role) {
    case v1::ROLE_VIEWER: return Role::kViewer;
    case v1::ROLE_OPERATOR: return Role::kOperator;
    case v1::ROLE_ADMIN: return Role::kAdmin;
    case v1::ROLE_TRAINER: return Role::kTrainer;
    default: return std::nullopt;
  }
}

void TokenToProto(const TokenRecord& t, v1::ApiToken* out) {
  out->set_id(t.id);
  out->set_name(t.name);
  out->set_role(RoleToProto(RoleFromName(t.role).value_or(Role::kViewer)));
  out->set_description(t.description);
  out->set_prefix(t.prefix);
  out->set_created_by(t.created_by);
  ToProto(t.create_time, out->mutable_create_time());
  if (t.expire_time.has_value()) ToProto(*t.expire_time, out->mutable_expire_time());
  if (t.revoke_time.has_value()) ToProto(*t.revoke_time, out->mutable_revoke_time());
  if (t.last_use_time.has_value()) ToProto(*t.last_use_time, out->mutable_last_use_time());
}

}  // namespace

grpc::Status TokensHandler::CreateToken(grpc::ServerContext* context, const v1::CreateTokenRequest* request,
                                        v1::CreateTokenResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kAdmin); !denied.ok()) return denied;
  CreateTokenInput input;
  input.name = request->name();
  input.role = RoleFromProto(request->role());
  input.description = request->description();
  input.ttl_seconds = request->ttl_seconds();
  absl::StatusOr<CreatedToken> created = service_.Create(input, CallerOf(context));
  if (!created.ok()) return ToGrpcStatus(created.status());
  TokenToProto(created->token, response->mutable_token());
  response->set_secret(created->secret);
  return grpc::Status::OK;
}

grpc::Status TokensHandler::ListTokens(grpc::ServerContext* context, const v1::ListTokensRequest* request,
                                       v1::ListTokensResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kAdmin); !denied.ok()) return denied;
  absl::StatusOr<std::vector<TokenRecord>> tokens = service_.List(request->include_inactive());
  if (!tokens.ok()) return ToGrpcStatus(tokens.status());
  for (const TokenRecord& t : *tokens) TokenToProto(t, response->add_tokens());
  return grpc::Status::OK;
}

grpc::Status TokensHandler::RevokeToken(grpc::ServerContext* context, const v1::RevokeTokenRequest* request,
                                        v1::RevokeTokenResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kAdmin); !denied.ok()) return denied;
  absl::StatusOr<TokenRecord> revoked = service_.Revoke(request->token());
  if (!revoked.ok()) return ToGrpcStatus(revoked.status());
  TokenToProto(*revoked, response->mutable_token());
  return grpc::Status::OK;
}

grpc::Status TokensHandler::GetCaller(grpc::ServerContext* context, const v1::GetCallerRequest*,
                                      v1::GetCallerResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) {
    // A trainer token may ask who it is too.
    if (CallerOf(context).role != Role::kTrainer || denied.error_code() != grpc::StatusCode::PERMISSION_DENIED) {
      return denied;
    }
  }
  const Caller caller = CallerOf(context);
  response->set_token_name(caller.token_name);
  response->set_role(RoleToProto(caller.role));
  response->set_auth_enabled(AuthEnabled(context));
  return grpc::Status::OK;
}

}  // namespace tuneforge
