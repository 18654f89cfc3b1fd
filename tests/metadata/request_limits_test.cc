// End-to-end tests of what the server answers before any handler runs: requests over the per-method limit
// (RESOURCE_EXHAUSTED naming the method, the limit and the flag), and requests gRPC cannot parse (INVALID_ARGUMENT
// saying why, never INTERNAL with an empty message).
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <sstream>
#include <string>

#include "common/grpc_status.h"
#include "common/log_escaping.h"
#include "services/metadata/admin_service.h"
#include "services/metadata/request_limits.h"
#include "tests/metadata/support/metadata_test_env.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/support/status_matchers.h"

namespace tuneforge::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// Sends raw bytes as the request of `method` and returns the status.
absl::Status CallWithBytes(const MetadataTestEnv& env, const std::string& method, const std::string& bytes) {
  grpc::GenericStub stub(env.channel());
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  std::promise<grpc::Status> done;
  auto context = Context();
  stub.UnaryCall(context.get(), method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status status) { done.set_value(std::move(status)); });
  return FromGrpcStatus(done.get_future().get());
}

// A length-delimited protobuf field: tag (field, wire type 2), varint length, bytes.
std::string LengthDelimited(int field, const std::string& bytes) {
  std::string out(1, static_cast<char>(field << 3 | 2));
  for (size_t n = bytes.size();; n >>= 7) {
    if (n < 0x80) {
      out.push_back(static_cast<char>(n));
      break;
    }
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  return out + bytes;
}

class RequestLimitsTest : public ::testing::Test {
 protected:
  MetadataTestEnv env_;
};

TEST_F(RequestLimitsTest, ARequestOverTheSmallLimitIsResourceExhausted) {
  v1::GetModelRequest request;
  request.set_model(std::string(kDefaultMaxRequestBytes + 1000, 'a'));
  v1::GetModelResponse response;
  EXPECT_THAT(FromGrpcStatus(env_.models()->GetModel(Context().get(), request, &response)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("/tuneforge.v1.Models/GetModel accepts at most 4194304 bytes"),
                             HasSubstr("--max-request-bytes"), HasSubstr("the request is 4195309 bytes"))));
  // Just under the limit, the handler answers.
  request.set_model(std::string(size_t{1} << 20, 'a'));
  EXPECT_THAT(FromGrpcStatus(env_.models()->GetModel(Context().get(), request, &response)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model")));
}

TEST_F(RequestLimitsTest, OnlyImportDatabaseTakesLargeRequests) {
  const std::string padding(size_t{5} << 20, ' ');
  // Unknown fields count too: a large ExportDatabase request is refused before the export runs.
  EXPECT_THAT(CallWithBytes(env_, "/tuneforge.v1.Admin/ExportDatabase", LengthDelimited(15, padding)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("/tuneforge.v1.Admin/ExportDatabase accepts at most 4194304 bytes")));
  v1::ImportDatabaseRequest import;
  import.set_document(padding);
  v1::ImportDatabaseResponse imported;
  EXPECT_THAT(FromGrpcStatus(env_.admin()->ImportDatabase(Context().get(), import, &imported)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("document is not JSON")));
}

TEST_F(RequestLimitsTest, GarbageBytesAreInvalidArgument) {
  EXPECT_THAT(CallWithBytes(env_, "/tuneforge.v1.Models/AddModel", std::string("\xff\xff\xff\xff\x0f garbage", 13)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("the request (tuneforge.v1.AddModelRequest) cannot be read"),
                             HasSubstr("not a well-formed protobuf message"))));
}

TEST_F(RequestLimitsTest, InvalidUtf8InAStringFieldIsInvalidArgumentNamingTheField) {
  EXPECT_THAT(CallWithBytes(env_, "/tuneforge.v1.Models/AddModel", LengthDelimited(1, "bad\xff\xfe")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("field name (tuneforge.v1.AddModelRequest.name) is not valid UTF-8"))));
  // In a nested message: the field's own message names it.
  const std::string source = LengthDelimited(3, "tok\r\n\xff");
  EXPECT_THAT(CallWithBytes(env_, "/tuneforge.v1.Models/AddModel", LengthDelimited(3, source)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("field token (tuneforge.v1.HuggingFaceModelSource.token) is not valid UTF-8")));
}

TEST_F(RequestLimitsTest, AStructNestedPastProtobufsLimitIsInvalidArgument) {
  v1::AddConfigRequest request;
  request.set_type(v1::CONFIG_TYPE_LORA);
  google::protobuf::Value* value = &(*request.mutable_content()->mutable_fields())["r"];
  for (int i = 0; i < 100; ++i) value = value->mutable_list_value()->add_values();
  value->set_number_value(8);
  v1::AddConfigResponse response;
  EXPECT_THAT(FromGrpcStatus(env_.configs()->AddConfig(Context().get(), request, &response)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("tuneforge.v1.AddConfigRequest) cannot be read"),
                             HasSubstr("deeper than protobuf's limit of 100"), Not(HasSubstr("INTERNAL")))));
}

TEST_F(RequestLimitsTest, ConfigContentNestedPastItsLimitIsInvalidArgument) {
  v1::AddConfigRequest request;
  request.set_type(v1::CONFIG_TYPE_LORA);
  google::protobuf::Value* value = &(*request.mutable_content()->mutable_fields())["target_modules"];
  for (int i = 0; i < 20; ++i) value = value->mutable_list_value()->add_values();
  value->set_string_value("q_proj");
  v1::AddConfigResponse response;
  EXPECT_THAT(FromGrpcStatus(env_.configs()->AddConfig(Context().get(), request, &response)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("content nests arrays and objects deeper than 8 levels (the limit is 8)")));
}

TEST_F(RequestLimitsTest, ARequestFieldCannotForgeALogLine) {
  auto previous = spdlog::default_logger();
  std::ostringstream out;
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(out)));
  EscapeControlCharactersInLogs();
  v1::GetModelRequest request;
  request.set_model("x\nrpc /tuneforge.v1.Admin/ExportDatabase code=OK ms=1.0");
  v1::GetModelResponse response;
  const grpc::Status status = env_.models()->GetModel(Context().get(), request, &response);
  spdlog::set_default_logger(previous);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_THAT(text, HasSubstr("rpc /tuneforge.v1.Models/GetModel code=INVALID_ARGUMENT"));
  EXPECT_THAT(text, HasSubstr("x\\nrpc /tuneforge.v1.Admin/ExportDatabase code=OK"));
}

}  // namespace
}  // namespace tuneforge::testing
