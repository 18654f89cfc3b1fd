// One log line per RPC: method, status code, milliseconds, and the message of an error (a server interceptor;
// request fields, and so tokens, are not logged, but an error message may quote one: the binaries escape control
// characters in every log line, see common/log_escaping.h). With a metrics registry, also the RPC count and duration
// by method and code.
#ifndef TUNEFORGE_SERVICES_METADATA_RPC_LOG_H_
#define TUNEFORGE_SERVICES_METADATA_RPC_LOG_H_

#include <grpcpp/support/server_interceptor.h>

#include "common/metrics.h"

namespace tuneforge {

class RpcLogInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // With `metrics`, adds tuneforge_rpc_requests_total and tuneforge_rpc_duration_seconds to it (labels method, code).
  explicit RpcLogInterceptorFactory(MetricsRegistry* metrics = nullptr);
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;

 private:
  CounterFamily* requests_ = nullptr;
  HistogramFamily* durations_ = nullptr;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_RPC_LOG_H_
