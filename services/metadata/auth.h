// Who may call what: an interceptor authenticates each call to tuneforge's services (the bearer token, or nobody
// with --auth=off) and records the caller in the call's metadata; each handler method then authorises its own call
// with one line, Authorize(context, <the role it needs>). A call whose interceptor did not run is refused.
#ifndef TUNEFORGE_SERVICES_METADATA_AUTH_H_
#define TUNEFORGE_SERVICES_METADATA_AUTH_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include "services/metadata/token_service.h"

namespace tuneforge {

class AuthInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // With `auth_enabled` false, a public call without a token acts as admin (a single user on loopback); tokens
  // that are sent are still checked, and WorkerQueue still needs the trainer role.
  AuthInterceptorFactory(TokenService& tokens, bool auth_enabled) : tokens_(tokens), auth_enabled_(auth_enabled) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;

 private:
  TokenService& tokens_;
  const bool auth_enabled_;
};

// OK when the caller may make a call that needs `needs`; otherwise UNAUTHENTICATED (no token, or one that is not
// valid) or PERMISSION_DENIED naming the method, the role it needs and the caller's.
grpc::Status Authorize(const grpc::ServerContext* context, Role needs);

// The caller of a call that Authorize allowed.
Caller CallerOf(const grpc::ServerContext* context);

// Whether the server checks tokens on public calls.
bool AuthEnabled(const grpc::ServerContext* context);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_AUTH_H_
