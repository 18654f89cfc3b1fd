// gRPC handler of tuneforge.v1.Tokens: proto <-> token records, and the service's status as the RPC's status.
#ifndef TUNEFORGE_SERVICES_METADATA_TOKENS_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_TOKENS_HANDLER_H_

#include "services/metadata/token_service.h"
#include "tuneforge/v1/tokens.grpc.pb.h"

namespace tuneforge {

class TokensHandler final : public v1::Tokens::Service {
 public:
  explicit TokensHandler(TokenService& service) : service_(service) {}

  grpc::Status CreateToken(grpc::ServerContext*, const v1::CreateTokenRequest*, v1::CreateTokenResponse*) override;
  grpc::Status ListTokens(grpc::ServerContext*, const v1::ListTokensRequest*, v1::ListTokensResponse*) override;
  grpc::Status RevokeToken(grpc::ServerContext*, const v1::RevokeTokenRequest*, v1::RevokeTokenResponse*) override;
  grpc::Status GetCaller(grpc::ServerContext*, const v1::GetCallerRequest*, v1::GetCallerResponse*) override;

 private:
  TokenService& service_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_TOKENS_HANDLER_H_
