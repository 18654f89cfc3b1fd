// One log line per RPC: method, status code, milliseconds, and the message of an error (a server interceptor;
// request fields, and so tokens, are not logged, but an error message may quote one: the binaries escape control
// characters in every log line, see common/log_escaping.h).
#ifndef TUNEFORGE_SERVICES_METADATA_RPC_LOG_H_
#define TUNEFORGE_SERVICES_METADATA_RPC_LOG_H_

#include <grpcpp/support/server_interceptor.h>

namespace tuneforge {

class RpcLogInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_RPC_LOG_H_
