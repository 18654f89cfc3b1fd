// TLS and mutual TLS on the metadata service's port, with a CA, server and client certificates made by the openssl
// command in the test: a client that trusts the CA gets answers; plaintext, an unknown CA, and (with
// --tls-client-ca) a missing or foreign client certificate get none. Unusable PEM files stop the start, naming them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc_tls.h"
#include "services/metadata/server.h"
#include "tests/metadata/support/metadata_test_env.h"

namespace tuneforge::testing {
namespace {

using ::testing::HasSubstr;

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("tuneforge-tls");
    const std::string d = dir_->path();
    dir_->WriteFile("san.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script = absl::StrCat("set -e; cd ", d, "; exec 2>openssl.log;");
    for (const char* ca : {"ca", "other-ca"}) {
      absl::StrAppend(&script, "openssl req -x509 ", key, " -keyout ", ca, ".key -out ", ca, ".pem -days 2 -subj /CN=",
                      ca, ";");
    }
    for (const auto& [name, ca] : {std::pair<const char*, const char*>{"server", "ca"}, {"client", "ca"},
                                   {"stranger", "other-ca"}}) {
      absl::StrAppend(&script, "openssl req ", key, " -keyout ", name, ".key -out ", name, ".csr -subj /CN=", name, ";",
                      "openssl x509 -req -in ", name, ".csr -CA ", ca, ".pem -CAkey ", ca, ".key -CAcreateserial -out ",
                      name, ".pem -days 2 -extfile san.ext;");
    }
    ASSERT_EQ(std::system(("bash -c '" + script + "'").c_str()), 0) << "openssl failed; see " << d << "/openssl.log";
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::string File(const std::string& name) { return dir_->path() + "/" + name; }

  static std::unique_ptr<MetadataTestEnv> Server(bool mutual) {
    return std::make_unique<MetadataTestEnv>([mutual](MetadataServerOptions& options) {
      options.tls = {File("server.pem"), File("server.key"), mutual ? File("ca.pem") : ""};
    });
  }

  // ListModels over a channel with `files`; the status says whether the handshake got through.
  static grpc::Status ListModels(const MetadataTestEnv& env, const ClientTlsFiles& files) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = ChannelCredentialsFromFiles(files);
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    const std::string address = absl::StrCat("localhost:", env.address().substr(env.address().rfind(':') + 1));
    auto stub = v1::Models::NewStub(grpc::CreateChannel(address, *credentials));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListModelsResponse response;
    return stub->ListModels(&context, v1::ListModelsRequest(), &response);
  }

  static ScratchDir* dir_;
};

ScratchDir* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, AClientThatTrustsTheCaIsAnsweredAndOthersAreNot) {
  std::unique_ptr<MetadataTestEnv> env = Server(/*mutual=*/false);
  grpc::Status s = ListModels(*env, {File("ca.pem"), "", ""});
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(ListModels(*env, {}).error_code(), grpc::StatusCode::UNAVAILABLE);  // plaintext
  EXPECT_EQ(ListModels(*env, {File("other-ca.pem"), "", ""}).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, MutualTlsNeedsAClientCertificateFromTheClientCa) {
  std::unique_ptr<MetadataTestEnv> env = Server(/*mutual=*/true);
  grpc::Status s = ListModels(*env, {File("ca.pem"), File("client.pem"), File("client.key")});
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(ListModels(*env, {File("ca.pem"), "", ""}).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ListModels(*env, {File("ca.pem"), File("stranger.pem"), File("stranger.key")}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, UnusableFilesAreNamed) {
  MetadataServerOptions options;
  options.tls = {File("missing.pem"), File("server.key"), ""};
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server = ServerCredentialsFromFiles(options.tls, "--tls-");
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("--tls-cert='" + File("missing.pem")));
  options.tls = {File("san.ext"), File("server.key"), ""};
  server = ServerCredentialsFromFiles(options.tls, "--tls-");
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("is not a PEM file"));
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> client =
      ChannelCredentialsFromFiles({File("ca.pem"), File("client.pem"), ""});
  EXPECT_THAT(std::string(client.status().message()), HasSubstr("--cert and --key go together"));
}

}  // namespace
}  // namespace tuneforge::testing
