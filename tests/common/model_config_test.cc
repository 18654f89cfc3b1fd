// Tests of config.json parsing: every reference checkpoint's tensors are exactly what the config
// predicts (the cases generated at test time, and the fixed transformers 4.44 ones when ../shared is there), and bad
// configs fail naming the key.
#include "common/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common/safetensors_header.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::GeneratedReference;
using ::tuneforge::testing::SharedTestdata;
using ::tuneforge::testing::StatusIs;
using Json = nlohmann::json;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A case generated at test time: config.json as transformers 5 writes it.
std::string CaseDir(const std::string& name) { return GeneratedReference() + "/" + name; }

Json CaseConfig(const std::string& name) { return Json::parse(ReadText(CaseDir(name) + "/config.json")); }

absl::StatusOr<ModelArchitecture> Parse(const Json& config, const std::string& generation = "") {
  return ParseModelConfig(config.dump(), generation, "config.json");
}

struct ReferenceCase {
  std::string name;
  std::string family;
  std::string architecture;
  bool tied;
};

void PrintTo(const ReferenceCase& c, std::ostream* os) { *os << c.name; }

// `dir` holds a case: config.json, generation_config.json and model.safetensors.
void ExpectWeightsAreExactlyTheCheckpointTensors(const ReferenceCase& c, const std::string& dir) {
  auto arch = ParseModelConfig(ReadText(dir + "/config.json"), ReadText(dir + "/generation_config.json"),
                               "config.json");
  ASSERT_THAT(arch, IsOk());
  EXPECT_EQ(arch->family, c.family);
  EXPECT_EQ(arch->architecture, c.architecture);
  EXPECT_EQ(arch->tie_word_embeddings, c.tied);
  EXPECT_EQ(arch->vocab_size, 320);
  EXPECT_EQ(arch->hidden_size, 48);
  EXPECT_EQ(arch->intermediate_size, 96);
  EXPECT_EQ(arch->num_hidden_layers, 3);
  EXPECT_EQ(arch->num_attention_heads, 4);

  auto header = ReadSafetensorsHeader(dir + "/model.safetensors", "model.safetensors");
  ASSERT_THAT(header, IsOk());
  std::map<std::string, std::vector<int64_t>> actual;
  int64_t elements = 0;
  for (const TensorInfo& t : header->tensors) {
    actual[t.name] = t.shape;
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    elements += n;
  }
  EXPECT_EQ(ExpectedWeightShapes(*arch), actual);
  EXPECT_EQ(arch->parameter_count, elements);
}

class ReferenceModelTest : public ::testing::TestWithParam<ReferenceCase> {};

TEST_P(ReferenceModelTest, ExpectedWeightsAreExactlyTheCheckpointTensors) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ExpectWeightsAreExactlyTheCheckpointTensors(GetParam(), CaseDir(GetParam().name));
}

// The fixed transformers 4.44 cases, in the 4.x config spelling: rope_theta and rope_scaling, torch_dtype, no
// tie_word_embeddings for Gemma.
class SharedReferenceModelTest : public ::testing::TestWithParam<ReferenceCase> {};

TEST_P(SharedReferenceModelTest, ExpectedWeightsAreExactlyTheCheckpointTensors) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  ExpectWeightsAreExactlyTheCheckpointTensors(GetParam(), SharedTestdata() + "/hf_reference/" + GetParam().name);
}

std::string CaseName(const ::testing::TestParamInfo<ReferenceCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(HfReference, ReferenceModelTest,
                         ::testing::Values(ReferenceCase{"llama", "llama", "LlamaForCausalLM", false},
                                           ReferenceCase{"llama_mha", "llama", "LlamaForCausalLM", true},
                                           ReferenceCase{"llama3_rope", "llama", "LlamaForCausalLM", false},
                                           ReferenceCase{"mistral", "mistral", "MistralForCausalLM", false},
                                           ReferenceCase{"qwen2", "qwen2", "Qwen2ForCausalLM", false},
                                           ReferenceCase{"phi3", "phi3", "Phi3ForCausalLM", false},
                                           ReferenceCase{"phi3_longrope", "phi3", "Phi3ForCausalLM", false},
                                           ReferenceCase{"gemma", "gemma", "GemmaForCausalLM", true}),
                         CaseName);
INSTANTIATE_TEST_SUITE_P(Transformers444, SharedReferenceModelTest,
                         ::testing::Values(ReferenceCase{"llama", "llama", "LlamaForCausalLM", false},
                                           ReferenceCase{"llama3_rope", "llama", "LlamaForCausalLM", false},
                                           ReferenceCase{"mistral", "mistral", "MistralForCausalLM", false},
                                           ReferenceCase{"qwen2", "qwen2", "Qwen2ForCausalLM", false},
                                           ReferenceCase{"phi3", "phi3", "Phi3ForCausalLM", false},
                                           ReferenceCase{"phi3_longrope", "phi3", "Phi3ForCausalLM", false},
                                           ReferenceCase{"gemma", "gemma", "GemmaForCausalLM", true}),
                         CaseName);

TEST(ParseModelConfigTest, ReadsFamilyFeatures) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  auto llama = Parse(CaseConfig("llama"));
  ASSERT_THAT(llama, IsOk());
  EXPECT_EQ(llama->model_type, "llama");
  EXPECT_EQ(llama->num_key_value_heads, 2);
  EXPECT_EQ(llama->head_dim, 12);
  EXPECT_EQ(llama->max_position_embeddings, 2048);
  EXPECT_FALSE(llama->qkv_bias || llama->o_bias || llama->mlp_bias || llama->fused_qkv || llama->fused_gate_up);
  EXPECT_THAT(llama->bos_token_ids, ElementsAre(1));
  EXPECT_THAT(llama->eos_token_ids, ElementsAre(2));

  auto qwen2 = Parse(CaseConfig("qwen2"));
  ASSERT_THAT(qwen2, IsOk());
  EXPECT_TRUE(qwen2->qkv_bias);
  EXPECT_FALSE(qwen2->o_bias);
  EXPECT_THAT(qwen2->bos_token_ids, IsEmpty());  // null, and no generation_config.json given
  EXPECT_THAT(qwen2->eos_token_ids, IsEmpty());

  auto phi3 = Parse(CaseConfig("phi3"));
  ASSERT_THAT(phi3, IsOk());
  EXPECT_TRUE(phi3->fused_qkv);
  EXPECT_TRUE(phi3->fused_gate_up);

  // transformers 4.x wrote no tie_word_embeddings for Gemma (5 always writes it): absent means tied.
  Json gemma_config = CaseConfig("gemma");
  gemma_config.erase("tie_word_embeddings");
  auto gemma = Parse(gemma_config);
  ASSERT_THAT(gemma, IsOk());
  EXPECT_EQ(gemma->head_dim, 24);  // given; hidden / heads would be 12
  EXPECT_EQ(gemma->num_key_value_heads, 1);
  EXPECT_TRUE(gemma->tie_word_embeddings);
  EXPECT_EQ(ExpectedWeightShapes(*gemma).count("lm_head.weight"), 0u);
}

TEST(LoraTargetShapesTest, MatchesTheReadme) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  auto llama = Parse(CaseConfig("llama"));
  ASSERT_THAT(llama, IsOk());
  EXPECT_THAT(LoraTargetShapes(*llama),
              ElementsAre(Pair("down_proj", Pair(96, 48)), Pair("gate_proj", Pair(48, 96)),
                          Pair("k_proj", Pair(48, 24)), Pair("o_proj", Pair(48, 48)), Pair("q_proj", Pair(48, 48)),
                          Pair("up_proj", Pair(48, 96)), Pair("v_proj", Pair(48, 24))));
  auto gemma = Parse(CaseConfig("gemma"));
  ASSERT_THAT(gemma, IsOk());
  EXPECT_EQ(LoraTargetShapes(*gemma).at("q_proj"), std::make_pair(int64_t{48}, int64_t{96}));
  EXPECT_EQ(LoraTargetShapes(*gemma).at("o_proj"), std::make_pair(int64_t{96}, int64_t{48}));
  auto phi3 = Parse(CaseConfig("phi3"));
  ASSERT_THAT(phi3, IsOk());
  EXPECT_THAT(LoraTargetShapes(*phi3), ElementsAre(Pair("down_proj", Pair(96, 48)), Pair("gate_up_proj", Pair(48, 192)),
                                                   Pair("o_proj", Pair(48, 48)), Pair("qkv_proj", Pair(48, 96))));
  EXPECT_EQ(LoraTargetBlock("qkv_proj"), "self_attn");
  EXPECT_EQ(LoraTargetBlock("gate_up_proj"), "mlp");
}

TEST(ParseModelConfigTest, SupportedFamiliesInOrder) {
  EXPECT_THAT(SupportedFamilies(), ElementsAre("llama", "mistral", "qwen2", "phi3", "gemma"));
}

TEST(ParseModelConfigTest, RejectsOtherModelTypes) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Json config = CaseConfig("llama");
  config["model_type"] = "bert";
  EXPECT_THAT(Parse(config),
              StatusIs(kInvalid, ::testing::Eq("config.json: model_type 'bert' is not a causal LM "
                                               "family we support: llama, mistral, qwen2, phi3, gemma")));
  config.erase("model_type");
  config["architectures"] = {"BertModel"};
  EXPECT_THAT(Parse(config), StatusIs(kInvalid, HasSubstr("config.json: architectures[0] 'BertModel' is not a causal "
                                                          "LM family we support: llama, mistral")));
  config.erase("architectures");
  EXPECT_THAT(Parse(config), StatusIs(kInvalid, HasSubstr("config.json: has neither model_type nor architectures")));
}

TEST(ParseModelConfigTest, FallsBackToArchitecturesWithoutModelType) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Json config = CaseConfig("mistral");
  config.erase("model_type");
  auto arch = Parse(config);
  ASSERT_THAT(arch, IsOk());
  EXPECT_EQ(arch->family, "mistral");
  EXPECT_EQ(arch->model_type, "");
}

TEST(ParseModelConfigTest, RejectsHeadsOtherThanCausalLm) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Json config = CaseConfig("llama");
  config["architectures"] = {"LlamaForSequenceClassification"};
  EXPECT_THAT(Parse(config), StatusIs(kInvalid, HasSubstr("architectures[0] 'LlamaForSequenceClassification' is not "
                                                          "a causal LM (expected LlamaForCausalLM)")));
}

TEST(ParseModelConfigTest, MissingRequiredKeyIsNamed) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  for (const char* key :
       {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"}) {
    Json config = CaseConfig("llama");
    config.erase(key);
    EXPECT_THAT(Parse(config),
                StatusIs(kInvalid, HasSubstr(std::string("config.json: required key '") + key + "' is missing")));
    config[key] = nullptr;
    EXPECT_THAT(Parse(config), StatusIs(kInvalid, HasSubstr(std::string("required key '") + key + "' is missing")));
  }
}

TEST(ParseModelConfigTest, NonPositiveAndIllTypedValuesAreNamed) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  struct Bad {
    const char* key;
    Json value;
    std::string message;
  };
  const Bad cases[] = {
      {"num_attention_heads", -4, "config.json: num_attention_heads must be a positive integer, got -4"},
      {"hidden_size", 0, "config.json: hidden_size must be a positive integer, got 0"},
      {"hidden_size", "48", "config.json: hidden_size must be a positive integer, got \"48\""},
      {"hidden_size", 48.5, "config.json: hidden_size must be a positive integer, got 48.5"},
      {"vocab_size", Json::array({320}), "config.json: vocab_size must be a positive integer, got [320]"},
      {"vocab_size", 1ull << 40, "config.json: vocab_size 1099511627776 is too large (at most 16777216)"},
      {"num_hidden_layers", 100000, "config.json: num_hidden_layers 100000 is too large (at most 4096)"},
      {"num_key_value_heads", 0, "config.json: num_key_value_heads must be a positive integer, got 0"},
      {"num_key_value_heads", 3, "config.json: num_attention_heads (4) must be a multiple of num_key_value_heads (3)"},
      {"head_dim", -1, "config.json: head_dim must be a positive integer, got -1"},
      {"max_position_embeddings", -2048, "config.json: max_position_embeddings must be a positive integer"},
      {"tie_word_embeddings", "false", "config.json: tie_word_embeddings must be true or false, got \"false\""},
      {"attention_bias", 1, "config.json: attention_bias must be true or false, got 1"},
      {"eos_token_id", "2", "config.json: eos_token_id must be a non-negative token id or a list of them, got \"2\""},
      {"bos_token_id", Json::array({1, -1}), "config.json: bos_token_id must be a non-negative token id"},
      {"model_type", 7, "config.json: model_type must be a string, got 7"},
      {"architectures", "LlamaForCausalLM", "config.json: architectures must be a list of class names"},
  };
  for (const Bad& bad : cases) {
    Json config = CaseConfig("llama");
    config[bad.key] = bad.value;
    EXPECT_THAT(Parse(config), StatusIs(kInvalid, HasSubstr(bad.message))) << bad.key << " = " << bad.value.dump();
  }
}

TEST(ParseModelConfigTest, HiddenSizeMustSplitIntoHeadsWithoutHeadDim) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Json config = CaseConfig("llama");
  config.erase("head_dim");  // transformers 5 writes it; 4.x configs often lack it
  config["hidden_size"] = 50;
  EXPECT_THAT(Parse(config), StatusIs(kInvalid, HasSubstr("config.json: hidden_size (50) must be a multiple of "
                                                          "num_attention_heads (4) when head_dim is not given")));
  config["head_dim"] = 16;
  auto arch = Parse(config);
  ASSERT_THAT(arch, IsOk());
  EXPECT_EQ(arch->head_dim, 16);
  EXPECT_EQ(ExpectedWeightShapes(*arch).at("model.layers.0.self_attn.o_proj.weight"), (std::vector<int64_t>{50, 64}));
}

TEST(ParseModelConfigTest, MalformedJson) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  EXPECT_THAT(ParseModelConfig("{\"model_type\": \"llama\",", "", "config.json"),
              StatusIs(kInvalid, HasSubstr("config.json: is not valid JSON")));
  EXPECT_THAT(ParseModelConfig("[]", "", "config.json"),
              StatusIs(kInvalid, HasSubstr("config.json: must be a JSON object, got array")));
  EXPECT_THAT(ParseModelConfig("", "", "org/repo/config.json"),
              StatusIs(kInvalid, HasSubstr("org/repo/config.json: is not valid JSON")));
  EXPECT_THAT(Parse(CaseConfig("llama"), "{oops"),
              StatusIs(kInvalid, HasSubstr("generation_config.json: is not valid JSON")));
  EXPECT_THAT(ParseModelConfig(CaseConfig("llama").dump(), "{\"eos_token_id\": true}", "m/config.json"),
              StatusIs(kInvalid, HasSubstr("m/generation_config.json: eos_token_id must be a non-negative token id")));
}

TEST(ParseModelConfigTest, TokenIdsFallBackToGenerationConfig) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Json config = CaseConfig("llama");
  config.erase("bos_token_id");
  config["eos_token_id"] = {2, 7};
  auto arch = Parse(config, R"({"bos_token_id": 5, "eos_token_id": 9})");
  ASSERT_THAT(arch, IsOk());
  EXPECT_THAT(arch->bos_token_ids, ElementsAre(5));
  EXPECT_THAT(arch->eos_token_ids, ElementsAre(2, 7));  // config.json wins
  config["bos_token_id"] = nullptr;
  arch = Parse(config, R"({"bos_token_id": [3, 4]})");
  ASSERT_THAT(arch, IsOk());
  EXPECT_THAT(arch->bos_token_ids, ElementsAre(3, 4));
}

TEST(ParseModelConfigTest, DefaultsFollowTransformers) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Json llama = CaseConfig("llama");
  for (const char* key :
       {"num_key_value_heads", "max_position_embeddings", "tie_word_embeddings", "attention_bias", "mlp_bias"}) {
    llama.erase(key);
  }
  auto arch = Parse(llama);
  ASSERT_THAT(arch, IsOk());
  EXPECT_EQ(arch->num_key_value_heads, 4);  // num_attention_heads
  EXPECT_EQ(arch->max_position_embeddings, 2048);
  EXPECT_TRUE(arch->tie_word_embeddings);
  EXPECT_FALSE(arch->qkv_bias);

  Json mistral = CaseConfig("mistral");
  mistral["num_attention_heads"] = 32;
  mistral["hidden_size"] = 64;
  mistral.erase("head_dim");
  mistral.erase("num_key_value_heads");
  mistral.erase("max_position_embeddings");
  arch = Parse(mistral);
  ASSERT_THAT(arch, IsOk());
  EXPECT_EQ(arch->num_key_value_heads, 8);  // MistralConfig's default
  EXPECT_EQ(arch->head_dim, 2);
  EXPECT_EQ(arch->max_position_embeddings, 131072);

  Json gemma = CaseConfig("gemma");
  gemma.erase("head_dim");
  arch = Parse(gemma);
  ASSERT_THAT(arch, IsOk());
  EXPECT_EQ(arch->head_dim, 256);  // GemmaConfig's default
  EXPECT_EQ(ExpectedWeightShapes(*arch).at("model.layers.2.self_attn.q_proj.weight"), (std::vector<int64_t>{1024, 48}));

  Json qwen2 = CaseConfig("qwen2");
  qwen2["num_key_value_heads"] = nullptr;  // explicit null means num_attention_heads
  arch = Parse(qwen2);
  ASSERT_THAT(arch, IsOk());
  EXPECT_EQ(arch->num_key_value_heads, 4);
}

TEST(ParseModelConfigTest, BiasesAddWeights) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Json config = CaseConfig("llama");
  config["attention_bias"] = true;
  config["mlp_bias"] = true;
  auto arch = Parse(config);
  ASSERT_THAT(arch, IsOk());
  EXPECT_TRUE(arch->qkv_bias && arch->o_bias && arch->mlp_bias);
  const auto shapes = ExpectedWeightShapes(*arch);
  EXPECT_EQ(shapes.at("model.layers.1.self_attn.k_proj.bias"), std::vector<int64_t>{24});
  EXPECT_EQ(shapes.at("model.layers.1.self_attn.o_proj.bias"), std::vector<int64_t>{48});
  EXPECT_EQ(shapes.at("model.layers.1.mlp.up_proj.bias"), std::vector<int64_t>{96});
  EXPECT_EQ(shapes.at("model.layers.1.mlp.down_proj.bias"), std::vector<int64_t>{48});
  auto base = Parse(CaseConfig("llama"));
  ASSERT_THAT(base, IsOk());
  // Per layer: q 48 + k 24 + v 24 + o 48 + gate 96 + up 96 + down 48.
  EXPECT_EQ(arch->parameter_count - base->parameter_count, 3 * (48 + 24 + 24 + 48 + 96 + 96 + 48));

  // Mistral has no attention_bias in transformers 4.44; the key is ignored.
  Json mistral = CaseConfig("mistral");
  mistral["attention_bias"] = true;
  arch = Parse(mistral);
  ASSERT_THAT(arch, IsOk());
  EXPECT_FALSE(arch->qkv_bias);
}

}  // namespace
}  // namespace tuneforge
