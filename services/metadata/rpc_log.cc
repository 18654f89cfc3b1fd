// Logs "rpc /tuneforge.v1.Models/AddModel code=OK ms=3.2" when each RPC sends its status.
#include "services/metadata/rpc_log.h"

#include <chrono>
#include <string>
#include <vector>

#include "spdlog/spdlog.h"

namespace tuneforge {

namespace {

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "?";
  }
}

class RpcLogInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcLogInterceptor(grpc::experimental::ServerRpcInfo* info, CounterFamily* requests, HistogramFamily* durations)
      : method_(info->method() != nullptr ? info->method() : "?"),
        start_(std::chrono::steady_clock::now()),
        requests_(requests),
        durations_(durations) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
      if (status.ok() || method_.rfind("/grpc.", 0) == 0) {
        spdlog::info("rpc {} code={} ms={:.1f}", method_, CodeName(status.error_code()), ms);
      } else {
        spdlog::warn("rpc {} code={} ms={:.1f} message=\"{}\"", method_, CodeName(status.error_code()), ms,
                     status.error_message());
      }
      if (requests_ != nullptr) {
        const std::vector<std::string> labels = {method_, CodeName(status.error_code())};
        requests_->WithLabels(labels).Increment();
        durations_->WithLabels(labels).Observe(ms / 1000);
      }
    }
    methods->Proceed();
  }

 private:
  std::string method_;
  std::chrono::steady_clock::time_point start_;
  CounterFamily* requests_;
  HistogramFamily* durations_;
};

}  // namespace

RpcLogInterceptorFactory::RpcLogInterceptorFactory(MetricsRegistry* metrics) {
  if (metrics == nullptr) return;
  requests_ = &metrics->AddCounter("tuneforge_rpc_requests_total", "RPCs answered, by method and status code.",
                                   {"method", "code"});
  durations_ = &metrics->AddHistogram("tuneforge_rpc_duration_seconds",
                                      "Time from an RPC's start to its status, by method and status code.",
                                      DurationBuckets(), {"method", "code"});
}

grpc::experimental::Interceptor* RpcLogInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcLogInterceptor(info, requests_, durations_);
}

}  // namespace tuneforge
