// Per-method request limits and readable answers to requests that cannot be parsed, as a server interceptor.
//
// gRPC C++ 1.51 has one receive limit per server, so the server admits messages as large as ImportDatabase needs
// and this interceptor holds every other method to a small limit: once gRPC has parsed a request that is too large,
// the interceptor drops its content at once (the handler then sees an empty request and its answer is replaced by
// RESOURCE_EXHAUSTED naming the method, the limit and the flag). gRPC has read and parsed the whole message before
// any server code runs, so a large request still costs its size (bounded by --max-document-bytes) for that moment.
//
// A streamed request (ImportDatabaseStream) is held to the small limit message by message: an oversized message is
// dropped in the same way, and the handler, seeing a message without content, ends the call, which then answers
// RESOURCE_EXHAUSTED as above. So streaming needs no raised limit.
//
// A request gRPC cannot parse (malformed protobuf, a string field that is not UTF-8, messages nested deeper than
// protobuf's limit of 100) reaches no handler: gRPC answers INTERNAL with an empty message. The interceptor turns
// that into INVALID_ARGUMENT saying what is wrong, naming the field for invalid UTF-8 (from protobuf's own parse
// diagnostic, which CaptureProtobufParseDiagnostics routes here).
#ifndef TUNEFORGE_SERVICES_METADATA_REQUEST_LIMITS_H_
#define TUNEFORGE_SERVICES_METADATA_REQUEST_LIMITS_H_

#include <grpcpp/support/server_interceptor.h>

#include <cstddef>

namespace tuneforge {

// The largest request of every method but Admin/ImportDatabase, and the largest message of a streamed request
// (--max-request-bytes).
inline constexpr size_t kDefaultMaxRequestBytes = size_t{4} << 20;
// The only method allowed requests above the small limit, up to the document limit (--max-document-bytes).
inline constexpr char kLargeRequestMethod[] = "/tuneforge.v1.Admin/ImportDatabase";

struct RequestLimits {
  size_t max_request_bytes = kDefaultMaxRequestBytes;
  // The largest ImportDatabase request: the document limit plus room for the message framing.
  size_t max_large_request_bytes = 0;
};

class RequestLimitInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RequestLimitInterceptorFactory(RequestLimits limits);
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;

 private:
  RequestLimits limits_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_REQUEST_LIMITS_H_
