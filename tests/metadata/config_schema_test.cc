// Unit tests of the config schemas: every type's keys, kinds, ranges and combined rules, and the messages a
// user sees for each kind of mistake.
#include "services/metadata/config_schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/support/status_matchers.h"

namespace tuneforge::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

absl::StatusOr<Json> Validate(const std::string& type, const std::string& json_text) {
  return ValidateConfigContent(type, Json::parse(json_text));
}

void ExpectInvalid(const std::string& type, const std::string& json_text, const std::string& a,
                   const std::string& b = "", const std::string& c = "") {
  SCOPED_TRACE(type + " " + json_text);
  EXPECT_THAT(Validate(type, json_text),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr(a), HasSubstr(b), HasSubstr(c))));
}

TEST(ConfigSchemaTest, TypesAndKeys) {
  EXPECT_THAT(ConfigTypeNames(), ElementsAre("lora", "training", "generation", "quantization"));
  EXPECT_TRUE(IsConfigType("lora"));
  EXPECT_FALSE(IsConfigType("LORA"));
  EXPECT_FALSE(IsConfigType(""));
  EXPECT_THAT(ConfigKeys("quantization"), ElementsAre("method", "quant_type", "compute_dtype", "double_quant"));
  EXPECT_THAT(ConfigKeys("lora"),
              ElementsAre("r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "bias"));
  EXPECT_EQ(ConfigKeys("training").size(), 29u);
  EXPECT_EQ(ConfigKeys("generation").size(), 8u);
  EXPECT_TRUE(ConfigKeys("nope").empty());
}

TEST(ConfigSchemaTest, UnknownTypeNamesTheAcceptedOnes) {
  ExpectInvalid("adapter", R"({"r": 8})", "type 'adapter' is not a config type",
                "lora, training, generation, quantization");
}

TEST(ConfigSchemaTest, ValidLoraIsNormalised) {
  absl::StatusOr<Json> out = Validate(
      "lora", R"({"r": 16.0, "lora_alpha": 32.0, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"],
                  "use_rslora": true, "bias": "none"})");
  ASSERT_THAT(out, IsOk());
  EXPECT_TRUE((*out)["r"].is_number_integer());
  EXPECT_EQ((*out)["r"].get<int64_t>(), 16);
  EXPECT_TRUE((*out)["lora_alpha"].is_number_integer());
  EXPECT_EQ((*out)["lora_alpha"].get<int64_t>(), 32);
  EXPECT_DOUBLE_EQ((*out)["lora_dropout"].get<double>(), 0.05);
  EXPECT_EQ((*out)["target_modules"], Json::parse(R"(["q_proj", "v_proj"])"));
  EXPECT_EQ(out->dump(), R"({"bias":"none","lora_alpha":32,"lora_dropout":0.05,"r":16,"target_modules":["q_proj","v_proj"],"use_rslora":true})");
  EXPECT_THAT(Validate("lora", R"({"target_modules": "all-linear"})"), IsOk());
}

TEST(ConfigSchemaTest, LoraErrors) {
  ExpectInvalid("lora", R"({"foo": 1})", "content.foo: unknown key for a lora config; known keys: r, lora_alpha, "
                "lora_dropout, target_modules, use_rslora, bias");
  ExpectInvalid("lora", R"({"r": 16.5})", "content.r = 16.5 is not an integer", "an integer in [1, 1024]");
  ExpectInvalid("lora", R"({"r": 0})", "content.r = 0 is out of range", "[1, 1024]");
  ExpectInvalid("lora", R"({"r": 1025})", "content.r = 1025 is out of range", "[1, 1024]");
  ExpectInvalid("lora", R"({"r": "16"})", "content.r = \"16\" is a string", "an integer in [1, 1024]");
  ExpectInvalid("lora", R"({"lora_alpha": 0})", "content.lora_alpha = 0 is out of range", "(0, 100000]");
  ExpectInvalid("lora", R"({"lora_alpha": 100000.5})", "content.lora_alpha = 100000.5", "(0, 100000]");
  ExpectInvalid("lora", R"({"lora_dropout": 1})", "content.lora_dropout = 1 is out of range", "[0, 1)");
  ExpectInvalid("lora", R"({"lora_dropout": -0.1})", "content.lora_dropout = -0.1", "[0, 1)");
  ExpectInvalid("lora", R"({"use_rslora": "yes"})", "content.use_rslora = \"yes\" is a string", "true or false");
  ExpectInvalid("lora", R"({"bias": "all"})", "content.bias = \"all\" is not accepted", "\"none\"");
  ExpectInvalid("lora", R"({"target_modules": []})", "content.target_modules is an empty list");
  ExpectInvalid("lora", R"({"target_modules": ["q_proj", "fc1"]})", "content.target_modules[1] = \"fc1\"",
                "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, qkv_proj, gate_up_proj");
  ExpectInvalid("lora", R"({"target_modules": ["q_proj", "q_proj"]})", "content.target_modules lists \"q_proj\" twice");
  ExpectInvalid("lora", R"({"target_modules": "all"})", "content.target_modules = \"all\"", "\"all-linear\"");
  ExpectInvalid("lora", R"({"target_modules": [3]})", "content.target_modules[0] = 3");
  ExpectInvalid("lora", R"({"target_modules": {"q_proj": 1}})", "content.target_modules", "is an object");
}

TEST(ConfigSchemaTest, TrainingRanges) {
  EXPECT_THAT(Validate("training", R"({"max_steps": -1, "warmup_steps": 0, "warmup_ratio": 0.1, "seed": 2147483647,
                                       "device": "cuda:1", "dtype": "bf16", "lr_scheduler": "linear",
                                       "learning_rate": 1, "adam_epsilon": 1e-8, "full_finetune": true})"),
              IsOk());
  EXPECT_THAT(Validate("training", R"({"max_steps": 1000000000})"), IsOk());
  ExpectInvalid("training", R"({"max_steps": 0})", "content.max_steps = 0 is out of range",
                "-1 (no limit) or an integer in [1, 1000000000]");
  ExpectInvalid("training", R"({"max_steps": -2})", "content.max_steps = -2");
  ExpectInvalid("training", R"({"max_steps": 1000000001})", "content.max_steps = 1000000001");
  ExpectInvalid("training", R"({"num_epochs": 0})", "content.num_epochs = 0", "[1, 1000]");
  ExpectInvalid("training", R"({"learning_rate": 0})", "content.learning_rate = 0", "(0, 1]");
  ExpectInvalid("training", R"({"learning_rate": 1.5})", "content.learning_rate = 1.5", "(0, 1]");
  ExpectInvalid("training", R"({"lr_scheduler": "step"})", "content.lr_scheduler = \"step\"",
                "one of \"constant\", \"linear\", \"cosine\"");
  ExpectInvalid("training", R"({"warmup_ratio": 1})", "content.warmup_ratio = 1", "[0, 1)");
  ExpectInvalid("training", R"({"per_device_batch_size": 4097})", "content.per_device_batch_size = 4097", "[1, 4096]");
  ExpectInvalid("training", R"({"gradient_accumulation_steps": 0})", "[1, 65536]");
  ExpectInvalid("training", R"({"max_seq_len": 7})", "content.max_seq_len = 7", "[8, 1048576]");
  ExpectInvalid("training", R"({"weight_decay": 1.01})", "content.weight_decay = 1.01", "[0, 1]");
  ExpectInvalid("training", R"({"max_grad_norm": -1})", "content.max_grad_norm = -1", "[0, 1000000]");
  ExpectInvalid("training", R"({"adam_beta1": 1})", "content.adam_beta1 = 1", "[0, 1)");
  ExpectInvalid("training", R"({"adam_beta2": 1})", "content.adam_beta2 = 1", "[0, 1)");
  ExpectInvalid("training", R"({"adam_epsilon": 0})", "content.adam_epsilon = 0", "(0, 1]");
  ExpectInvalid("training", R"({"seed": 2147483648})", "content.seed = 2147483648", "[0, 2147483647]");
  ExpectInvalid("training", R"({"seed": -1})", "content.seed = -1");
  ExpectInvalid("training", R"({"dtype": "int8"})", "content.dtype = \"int8\"", "\"fp32\", \"bf16\", \"fp16\"");
  ExpectInvalid("training", R"({"save_steps": -1})", "content.save_steps = -1", "[0, 1000000000]");
  ExpectInvalid("training", R"({"logging_steps": 0})", "content.logging_steps = 0", "[1, 1000000]");
  ExpectInvalid("training", R"({"packing": 1})", "content.packing = 1 is a number", "true or false");
  for (const char* device : {"\"gpu\"", "\"cuda:\"", "\"cuda:x\"", "\"CUDA\"", "\"cuda:0:1\""}) {
    ExpectInvalid("training", std::string(R"({"device": )") + device + "}", "content.device", "is not a device",
                  "\"auto\", \"cpu\", \"cuda\" or \"cuda:N\"");
  }
  for (const char* device : {"auto", "cpu", "cuda", "cuda:0", "cuda:15"}) {
    EXPECT_THAT(Validate("training", std::string(R"({"device": ")") + device + "\"}"), IsOk()) << device;
  }
}

TEST(ConfigSchemaTest, WarmupStepsAndRatioAreExclusive) {
  ExpectInvalid("training", R"({"warmup_steps": 10, "warmup_ratio": 0.1})",
                "content.warmup_steps and content.warmup_ratio are both set");
  EXPECT_THAT(Validate("training", R"({"warmup_steps": 10, "warmup_ratio": 0})"), IsOk());
}

TEST(ConfigSchemaTest, ActivationOffloadNeedsCheckpointing) {
  ExpectInvalid("training", R"({"activation_offload": true})", "content.activation_offload",
                "content.gradient_checkpointing: true");
  ExpectInvalid("training", R"({"activation_offload": true, "gradient_checkpointing": false})",
                "content.activation_offload");
  EXPECT_THAT(Validate("training", R"({"activation_offload": true, "gradient_checkpointing": true})"), IsOk());
  EXPECT_THAT(Validate("training", R"({"activation_offload": false})"), IsOk());
}

TEST(ConfigSchemaTest, Generation) {
  EXPECT_THAT(Validate("generation", R"({"max_new_tokens": 131072, "temperature": 0, "top_p": 1, "top_k": 0,
                                         "repetition_penalty": 1.1, "do_sample": false, "seed": 0,
                                         "stop": ["</s>", "\n\n"]})"),
              IsOk());
  ExpectInvalid("generation", R"({"max_new_tokens": 131073})", "content.max_new_tokens = 131073", "[1, 131072]");
  ExpectInvalid("generation", R"({"temperature": 100.5})", "content.temperature = 100.5", "[0, 100]");
  ExpectInvalid("generation", R"({"top_p": 0})", "content.top_p = 0", "(0, 1]");
  ExpectInvalid("generation", R"({"top_k": 1000001})", "content.top_k = 1000001", "[0, 1000000]");
  ExpectInvalid("generation", R"({"repetition_penalty": 0})", "content.repetition_penalty = 0", "(0, 100]");
  ExpectInvalid("generation", R"({"stop": []})", "content.stop has 0 entries", "1 to 16 strings");
  ExpectInvalid("generation", R"({"stop": "x"})", "content.stop = \"x\" is a string");
  ExpectInvalid("generation", R"({"stop": [""]})", "content.stop[0] = \"\" has 0 characters",
                "1 to 256 characters");
  ExpectInvalid("generation", R"({"stop": ["a", 5]})", "content.stop[1] = 5 is a number");
  Json many = Json::array();
  for (int i = 0; i < 17; ++i) many.push_back("s");
  EXPECT_THAT(ValidateConfigContent("generation", Json{{"stop", many}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("content.stop has 17 entries")));
  EXPECT_THAT(ValidateConfigContent("generation", Json{{"stop", Json::array({std::string(256, 'x')})}}), IsOk());
  // 256 characters, not bytes: multi-byte UTF-8 counts once per character.
  std::string accented;
  for (int i = 0; i < 256; ++i) accented += "\xC3\xA9";
  EXPECT_THAT(ValidateConfigContent("generation", Json{{"stop", Json::array({accented})}}), IsOk());
  EXPECT_THAT(ValidateConfigContent("generation", Json{{"stop", Json::array({std::string(257, 'x')})}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has 257 characters")));
}

TEST(ConfigSchemaTest, Quantization) {
  EXPECT_THAT(Validate("quantization", R"({"method": "bnb_4bit", "quant_type": "nf4", "compute_dtype": "bf16",
                                           "double_quant": true})"),
              IsOk());
  EXPECT_THAT(Validate("quantization", R"({"method": "bnb_8bit", "compute_dtype": "fp16"})"), IsOk());
  ExpectInvalid("quantization", R"({"method": "gptq"})", "content.method = \"gptq\"",
                "\"none\", \"bnb_4bit\", \"bnb_8bit\"");
  ExpectInvalid("quantization", R"({"method": "bnb_4bit", "quant_type": "int4"})", "content.quant_type = \"int4\"",
                "\"nf4\", \"fp4\"");
  ExpectInvalid("quantization", R"({"method": "bnb_8bit", "quant_type": "nf4"})",
                "content.quant_type applies only with method \"bnb_4bit\" (method is \"bnb_8bit\")");
  ExpectInvalid("quantization", R"({"double_quant": true})",
                "content.double_quant applies only with method \"bnb_4bit\" (method is not set)");
  ExpectInvalid("quantization", R"({"method": "none", "compute_dtype": "fp8"})", "content.compute_dtype = \"fp8\"");
}

TEST(ConfigSchemaTest, ContentShape) {
  ExpectInvalid("lora", "{}", "content is empty; a lora config needs at least one of: r, lora_alpha");
  ExpectInvalid("lora", "[1]", "content must be a JSON object");
  EXPECT_THAT(ValidateConfigContent("lora", Json{{"r", 4}}, "config"), IsOk());
  EXPECT_THAT(ValidateConfigContent("lora", Json{{"r", 0}}, "hyperparameters.lora"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hyperparameters.lora.r = 0")));
  // Keys are reported verbatim but kept short.
  EXPECT_THAT(ValidateConfigContent("lora", Json{{std::string(300, 'k'), 1}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("content.kkkk"), HasSubstr("...: unknown key for a lora config"))));
  EXPECT_THAT(ValidateConfigContent("lora", Json{{"r'; DROP TABLE configs; --", 1}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("content.r'; DROP TABLE configs; --: unknown key")));
}

}  // namespace
}  // namespace tuneforge::testing
