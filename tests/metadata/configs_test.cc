// Configs end to end: the real server over loopback gRPC and a real PostgreSQL (with the seeded defaults).
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "services/metadata/config_schema.h"
#include "services/metadata/request_checks.h"
#include "tests/metadata/support/metadata_test_env.h"
#include "tests/support/status_matchers.h"

namespace tuneforge::testing {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using Json = nlohmann::json;

constexpr int kFamilies = 5;
constexpr int kDefaults = kFamilies * 4;

google::protobuf::Struct StructOf(const std::string& json_text) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json_text, &s).ok()) << json_text;
  return s;
}

Json JsonOf(const google::protobuf::Struct& s) {
  std::string text;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(s, &text).ok());
  return Json::parse(text);
}

MATCHER_P2(GrpcIs, code, message_matcher, "") {
  *result_listener << "status is " << arg.error_code() << ": " << arg.error_message();
  return arg.error_code() == code &&
         ::testing::ExplainMatchResult(message_matcher, arg.error_message(), result_listener);
}

class ConfigsTest : public ::testing::Test {
 protected:
  grpc::Status Add(v1::ConfigType type, const std::string& content, const std::string& name = "",
                   v1::AddConfigResponse* response = nullptr, const std::string& description = "") {
    v1::AddConfigRequest request;
    request.set_type(type);
    request.set_name(name);
    request.set_description(description);
    *request.mutable_content() = StructOf(content);
    v1::AddConfigResponse local;
    return env_.configs()->AddConfig(Context().get(), request, response != nullptr ? response : &local);
  }
  grpc::Status Get(const std::string& ref, v1::Config* out = nullptr) {
    v1::GetConfigRequest request;
    request.set_config(ref);
    v1::GetConfigResponse response;
    grpc::Status s = env_.configs()->GetConfig(Context().get(), request, &response);
    if (out != nullptr) *out = response.config();
    return s;
  }
  grpc::Status List(const v1::ListConfigsRequest& request, v1::ListConfigsResponse* response) {
    return env_.configs()->ListConfigs(Context().get(), request, response);
  }
  // Every config the filters select, following next_page_token.
  std::vector<v1::Config> ListAll(v1::ListConfigsRequest request, int page_size) {
    std::vector<v1::Config> out;
    request.set_page_size(page_size);
    for (int pages = 0; pages < 100; ++pages) {
      v1::ListConfigsResponse response;
      grpc::Status s = List(request, &response);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      EXPECT_LE(response.configs_size(), page_size);
      for (const auto& c : response.configs()) out.push_back(c);
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return out;
  }
  grpc::Status Remove(const std::string& ref) {
    v1::RemoveConfigRequest request;
    request.set_config(ref);
    v1::RemoveConfigResponse response;
    return env_.configs()->RemoveConfig(Context().get(), request, &response);
  }
  pqxx::row Row(const std::string& sql, const std::string& param) {
    pqxx::connection c(env_.database_url());
    pqxx::work w(c);
    return w.exec_params1(sql, param);
  }

  MetadataTestEnv env_;
};

TEST_F(ConfigsTest, AddStoresValidatedContentAndGetFindsItByIdOrName) {
  v1::AddConfigResponse added;
  ASSERT_THAT(Add(v1::CONFIG_TYPE_LORA,
                  R"({"r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"]})",
                  "my-lora", &added, "small rank"),
              GrpcIs(grpc::OK, ""));
  EXPECT_EQ(added.outcome(), v1::ADD_OUTCOME_CREATED);
  const v1::Config& c = added.config();
  EXPECT_TRUE(IsUuid(c.id())) << c.id();
  EXPECT_EQ(c.name(), "my-lora");
  EXPECT_EQ(c.description(), "small rank");
  EXPECT_EQ(c.type(), v1::CONFIG_TYPE_LORA);
  EXPECT_EQ(JsonOf(c.content()),
            Json::parse(R"({"r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"]})"));
  EXPECT_EQ(c.family(), "");
  EXPECT_FALSE(c.is_default());
  EXPECT_GT(c.create_time().seconds(), 1600000000);
  ASSERT_EQ(c.fingerprint().size(), 64u);

  // The fingerprint is the database's config_fingerprint over the stored jsonb, as for the seeded defaults.
  pqxx::row row = Row("SELECT name, family, is_default, content::text AS content, fingerprint, "
                      "config_fingerprint(type, content) AS expected FROM configs WHERE id = $1::uuid",
                      c.id());
  EXPECT_EQ(row["fingerprint"].as<std::string>(), c.fingerprint());
  EXPECT_EQ(row["expected"].as<std::string>(), c.fingerprint());
  EXPECT_EQ(row["family"].as<std::string>(), "");
  EXPECT_FALSE(row["is_default"].as<bool>());
  EXPECT_EQ(row["content"].as<std::string>(),
            R"({"r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"]})");

  v1::Config by_id, by_name;
  ASSERT_THAT(Get(c.id(), &by_id), GrpcIs(grpc::OK, ""));
  ASSERT_THAT(Get("my-lora", &by_name), GrpcIs(grpc::OK, ""));
  EXPECT_TRUE(MessageDifferencer::Equals(by_id, c)) << by_id.DebugString();
  EXPECT_TRUE(MessageDifferencer::Equals(by_name, c)) << by_name.DebugString();
}

TEST_F(ConfigsTest, IdenticalContentOfTheSameTypeReturnsTheExistingConfig) {
  v1::AddConfigResponse first, again, reordered, other_type, other_content;
  ASSERT_THAT(Add(v1::CONFIG_TYPE_GENERATION, R"({"seed": 7, "temperature": 0.5})", "", &first), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(first.outcome(), v1::ADD_OUTCOME_CREATED);
  EXPECT_EQ(first.config().name(), "");

  // Key order and 7 vs 7.0 do not matter: Struct numbers are doubles and the content is canonical.
  ASSERT_THAT(Add(v1::CONFIG_TYPE_GENERATION, R"({"temperature": 0.5, "seed": 7.0})", "", &reordered),
              GrpcIs(grpc::OK, ""));
  EXPECT_EQ(reordered.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(reordered.config().id(), first.config().id());

  // A name does not make identical content a new config: the existing one comes back.
  ASSERT_THAT(Add(v1::CONFIG_TYPE_GENERATION, R"({"seed": 7, "temperature": 0.5})", "named-later", &again),
              GrpcIs(grpc::OK, ""));
  EXPECT_EQ(again.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(again.config().id(), first.config().id());
  EXPECT_EQ(again.config().fingerprint(), first.config().fingerprint());
  // ... and the response says the name asked for was not used.
  EXPECT_EQ(again.config().name(), "");
  EXPECT_EQ(again.ignored_name(), "named-later");
  EXPECT_EQ(reordered.ignored_name(), "");

  // The same document as another type is another config with another fingerprint.
  ASSERT_THAT(Add(v1::CONFIG_TYPE_TRAINING, R"({"seed": 7})", "", &other_type), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(other_type.outcome(), v1::ADD_OUTCOME_CREATED);
  ASSERT_THAT(Add(v1::CONFIG_TYPE_GENERATION, R"({"seed": 7})", "", &other_content), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(other_content.outcome(), v1::ADD_OUTCOME_CREATED);
  EXPECT_NE(other_content.config().fingerprint(), first.config().fingerprint());

  pqxx::row count = Row("SELECT count(*) AS n FROM configs WHERE family = $1", "");
  EXPECT_EQ(count["n"].as<int>(), 3);
}

TEST_F(ConfigsTest, FingerprintMatchesTheSeededDefaultsForTheSameContent) {
  // AddConfig computes the fingerprint in SQL exactly as V002 did, so the same document gets the same
  // fingerprint as the default (it is still a separate user config: defaults belong to a family).
  for (const char* name : {"gemma-generation-default", "phi3-lora-default", "qwen2-quantization-default"}) {
    SCOPED_TRACE(name);
    v1::Config def;
    ASSERT_THAT(Get(name, &def), GrpcIs(grpc::OK, ""));
    std::string content;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(def.content(), &content).ok());
    v1::AddConfigResponse added;
    ASSERT_THAT(Add(def.type(), content, "", &added), GrpcIs(grpc::OK, ""));
    EXPECT_EQ(added.outcome(), v1::ADD_OUTCOME_CREATED);
    EXPECT_NE(added.config().id(), def.id());
    EXPECT_EQ(added.config().fingerprint(), def.fingerprint());
    EXPECT_FALSE(added.config().is_default());
  }
}

TEST_F(ConfigsTest, SameNameWithOtherContentIsAlreadyExists) {
  v1::AddConfigResponse first, same;
  ASSERT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 4})", "team-lora", &first), GrpcIs(grpc::OK, ""));
  ASSERT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 4})", "team-lora", &same), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(same.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(same.config().id(), first.config().id());
  EXPECT_EQ(same.ignored_name(), "");
  // The same content under another name: the existing config, which keeps its own name, and the ignored one.
  v1::AddConfigResponse renamed;
  ASSERT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 4})", "my-lora", &renamed), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(renamed.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(renamed.config().name(), "team-lora");
  EXPECT_EQ(renamed.ignored_name(), "my-lora");
  EXPECT_THAT(Get("my-lora"), GrpcIs(grpc::NOT_FOUND, HasSubstr("config 'my-lora' not found")));

  EXPECT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 8})", "team-lora"),
              GrpcIs(grpc::ALREADY_EXISTS, AllOf(HasSubstr("config 'team-lora' already exists"),
                                                 HasSubstr(first.config().id()), HasSubstr("choose another name"))));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_TRAINING, R"({"seed": 1})", "team-lora"),
              GrpcIs(grpc::ALREADY_EXISTS, HasSubstr("as a lora config with different content")));
  // The defaults' names are taken too.
  EXPECT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 2})", "llama-lora-default"),
              GrpcIs(grpc::ALREADY_EXISTS, HasSubstr("config 'llama-lora-default' already exists")));
  pqxx::row row = Row("SELECT content::text AS content FROM configs WHERE name = $1", "team-lora");
  EXPECT_EQ(row["content"].as<std::string>(), R"({"r": 4})");
}

TEST_F(ConfigsTest, TypeIsRequiredAndUnknownValuesAreNamed) {
  EXPECT_THAT(Add(v1::CONFIG_TYPE_UNSPECIFIED, R"({"r": 4})"),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("type is required: one of lora, training, generation, quantization")));
  EXPECT_THAT(Add(static_cast<v1::ConfigType>(17), R"({"r": 4})"),
              GrpcIs(grpc::INVALID_ARGUMENT,
                     AllOf(HasSubstr("type 17 is not a config type"), HasSubstr("lora, training, generation, quantization"))));
  v1::ListConfigsRequest request;
  request.set_type(static_cast<v1::ConfigType>(-3));
  v1::ListConfigsResponse response;
  EXPECT_THAT(List(request, &response), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("type -3 is not a config type")));
}

TEST_F(ConfigsTest, ContentIsValidatedAgainstTheTypesSchema) {
  EXPECT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 16.5})"),
              GrpcIs(grpc::INVALID_ARGUMENT,
                     AllOf(HasSubstr("content.r = 16.5 is not an integer"), HasSubstr("[1, 1024]"))));
  v1::AddConfigResponse whole;
  ASSERT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 16.0})", "", &whole), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(whole.config().content().fields().at("r").number_value(), 16);
  EXPECT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"foo": 1})"),
              GrpcIs(grpc::INVALID_ARGUMENT,
                     HasSubstr("content.foo: unknown key for a lora config; known keys: r, lora_alpha, lora_dropout, "
                               "target_modules, use_rslora, bias")));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_TRAINING, R"({"learning_rate": 2})"),
              GrpcIs(grpc::INVALID_ARGUMENT, AllOf(HasSubstr("content.learning_rate = 2"), HasSubstr("(0, 1]"))));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_TRAINING, R"({"warmup_steps": 100, "warmup_ratio": 0.1})"),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("warmup_steps and content.warmup_ratio are both set")));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_TRAINING, R"({"activation_offload": true})"),
              GrpcIs(grpc::INVALID_ARGUMENT,
                     HasSubstr("content.activation_offload moves the inputs of checkpointed layers to host memory; it "
                               "needs content.gradient_checkpointing: true")));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_QUANTIZATION, R"({"method": "none", "quant_type": "nf4"})"),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("content.quant_type applies only with method \"bnb_4bit\"")));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_GENERATION, R"({"stop": []})"),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("content.stop has 0 entries")));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_GENERATION, "{}"),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("content is empty; a generation config needs at least one of")));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"target_modules": null})"),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("content.target_modules is null; expected a non-empty list")));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_GENERATION, "{\"stop\": [\"" + std::string(70000, 'x') + "\"]}"),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("content is 70013 bytes as JSON; the limit is 65536")));

  // A NaN cannot be written as JSON: the request is refused, not stored.
  v1::AddConfigRequest request;
  request.set_type(v1::CONFIG_TYPE_LORA);
  (*request.mutable_content()->mutable_fields())["lora_alpha"].set_number_value(std::nan(""));
  v1::AddConfigResponse response;
  EXPECT_THAT(env_.configs()->AddConfig(Context().get(), request, &response),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("content.lora_alpha is NaN or infinite")));
  // Not even where a string is accepted (the JSON printer would have written "Infinity").
  request.set_type(v1::CONFIG_TYPE_GENERATION);
  request.mutable_content()->clear_fields();
  auto* stop = (*request.mutable_content()->mutable_fields())["stop"].mutable_list_value();
  stop->add_values()->set_string_value("ok");
  stop->add_values()->set_number_value(std::numeric_limits<double>::infinity());
  EXPECT_THAT(env_.configs()->AddConfig(Context().get(), request, &response),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("content.stop[1] is NaN or infinite")));
  pqxx::row count = Row("SELECT count(*) AS n FROM configs WHERE family = $1", "");
  EXPECT_EQ(count["n"].as<int>(), 1);
}

TEST_F(ConfigsTest, BadNamesAndDescriptionsNameTheField) {
  EXPECT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 4})", "bad name!"),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("name 'bad name!' contains a character that is not allowed")));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 4})", std::string(129, 'a')),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("name is 129 characters long; use at most 128")));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 4})", "0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10"),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("looks like an id")));
  EXPECT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 4})", "ok-name", nullptr, std::string(4097, 'd')),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("description is 4097 bytes long")));
}

TEST_F(ConfigsTest, SqlMetacharactersAreStoredVerbatim) {
  const std::string description = "'; DROP TABLE configs; -- \"quoted\" \\ $1";
  const std::string content = R"({"stop": ["'); DELETE FROM configs; --", "\"end\"", "\\n$$"]})";
  v1::AddConfigResponse added;
  ASSERT_THAT(Add(v1::CONFIG_TYPE_GENERATION, content, "sql-chars", &added, description), GrpcIs(grpc::OK, ""));
  v1::Config got;
  ASSERT_THAT(Get("sql-chars", &got), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(got.description(), description);
  EXPECT_EQ(JsonOf(got.content()), Json::parse(content));
  v1::ListConfigsResponse all;
  v1::ListConfigsRequest request;
  request.set_page_size(1000);
  ASSERT_THAT(List(request, &all), GrpcIs(grpc::OK, ""));
  EXPECT_THAT(all.configs(), SizeIs(kDefaults + 1));
}

TEST_F(ConfigsTest, GetSaysWhatWasNotFoundAndHowToList) {
  EXPECT_THAT(Get(""), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("config is required")));
  EXPECT_THAT(Get("no-such-config"),
              GrpcIs(grpc::NOT_FOUND, AllOf(HasSubstr("config 'no-such-config' not found"), HasSubstr("ListConfigs"))));
  EXPECT_THAT(Get("0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10"),
              GrpcIs(grpc::NOT_FOUND, HasSubstr("config '0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10' not found")));
  EXPECT_THAT(Get("bad/../name!"), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("config takes an id or a name")));
}

TEST_F(ConfigsTest, EverySeededDefaultPassesItsSchema) {
  v1::ListConfigsRequest request;
  std::vector<v1::Config> all = ListAll(request, 1000);
  std::map<std::string, int> per_family;
  std::set<std::pair<std::string, int>> family_types;
  for (const v1::Config& c : all) {
    if (!c.is_default()) continue;
    SCOPED_TRACE(c.name());
    ++per_family[c.family()];
    family_types.insert({c.family(), c.type()});
    EXPECT_EQ(c.name(), c.family() + "-" + ConfigTypeNames()[c.type() - 1] + "-default");
    absl::StatusOr<Json> valid = ValidateConfigContent(ConfigTypeNames()[c.type() - 1], JsonOf(c.content()));
    EXPECT_THAT(valid, IsOk());
  }
  EXPECT_EQ(per_family, (std::map<std::string, int>{{"gemma", 4}, {"llama", 4}, {"mistral", 4}, {"phi3", 4}, {"qwen2", 4}}));
  EXPECT_THAT(family_types, SizeIs(kDefaults));
}

TEST_F(ConfigsTest, ListPagesInCreationOrderWithFilters) {
  std::vector<std::string> added_ids;
  for (int r = 1; r <= 5; ++r) {
    v1::AddConfigResponse added;
    ASSERT_THAT(Add(v1::CONFIG_TYPE_LORA, "{\"r\": " + std::to_string(r) + "}", "", &added), GrpcIs(grpc::OK, ""));
    added_ids.push_back(added.config().id());
  }
  v1::ListConfigsRequest request;
  std::vector<v1::Config> paged = ListAll(request, 3);
  ASSERT_THAT(paged, SizeIs(kDefaults + 5));
  std::set<std::string> ids;
  for (size_t i = 0; i < paged.size(); ++i) {
    ids.insert(paged[i].id());
    if (i > 0) {
      const auto& a = paged[i - 1].create_time();
      const auto& b = paged[i].create_time();
      const bool ordered = a.seconds() < b.seconds() || (a.seconds() == b.seconds() && a.nanos() < b.nanos()) ||
                           (a.seconds() == b.seconds() && a.nanos() == b.nanos() && paged[i - 1].id() < paged[i].id());
      EXPECT_TRUE(ordered) << i;
    }
  }
  EXPECT_THAT(ids, SizeIs(kDefaults + 5));
  // User configs come after the seeded defaults, in the order they were added.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(paged[kDefaults + i].id(), added_ids[i]);

  request.set_type(v1::CONFIG_TYPE_LORA);
  EXPECT_THAT(ListAll(request, 2), SizeIs(kFamilies + 5));
  request.set_family("gemma");
  std::vector<v1::Config> gemma_lora = ListAll(request, 2);
  ASSERT_THAT(gemma_lora, SizeIs(1));
  EXPECT_EQ(gemma_lora[0].name(), "gemma-lora-default");

  v1::ListConfigsRequest bad;
  bad.set_family("bert");
  v1::ListConfigsResponse response;
  EXPECT_THAT(List(bad, &response), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("family 'bert' is not one of llama")));
  bad = {};
  bad.set_page_size(-1);
  EXPECT_THAT(List(bad, &response), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("page_size -1 is out of range")));
  bad = {};
  bad.set_page_token("not-a-token");
  EXPECT_THAT(List(bad, &response), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("page_token is not a token")));
  bad = {};
  bad.set_page_token(MakePageToken("configs", "garbage"));
  EXPECT_THAT(List(bad, &response), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("page_token is damaged")));
  bad = {};
  bad.set_page_token(MakePageToken("models", "x"));
  EXPECT_THAT(List(bad, &response), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("page_token is not a token")));
}

TEST_F(ConfigsTest, ListWithAModelReturnsTheDefaultsOfItsFamily) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const v1::Model model = env_.AddReferenceModel("phi3", "tiny-phi3");
  ASSERT_THAT(Add(v1::CONFIG_TYPE_LORA, R"({"r": 4})"), GrpcIs(grpc::OK, ""));
  for (const std::string& ref : {std::string("tiny-phi3"), model.id()}) {
    SCOPED_TRACE(ref);
    v1::ListConfigsRequest request;
    request.set_model(ref);
    std::vector<v1::Config> defaults = ListAll(request, 3);
    ASSERT_THAT(defaults, SizeIs(4));
    std::set<int> types;
    for (const v1::Config& c : defaults) {
      EXPECT_TRUE(c.is_default());
      EXPECT_EQ(c.family(), "phi3");
      types.insert(c.type());
    }
    EXPECT_EQ(types, (std::set<int>{1, 2, 3, 4}));
    request.set_type(v1::CONFIG_TYPE_LORA);
    std::vector<v1::Config> lora = ListAll(request, 3);
    ASSERT_THAT(lora, SizeIs(1));
    EXPECT_EQ(lora[0].name(), "phi3-lora-default");
    EXPECT_EQ(JsonOf(lora[0].content())["target_modules"],
              Json::parse(R"(["qkv_proj", "o_proj", "gate_up_proj", "down_proj"])"));
  }
  v1::ListConfigsRequest request;
  request.set_model("tiny-phi3");
  request.set_family("llama");
  EXPECT_THAT(ListAll(request, 10), SizeIs(0));

  v1::ListConfigsResponse response;
  request = {};
  request.set_model("no-such-model");
  EXPECT_THAT(List(request, &response),
              GrpcIs(grpc::NOT_FOUND, AllOf(HasSubstr("model 'no-such-model' not found"), HasSubstr("ListModels"))));
  request.set_model("bad model");
  EXPECT_THAT(List(request, &response), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("model takes an id or a name")));
}

TEST_F(ConfigsTest, RemoveDeletesUserConfigsButNeverDefaults) {
  v1::AddConfigResponse named, unnamed;
  ASSERT_THAT(Add(v1::CONFIG_TYPE_QUANTIZATION, R"({"method": "bnb_8bit"})", "q8", &named), GrpcIs(grpc::OK, ""));
  ASSERT_THAT(Add(v1::CONFIG_TYPE_QUANTIZATION, R"({"method": "bnb_4bit", "quant_type": "nf4"})", "", &unnamed),
              GrpcIs(grpc::OK, ""));
  EXPECT_THAT(Remove("q8"), GrpcIs(grpc::OK, ""));
  EXPECT_THAT(Get("q8"), GrpcIs(grpc::NOT_FOUND, HasSubstr("config 'q8' not found")));
  EXPECT_THAT(Remove("q8"), GrpcIs(grpc::NOT_FOUND, HasSubstr("config 'q8' not found")));
  EXPECT_THAT(Remove(unnamed.config().id()), GrpcIs(grpc::OK, ""));
  EXPECT_THAT(Get(unnamed.config().id()), GrpcIs(grpc::NOT_FOUND, HasSubstr("not found")));

  v1::Config def;
  ASSERT_THAT(Get("mistral-training-default", &def), GrpcIs(grpc::OK, ""));
  for (const std::string& ref : {std::string("mistral-training-default"), def.id()}) {
    EXPECT_THAT(Remove(ref), GrpcIs(grpc::FAILED_PRECONDITION,
                                    AllOf(HasSubstr("'mistral-training-default' is the mistral default training config"),
                                          HasSubstr("per-family defaults cannot be removed"))));
  }
  EXPECT_THAT(Get("mistral-training-default"), GrpcIs(grpc::OK, ""));
  EXPECT_THAT(Remove(""), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("config is required")));
  // Removed content can be added again as a new config.
  v1::AddConfigResponse again;
  ASSERT_THAT(Add(v1::CONFIG_TYPE_QUANTIZATION, R"({"method": "bnb_8bit"})", "q8", &again), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(again.outcome(), v1::ADD_OUTCOME_CREATED);
  EXPECT_NE(again.config().id(), named.config().id());
}

}  // namespace
}  // namespace tuneforge::testing
