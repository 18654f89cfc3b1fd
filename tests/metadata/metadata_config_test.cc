// tuneforge-metadata's flags: environment fallbacks, flags overriding them, and refusals that name the value.
#include "services/metadata/metadata_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/status_matchers.h"

namespace tuneforge {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;

class MetadataConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"TUNEFORGE_LISTEN", "TUNEFORGE_PORT", "TUNEFORGE_DATABASE_URL", "TUNEFORGE_HOME",
                          "TUNEFORGE_ALLOWED_ROOTS", "HF_ENDPOINT", "TUNEFORGE_POOL_SIZE", "TUNEFORGE_LOG_LEVEL",
                          "HF_TOKEN", "TUNEFORGE_AUTH", "TUNEFORGE_ADMIN_TOKEN_FILE", "TUNEFORGE_TLS_CERT",
                          "TUNEFORGE_TLS_KEY", "TUNEFORGE_TLS_CLIENT_CA", "TUNEFORGE_MAX_DATASET_ROWS",
                          "TUNEFORGE_MAX_DATASET_BYTES"}) {
      unsetenv(v);
    }
    setenv("HOME", "/home/someone", 1);
  }
  absl::StatusOr<MetadataConfig> Parse(std::vector<std::string> args) {
    args.insert(args.begin(), "tuneforge-metadata");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return ParseMetadataConfig(static_cast<int>(argv.size()), argv.data());
  }
};

TEST_F(MetadataConfigTest, DefaultsDeriveFromHome) {
  auto config = Parse({});
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->listen, "127.0.0.1");
  EXPECT_EQ(config->port, 50051);
  EXPECT_EQ(config->home, "/home/someone/.tuneforge");
  EXPECT_THAT(config->allowed_roots, ElementsAre("/home/someone/.tuneforge/data"));
  EXPECT_TRUE(config->database_url.empty());
  EXPECT_EQ(config->pool_size, 8);
}

TEST_F(MetadataConfigTest, EnvironmentIsTheFallbackAndFlagsWin) {
  setenv("TUNEFORGE_PORT", "6000", 1);
  setenv("TUNEFORGE_DATABASE_URL", "postgresql://db/x", 1);
  setenv("TUNEFORGE_ALLOWED_ROOTS", "/a, /b", 1);
  setenv("HF_TOKEN", "hf_abc", 1);
  auto from_env = Parse({});
  ASSERT_THAT(from_env, IsOk());
  EXPECT_EQ(from_env->port, 6000);
  EXPECT_EQ(from_env->database_url, "postgresql://db/x");
  EXPECT_THAT(from_env->allowed_roots, ElementsAre("/a", "/b"));
  EXPECT_EQ(from_env->hf_token, "hf_abc");
  auto flags = Parse({"--port=7000", "--database-url", "postgresql://other/y", "--home=/srv/tf"});
  ASSERT_THAT(flags, IsOk());
  EXPECT_EQ(flags->port, 7000);
  EXPECT_EQ(flags->database_url, "postgresql://other/y");
  EXPECT_EQ(flags->home, "/srv/tf");
}

TEST_F(MetadataConfigTest, DatasetLimitsHaveDefaultsFlagsAndVariables) {
  auto defaults = Parse({});
  ASSERT_THAT(defaults, IsOk());
  EXPECT_EQ(defaults->dataset_limits.max_rows, 100'000'000);
  EXPECT_EQ(defaults->dataset_limits.max_bytes, int64_t{64} << 30);
  setenv("TUNEFORGE_MAX_DATASET_BYTES", "137438953472", 1);  // 128 GiB: past int32
  auto set = Parse({"--max-dataset-rows=5000"});
  ASSERT_THAT(set, IsOk());
  EXPECT_EQ(set->dataset_limits.max_rows, 5000);
  EXPECT_EQ(set->dataset_limits.max_bytes, int64_t{128} << 30);
  EXPECT_THAT(Parse({"--max-dataset-rows=0"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max-dataset-rows='0'")));
  EXPECT_THAT(Parse({"--max-dataset-bytes=lots"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max-dataset-bytes='lots'")));
}

TEST_F(MetadataConfigTest, BadValuesAreRefusedNamingThem) {
  EXPECT_THAT(Parse({"--port=70000"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--port='70000'")));
  EXPECT_THAT(Parse({"--port=abc"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0 to 65535")));
  EXPECT_THAT(Parse({"--pool-size=0"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--pool-size")));
  EXPECT_THAT(Parse({"--log-level=loud"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("debug, info")));
  EXPECT_THAT(Parse({"--home=relative"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
  EXPECT_THAT(Parse({"--colour=red"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag --colour")));
  EXPECT_THAT(Parse({"--port"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a value")));
  EXPECT_THAT(Parse({"serve"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unexpected argument 'serve'")));
  setenv("TUNEFORGE_PORT", "-1", 1);
  EXPECT_THAT(Parse({}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--port='-1'")));
}

TEST_F(MetadataConfigTest, HelpListsEveryFlagWithItsVariable) {
  auto config = Parse({"--help"});
  ASSERT_THAT(config, IsOk());
  EXPECT_TRUE(config->help);
  const std::string usage = MetadataUsage();
  for (const char* text : {"--database-url [TUNEFORGE_DATABASE_URL]", "--allowed-roots [TUNEFORGE_ALLOWED_ROOTS]",
                           "--port [TUNEFORGE_PORT]", "--listen [TUNEFORGE_LISTEN]", "HF_TOKEN"}) {
    EXPECT_THAT(usage, HasSubstr(text));
  }
}

TEST_F(MetadataConfigTest, MetricsPortAndLogFormatAreOffAndTextUnlessSet) {
  unsetenv("TUNEFORGE_METRICS_PORT");
  unsetenv("TUNEFORGE_LOG_FORMAT");
  auto defaults = Parse({});
  ASSERT_THAT(defaults, IsOk());
  EXPECT_EQ(defaults->metrics_port, -1);
  EXPECT_EQ(defaults->log_format, LogFormat::kText);
  setenv("TUNEFORGE_METRICS_PORT", "9464", 1);
  setenv("TUNEFORGE_LOG_FORMAT", "json", 1);
  auto from_env = Parse({});
  ASSERT_THAT(from_env, IsOk());
  EXPECT_EQ(from_env->metrics_port, 9464);
  EXPECT_EQ(from_env->log_format, LogFormat::kJson);
  auto flags = Parse({"--metrics-port=0", "--log-format", "text"});
  ASSERT_THAT(flags, IsOk());
  EXPECT_EQ(flags->metrics_port, 0);
  EXPECT_EQ(flags->log_format, LogFormat::kText);
  EXPECT_THAT(Parse({"--metrics-port=70000"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--metrics-port='70000' is not a number from 0")));
  EXPECT_THAT(Parse({"--port=9000", "--metrics-port=9000"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--metrics-port=9000 is also the gRPC --port")));
  EXPECT_THAT(Parse({"--log-format=xml"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--log-format='xml' is not one of text, json")));
  unsetenv("TUNEFORGE_METRICS_PORT");
  unsetenv("TUNEFORGE_LOG_FORMAT");
  EXPECT_THAT(MetadataUsage(), HasSubstr("--metrics-port [TUNEFORGE_METRICS_PORT]"));
  EXPECT_THAT(MetadataUsage(), HasSubstr("--log-format [TUNEFORGE_LOG_FORMAT]"));
}

TEST_F(MetadataConfigTest, AuthIsOnByDefaultAndOffOnlyOnLoopback) {
  auto config = Parse({});
  ASSERT_THAT(config.status(), IsOk());
  EXPECT_TRUE(config->auth);
  EXPECT_EQ(config->admin_token_file, "/home/someone/.tuneforge/admin-token");
  config = Parse({"--auth=off"});
  ASSERT_THAT(config.status(), IsOk());
  EXPECT_FALSE(config->auth);
  EXPECT_THAT(Parse({"--auth", "off", "--listen", "::1"}).status(), IsOk());
  EXPECT_THAT(Parse({"--auth=off", "--listen=0.0.0.0"}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("--auth=off"), HasSubstr("0.0.0.0"))));
  EXPECT_THAT(Parse({"--listen=0.0.0.0"}).status(), IsOk());
  EXPECT_THAT(Parse({"--auth=maybe"}).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--auth")));
}

TEST_F(MetadataConfigTest, TlsFlagsComeInPairs) {
  EXPECT_THAT(Parse({"--tls-cert=/c.pem"}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-cert and --tls-key")));
  EXPECT_THAT(Parse({"--tls-client-ca=/ca.pem"}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-client-ca needs")));
  auto config = Parse({"--tls-cert=/c.pem", "--tls-key=/k.pem", "--tls-client-ca=/ca.pem"});
  ASSERT_THAT(config.status(), IsOk());
  EXPECT_EQ(config->tls_client_ca, "/ca.pem");
}

}  // namespace
}  // namespace tuneforge
