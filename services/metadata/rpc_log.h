// One log line per RPC: method, status code, milliseconds (a server interceptor; request fields,
// and so tokens, are never logged).
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
