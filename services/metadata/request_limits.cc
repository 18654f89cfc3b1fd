// The request-limit interceptor, and protobuf's log routed to spdlog with the last parse diagnostic of each thread
// kept for the interceptor (a sync server parses a request and runs its interceptors on the same thread).
#include "services/metadata/request_limits.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>

#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace tuneforge {

namespace {

// What protobuf said while parsing on this thread: the full name of a string field that was not UTF-8.
thread_local std::string t_invalid_utf8_field;

void ProtobufLog(google::protobuf::LogLevel level, const char* filename, int line, const std::string& message) {
  // "String field 'tuneforge.v1.AddModelRequest.name' contains invalid UTF-8 data when parsing a protocol buffer."
  constexpr absl::string_view kPrefix = "String field '";
  if (absl::StartsWith(message, kPrefix) && absl::StrContains(message, "when parsing")) {
    const size_t end = message.find('\'', kPrefix.size());
    if (end != std::string::npos) t_invalid_utf8_field = message.substr(kPrefix.size(), end - kPrefix.size());
  }
  switch (level) {
    case google::protobuf::LOGLEVEL_INFO:
      spdlog::debug("protobuf {}:{}: {}", filename, line, message);
      break;
    case google::protobuf::LOGLEVEL_WARNING:
      spdlog::warn("protobuf {}:{}: {}", filename, line, message);
      break;
    default:
      spdlog::error("protobuf {}:{}: {}", filename, line, message);
      break;
  }
}

std::string TakeInvalidUtf8Field() {
  std::string field;
  field.swap(t_invalid_utf8_field);
  return field;
}

// "tuneforge.v1.AddModelRequest" for "/tuneforge.v1.Models/AddModel"; empty when unknown.
std::string RequestTypeName(const std::string& method) {
  const size_t slash = method.rfind('/');
  if (method.empty() || method[0] != '/' || slash == 0 || slash == std::string::npos) return "";
  const std::string full = absl::StrCat(method.substr(1, slash - 1), ".", method.substr(slash + 1));
  const google::protobuf::MethodDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full);
  return descriptor == nullptr ? "" : descriptor->input_type()->full_name();
}

class RequestLimitInterceptor : public grpc::experimental::Interceptor {
 public:
  RequestLimitInterceptor(grpc::experimental::ServerRpcInfo* info, const RequestLimits& limits)
      : method_(info->method() != nullptr ? info->method() : ""),
        // Only our own services: their requests are generated protobuf messages (grpc.health serves raw bytes).
        ours_(absl::StartsWith(method_, "/tuneforge.")),
        streamed_(info->type() == grpc::experimental::ServerRpcInfo::Type::CLIENT_STREAMING ||
                  info->type() == grpc::experimental::ServerRpcInfo::Type::BIDI_STREAMING),
        limit_(method_ == kLargeRequestMethod ? limits.max_large_request_bytes : limits.max_request_bytes) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (ours_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      OnRequest(methods->GetRecvMessage());
    }
    if (ours_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      TakeInvalidUtf8Field();  // what the handler's own parsing left must not describe the next request
      if (too_large_bytes_ > 0 && streamed_) {
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::RESOURCE_EXHAUSTED,
            absl::StrCat("a message of the stream is ", too_large_bytes_, " bytes; ", method_,
                         " accepts messages of at most ", limit_,
                         " bytes (tuneforge-metadata --max-request-bytes); send smaller pieces (1 MiB)")));
      } else if (too_large_bytes_ > 0) {
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::RESOURCE_EXHAUSTED,
            absl::StrCat("the request is ", too_large_bytes_, " bytes; ", method_, " accepts at most ", limit_,
                         " bytes (tuneforge-metadata --max-request-bytes; only Admin/ImportDatabase takes more, up "
                         "to --max-document-bytes)")));
      } else if (unparsable_ && methods->GetSendStatus().error_code() == grpc::StatusCode::INTERNAL) {
        methods->ModifySendStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, UnparsableMessage()));
      }
    }
    methods->Proceed();
  }

 private:
  void OnRequest(void* request) {
    if (request == nullptr) {  // gRPC could not parse it
      // In a stream this is also how the stream ends; the handler gets a short stream either way and says so.
      if (streamed_) return;
      unparsable_ = true;
      invalid_utf8_field_ = TakeInvalidUtf8Field();
      return;
    }
    TakeInvalidUtf8Field();
    auto* message = static_cast<google::protobuf::Message*>(request);
    const size_t size = message->ByteSizeLong();
    if (size <= limit_) return;
    too_large_bytes_ = size;
    // Swap the content out and free it now, rather than when the call ends.
    std::unique_ptr<google::protobuf::Message> content(message->New());
    message->GetReflection()->Swap(message, content.get());
  }

  std::string UnparsableMessage() const {
    const std::string type = RequestTypeName(method_);
    const std::string what = type.empty() ? "the request" : absl::StrCat("the request (", type, ")");
    if (!invalid_utf8_field_.empty()) {
      const size_t dot = invalid_utf8_field_.rfind('.');
      const std::string name = dot == std::string::npos ? invalid_utf8_field_ : invalid_utf8_field_.substr(dot + 1);
      return absl::StrCat(what, " cannot be read: field ", name, " (", invalid_utf8_field_,
                          ") is not valid UTF-8; send text fields as UTF-8");
    }
    return absl::StrCat(what, " cannot be read: it is not a well-formed protobuf message of that type, or it nests ",
                        "messages deeper than protobuf's limit of 100 (a google.protobuf.Struct nested more than ",
                        "about 30 levels); check that the client uses tuneforge's .proto files");
  }

  const std::string method_;
  const bool ours_;
  const bool streamed_;  // requests come as a stream: the limit holds for each message
  const size_t limit_;
  size_t too_large_bytes_ = 0;
  bool unparsable_ = false;
  std::string invalid_utf8_field_;
};

}  // namespace

RequestLimitInterceptorFactory::RequestLimitInterceptorFactory(RequestLimits limits) : limits_(limits) {
  static std::once_flag routed;
  std::call_once(routed, [] { google::protobuf::SetLogHandler(&ProtobufLog); });
}

grpc::experimental::Interceptor* RequestLimitInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RequestLimitInterceptor(info, limits_);
}

}  // namespace tuneforge
