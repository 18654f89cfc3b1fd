// Authentication and roles end to end: every method of every service in proto/ is called without a token and with
// a token of each role (a generic call, so a method added later is covered without touching this file), then the
// token lifecycle: the bootstrap admin token, hashes only in the database, revocation, expiry, forged caller keys,
// and --auth=off.
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <google/protobuf/descriptor.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/grpc_status.h"
#include "common/secret_file.h"
#include "common/sha256.h"
#include "services/metadata/server.h"
#include "tests/metadata/support/metadata_test_env.h"
#include "tests/support/status_matchers.h"
#include "tuneforge/v1/tokens.grpc.pb.h"

namespace tuneforge::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

enum class Needs { kViewer, kOperator, kAdmin, kTrainer };

// The rule the API promises: Get/List/Watch/Preview are viewer calls; Admin and token management need admin;
// WorkerQueue needs trainer; everything else (Add, Start, Cancel, Export, Remove, ...) needs operator.
Needs Expected(const std::string& service, const std::string& method) {
  if (service == "tuneforge.internal.v1.WorkerQueue") return Needs::kTrainer;
  if (service == "tuneforge.v1.Admin") return Needs::kAdmin;
  if (service == "tuneforge.v1.Tokens") return method == "GetCaller" ? Needs::kViewer : Needs::kAdmin;
  for (const char* prefix : {"Get", "List", "Watch", "Preview"}) {
    if (absl::StartsWith(method, prefix)) return Needs::kViewer;
  }
  return Needs::kOperator;
}

bool Allows(Needs has, Needs needs) {
  if (has == Needs::kTrainer || needs == Needs::kTrainer) return has == needs;
  return static_cast<int>(has) >= static_cast<int>(needs);
}

struct Method {
  std::string service;
  std::string name;
  std::string path() const { return "/" + service + "/" + name; }
};

// Every method of every service the metadata server serves, from the .proto files in the source tree.
std::vector<Method> AllMethods() {
  std::vector<Method> out;
  const std::filesystem::path root = std::filesystem::path(TUNEFORGE_SOURCE_DIR) / "proto";
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root / "tuneforge")) {
    if (entry.path().extension() != ".proto") continue;
    const std::string name = std::filesystem::relative(entry.path(), root).string();
    const google::protobuf::FileDescriptor* file = google::protobuf::DescriptorPool::generated_pool()->FindFileByName(name);
    if (file == nullptr) {
      ADD_FAILURE() << name << " is not linked into the server";
      continue;
    }
    for (int s = 0; s < file->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* service = file->service(s);
      if (service->full_name() == "tuneforge.internal.v1.Trainer") continue;  // served by tuneforge-trainer
      for (int m = 0; m < service->method_count(); ++m) out.push_back({service->full_name(), service->method(m)->name()});
    }
  }
  return out;
}

// Calls `method` with an empty request (a generic call: the request's type does not matter) and `token`.
grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel, const std::string& method, const std::string& token,
                  const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  grpc::GenericStub stub(channel);
  grpc::Slice slice(std::string{});
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  for (const auto& [key, value] : extra) context.AddMetadata(key, value);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status status) { done.set_value(std::move(status)); });
  return done.get_future().get();
}

std::unique_ptr<grpc::ClientContext> WithToken(const std::string& token) {
  auto context = Context();
  context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

class AuthTest : public ::testing::Test {
 protected:
  AuthTest()
      : env_([](MetadataServerOptions& options) {
          options.auth = true;
          options.admin_token_file = "";  // set below, once the root exists
        }) {}

  // Creates a token with `role` through the API, as the admin.
  std::string Create(const std::string& admin, const std::string& name, v1::Role role, int64_t ttl = 0) {
    v1::CreateTokenRequest request;
    request.set_name(name);
    request.set_role(role);
    request.set_ttl_seconds(ttl);
    v1::CreateTokenResponse response;
    grpc::Status status = tokens()->CreateToken(WithToken(admin).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.secret();
  }

  std::unique_ptr<v1::Tokens::Stub> tokens() { return v1::Tokens::NewStub(env_.channel()); }

  // A second server on the same database with auth on and a bootstrap file: what a real start does.
  std::string BootstrapAdmin() {
    bootstrap_file_ = env_.root() + "/admin-token";
    MetadataServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.database_url = env_.database_url();
    options.allowed_roots = {env_.root()};
    options.artifacts_dir = env_.root() + "/artifacts";
    options.auth = true;
    options.admin_token_file = bootstrap_file_;
    absl::StatusOr<std::unique_ptr<MetadataServer>> server = MetadataServer::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    absl::StatusOr<std::string> secret = ReadSecretFile(bootstrap_file_);  // refuses a file others can read
    EXPECT_TRUE(secret.ok()) << secret.status();
    return secret.value_or("");
  }

  MetadataTestEnv env_;
  std::string bootstrap_file_;
};

TEST_F(AuthTest, EveryMethodNeedsATokenAndTheRoleTheApiPromises) {
  const std::string admin = BootstrapAdmin();
  const std::map<Needs, std::string> tokens = {
      {Needs::kViewer, Create(admin, "a-viewer", v1::ROLE_VIEWER)},
      {Needs::kOperator, Create(admin, "an-operator", v1::ROLE_OPERATOR)},
      {Needs::kAdmin, admin},
      {Needs::kTrainer, Create(admin, "a-trainer", v1::ROLE_TRAINER)}};
  const std::map<Needs, std::string> names = {
      {Needs::kViewer, "viewer"}, {Needs::kOperator, "operator"}, {Needs::kAdmin, "admin"}, {Needs::kTrainer, "trainer"}};
  const std::vector<Method> methods = AllMethods();
  ASSERT_GE(methods.size(), 40u);
  for (const Method& m : methods) {
    SCOPED_TRACE(m.path());
    const Needs needs = Expected(m.service, m.name);
    grpc::Status none = Call(env_.channel(), m.path(), "");
    EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED) << none.error_message();
    EXPECT_THAT(none.error_message(), HasSubstr("Bearer"));
    grpc::Status bad = Call(env_.channel(), m.path(), "tft_not-a-token");
    EXPECT_EQ(bad.error_code(), grpc::StatusCode::UNAUTHENTICATED) << bad.error_message();
    for (const auto& [role, token] : tokens) {
      SCOPED_TRACE(names.at(role));
      grpc::Status s = Call(env_.channel(), m.path(), token);
      const bool allowed = Allows(role, needs) || (m.name == "GetCaller" && role == Needs::kTrainer);
      if (allowed) {
        EXPECT_NE(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
        EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
      } else {
        EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
        EXPECT_THAT(s.error_message(), AllOf(HasSubstr(m.service + "/" + m.name), HasSubstr("needs the " + names.at(needs) + " role")));
      }
    }
  }
}

TEST_F(AuthTest, TheBootstrapTokenIsWrittenOnceAndOnlyHashesAreStored) {
  const std::string admin = BootstrapAdmin();
  struct stat st;
  ASSERT_EQ(::stat(bootstrap_file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(absl::StartsWith(admin, "tft_"));
  // Another start finds an admin token and leaves the file alone.
  EXPECT_EQ(BootstrapAdmin(), admin);

  const std::string viewer = Create(admin, "ci", v1::ROLE_VIEWER);
  pqxx::connection db(env_.database_url());
  pqxx::work tx(db);
  const pqxx::result rows = tx.exec("SELECT * FROM api_tokens");
  ASSERT_EQ(rows.size(), 2u);
  std::vector<std::string> hashes;
  for (const auto& row : rows) {
    for (const auto& field : row) {
      const std::string text = field.is_null() ? "" : field.c_str();
      EXPECT_THAT(text, AllOf(Not(HasSubstr(admin.substr(4))), Not(HasSubstr(viewer.substr(4)))));
    }
    hashes.push_back(row["secret_sha256"].c_str());
  }
  EXPECT_THAT(hashes, ::testing::UnorderedElementsAre(Sha256Hex(admin), Sha256Hex(viewer)));

  // The secret is shown once: listing shows names, roles and prefixes only.
  v1::ListTokensResponse listed;
  ASSERT_TRUE(tokens()->ListTokens(WithToken(admin).get(), v1::ListTokensRequest(), &listed).ok());
  ASSERT_EQ(listed.tokens_size(), 2);
  EXPECT_EQ(listed.tokens(0).name(), "ci");
  EXPECT_EQ(listed.tokens(0).role(), v1::ROLE_VIEWER);
  EXPECT_EQ(listed.tokens(0).created_by(), "admin");
  EXPECT_EQ(listed.tokens(0).prefix(), viewer.substr(0, 10));
  EXPECT_THAT(listed.DebugString(), AllOf(Not(HasSubstr(viewer.substr(10))), Not(HasSubstr(admin.substr(10)))));
}

TEST_F(AuthTest, RevokedAndExpiredTokensAreRefusedAtOnce) {
  const std::string admin = BootstrapAdmin();
  const std::string viewer = Create(admin, "soon-gone", v1::ROLE_VIEWER);
  v1::GetCallerResponse caller;
  ASSERT_TRUE(tokens()->GetCaller(WithToken(viewer).get(), v1::GetCallerRequest(), &caller).ok());
  EXPECT_EQ(caller.token_name(), "soon-gone");
  EXPECT_EQ(caller.role(), v1::ROLE_VIEWER);
  EXPECT_TRUE(caller.auth_enabled());

  v1::RevokeTokenRequest revoke;
  revoke.set_token("soon-gone");
  v1::RevokeTokenResponse revoked;
  ASSERT_TRUE(tokens()->RevokeToken(WithToken(admin).get(), revoke, &revoked).ok());
  EXPECT_TRUE(revoked.token().has_revoke_time());
  grpc::Status s = tokens()->GetCaller(WithToken(viewer).get(), v1::GetCallerRequest(), &caller);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), AllOf(HasSubstr("revoked"), Not(HasSubstr(viewer))));
  revoke.set_token("no-such-token");
  EXPECT_EQ(tokens()->RevokeToken(WithToken(admin).get(), revoke, &revoked).error_code(), grpc::StatusCode::NOT_FOUND);

  const std::string expiring = Create(admin, "expiring", v1::ROLE_OPERATOR, 3600);
  {
    pqxx::connection db(env_.database_url());
    pqxx::work tx(db);
    tx.exec("UPDATE api_tokens SET expire_time = now() - interval '1 second' WHERE name = 'expiring'");
    tx.commit();
  }
  EXPECT_EQ(tokens()->GetCaller(WithToken(expiring).get(), v1::GetCallerRequest(), &caller).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthTest, TokenRequestsAreCheckedAsOtherRequestsAre) {
  const std::string admin = BootstrapAdmin();
  v1::CreateTokenRequest request;
  v1::CreateTokenResponse response;
  request.set_name("Not A Name!");
  request.set_role(v1::ROLE_VIEWER);
  grpc::Status s = tokens()->CreateToken(WithToken(admin).get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("name"));
  request.set_name("fine");
  request.set_role(v1::ROLE_UNSPECIFIED);
  s = tokens()->CreateToken(WithToken(admin).get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("role is required"));
  request.set_role(v1::ROLE_VIEWER);
  request.set_ttl_seconds(5);
  s = tokens()->CreateToken(WithToken(admin).get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("ttl_seconds"));
  request.set_ttl_seconds(0);
  ASSERT_TRUE(tokens()->CreateToken(WithToken(admin).get(), request, &response).ok());
  s = tokens()->CreateToken(WithToken(admin).get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("'fine'"));
}

TEST_F(AuthTest, ACallerCannotForgeTheKeysTheServerSetsForItself) {
  const std::string admin = BootstrapAdmin();
  const std::string viewer = Create(admin, "viewer", v1::ROLE_VIEWER);
  const std::vector<std::pair<std::string, std::string>> forged = {{"x-tuneforge-caller-role", "admin"},
                                                                  {"x-tuneforge-caller-token-name", "admin"}};
  EXPECT_EQ(Call(env_.channel(), "/tuneforge.v1.Admin/ExportDatabase", "", forged).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Call(env_.channel(), "/tuneforge.v1.Admin/ExportDatabase", viewer, forged).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST(AuthOffTest, CallsWithoutATokenActAsAdminButTrainersStillNeedTheirs) {
  MetadataTestEnv env;  // auth off, as the other tests run
  v1::ExportDatabaseResponse exported;
  EXPECT_TRUE(env.admin()->ExportDatabase(Context().get(), v1::ExportDatabaseRequest(), &exported).ok());
  v1::GetCallerResponse caller;
  ASSERT_TRUE(v1::Tokens::NewStub(env.channel())->GetCaller(Context().get(), v1::GetCallerRequest(), &caller).ok());
  EXPECT_EQ(caller.role(), v1::ROLE_ADMIN);
  EXPECT_FALSE(caller.auth_enabled());
  EXPECT_EQ(Call(env.channel(), "/tuneforge.internal.v1.WorkerQueue/LeaseJob", "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // The worker-token file's secret is a trainer, and only that.
  EXPECT_EQ(Call(env.channel(), "/tuneforge.v1.Admin/ExportDatabase", kTestWorkerToken).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A token that is sent is checked even with auth off.
  EXPECT_EQ(Call(env.channel(), "/tuneforge.v1.Models/ListModels", "tft_wrong").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace tuneforge::testing
