// Tests of PEFT LoRA adapter validation against the reference adapters PEFT writes at test time (and the fixed PEFT
// 0.12 ones when ../shared is there), and of the configs and tensor sets it must refuse.
#include "common/peft_adapter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::GeneratedReference;
using ::tuneforge::testing::ScratchDir;
using ::tuneforge::testing::SharedTestdata;
using ::tuneforge::testing::StatusIs;
using Json = nlohmann::json;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

// A case generated at test time: a model and the LoRA adapter PEFT saved for it in lora/.
std::string CaseDir(const std::string& name) { return GeneratedReference() + "/" + name; }

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ModelArchitecture BaseIn(const std::string& dir) {
  auto arch = ParseModelConfig(ReadText(dir + "/config.json"), "", "config.json");
  EXPECT_THAT(arch, IsOk());
  return arch.ok() ? *arch : ModelArchitecture{};
}

ModelArchitecture Base(const std::string& name) { return BaseIn(CaseDir(name)); }

Json AdapterConfig(const std::string& name) {
  return Json::parse(ReadText(CaseDir(name) + "/lora/adapter_config.json"));
}

SafetensorsHeader AdapterWeights(const std::string& name) {
  auto header = ReadSafetensorsHeader(CaseDir(name) + "/lora/adapter_model.safetensors", "adapter_model.safetensors");
  EXPECT_THAT(header, IsOk());
  return header.ok() ? *header : SafetensorsHeader{};
}

// The weights without the tensors whose names contain `part`.
SafetensorsHeader Without(SafetensorsHeader header, const std::string& part) {
  auto& t = header.tensors;
  t.erase(
      std::remove_if(t.begin(), t.end(), [&](const TensorInfo& i) { return i.name.find(part) != std::string::npos; }),
      t.end());
  return header;
}

absl::StatusOr<PeftAdapterInfo> Validate(const Json& config, const SafetensorsHeader& weights,
                                         const std::string& base = "llama") {
  return ValidatePeftAdapter(config.dump(), weights, Base(base), "");
}

struct ReferenceAdapter {
  std::string name;
  std::vector<std::string> targets;
  bool rslora = false;
};

void PrintTo(const ReferenceAdapter& c, std::ostream* os) { *os << c.name; }

const std::vector<std::string> kAllLinear = {"down_proj", "gate_proj", "k_proj", "o_proj",
                                             "q_proj",    "up_proj",   "v_proj"};
const std::vector<std::string> kPhi3Linear = {"down_proj", "gate_up_proj", "o_proj", "qkv_proj"};

// `dir` is the case folder: the model, inputs.json and the adapter in lora/.
void ExpectValidAgainstItsBase(const ReferenceAdapter& c, const std::string& dir) {
  auto adapter = InspectLocalAdapterDirectory(dir + "/lora", BaseIn(dir));
  ASSERT_THAT(adapter, IsOk());
  EXPECT_EQ(adapter->info.peft_type, "LORA");
  EXPECT_EQ(adapter->info.rank, 8);
  EXPECT_EQ(adapter->info.alpha, 16.0);
  EXPECT_EQ(adapter->info.target_modules, c.targets);
  EXPECT_EQ(adapter->info.target_modules_regex, "");
  EXPECT_EQ(adapter->info.use_rslora, c.rslora);
  EXPECT_EQ(adapter->info.task_type, "CAUSAL_LM");
  EXPECT_EQ(adapter->info.base_model_name_or_path, "hf_reference/" + c.name);
  // Every file of the folder is listed, with the sizes and hashes inputs.json recorded.
  const Json expected = Json::parse(ReadText(dir + "/inputs.json"))["files"];
  std::vector<std::string> paths;
  std::string manifest;
  for (const LocalFile& f : adapter->files) {
    paths.push_back(f.path);
    EXPECT_EQ(f.size, expected["lora/" + f.path]["bytes"].get<int64_t>()) << f.path;
    EXPECT_EQ(f.sha256, expected["lora/" + f.path]["sha256"].get<std::string>()) << f.path;
    manifest += f.path + std::string(1, '\0') + std::to_string(f.size) + std::string(1, '\0') + f.sha256 + "\n";
  }
  EXPECT_THAT(paths, ElementsAre("adapter_after_1_adamw_step.safetensors", "adapter_config.json",
                                 "adapter_model.safetensors", "grads_step0.safetensors", "lora_logits.safetensors"));
  EXPECT_EQ(adapter->fingerprint, Sha256Hex(manifest));
}

class ReferenceAdapterTest : public ::testing::TestWithParam<ReferenceAdapter> {};

TEST_P(ReferenceAdapterTest, ValidatesAgainstItsBase) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ExpectValidAgainstItsBase(GetParam(), CaseDir(GetParam().name));
}

// The adapters PEFT 0.12 wrote (an older adapter_config.json, no rsLoRA case) for the transformers 4.44 models.
class SharedReferenceAdapterTest : public ::testing::TestWithParam<ReferenceAdapter> {};

TEST_P(SharedReferenceAdapterTest, ValidatesAgainstItsBase) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  ExpectValidAgainstItsBase(GetParam(), SharedTestdata() + "/hf_reference/" + GetParam().name);
}

std::string AdapterName(const ::testing::TestParamInfo<ReferenceAdapter>& info) { return info.param.name; }

// qwen2's generated adapter uses rsLoRA (scaling alpha / sqrt(r)).
INSTANTIATE_TEST_SUITE_P(HfReference, ReferenceAdapterTest,
                         ::testing::Values(ReferenceAdapter{"llama", kAllLinear},
                                           ReferenceAdapter{"llama_mha", kAllLinear},
                                           ReferenceAdapter{"llama3_rope", kAllLinear},
                                           ReferenceAdapter{"mistral", kAllLinear},
                                           ReferenceAdapter{"qwen2", kAllLinear, true},
                                           ReferenceAdapter{"phi3", kPhi3Linear},
                                           ReferenceAdapter{"phi3_longrope", kPhi3Linear},
                                           ReferenceAdapter{"gemma", kAllLinear}),
                         AdapterName);
INSTANTIATE_TEST_SUITE_P(Peft012, SharedReferenceAdapterTest,
                         ::testing::Values(ReferenceAdapter{"llama", kAllLinear},
                                           ReferenceAdapter{"llama3_rope", kAllLinear},
                                           ReferenceAdapter{"mistral", kAllLinear},
                                           ReferenceAdapter{"qwen2", kAllLinear}, ReferenceAdapter{"phi3", kPhi3Linear},
                                           ReferenceAdapter{"phi3_longrope", kPhi3Linear},
                                           ReferenceAdapter{"gemma", kAllLinear}),
                         AdapterName);

TEST(ValidatePeftAdapterTest, OtherBaseShapesNameTheTensor) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  // Gemma's q_proj is [96, 48] (head_dim 24), llama's [48, 48]: the names match, the shapes do not.
  auto status = Validate(AdapterConfig("llama"), AdapterWeights("llama"), "gemma");
  EXPECT_THAT(status,
              StatusIs(kInvalid, HasSubstr("adapter_model.safetensors: tensor 'base_model.model.model.layers.")));
  EXPECT_THAT(status,
              StatusIs(kInvalid, HasSubstr("but r = 8 and the gemma base model (3 layers, hidden_size 48) need")));
  auto gemma_on_llama = Validate(AdapterConfig("gemma"), AdapterWeights("gemma"), "llama");
  EXPECT_THAT(gemma_on_llama, StatusIs(kInvalid, HasSubstr("this adapter was trained for a different base model")));
}

TEST(ValidatePeftAdapterTest, FusedModulesDoNotExistInOtherFamilies) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  EXPECT_THAT(Validate(AdapterConfig("phi3"), AdapterWeights("phi3"), "llama"),
              StatusIs(kInvalid, HasSubstr("adapter_config.json: target_modules entry '")));
  Json config = AdapterConfig("llama");
  EXPECT_THAT(Validate(config, AdapterWeights("phi3"), "llama"),
              StatusIs(kInvalid, HasSubstr("_proj', which the llama base model (3 layers, hidden_size 48) does not "
                                           "have (it has down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, "
                                           "v_proj)")));
}

TEST(ValidatePeftAdapterTest, ExactShapeMessage) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  SafetensorsHeader weights = AdapterWeights("llama");
  for (TensorInfo& t : weights.tensors) {
    if (t.name == "base_model.model.model.layers.2.self_attn.k_proj.lora_B.weight") t.shape = {48, 8};
  }
  EXPECT_THAT(
      Validate(AdapterConfig("llama"), weights),
      StatusIs(kInvalid, ::testing::Eq("adapter_model.safetensors: tensor "
                                       "'base_model.model.model.layers.2.self_attn.k_proj.lora_B.weight' has shape "
                                       "[48, 8] but r = 8 and the llama base model (3 layers, hidden_size 48) need "
                                       "[24, 8] (lora_B is [out_features, r]); this adapter was trained for a "
                                       "different base model or its r is wrong")));
  Json config = AdapterConfig("llama");
  config["r"] = 16;
  EXPECT_THAT(Validate(config, AdapterWeights("llama")),
              StatusIs(kInvalid, HasSubstr("but r = 16 and the llama base model")));
}

TEST(ValidatePeftAdapterTest, MissingTargetModuleTensorsAreNamed) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  EXPECT_THAT(Validate(AdapterConfig("llama"), Without(AdapterWeights("llama"), "k_proj")),
              StatusIs(kInvalid, HasSubstr("adapter_model.safetensors: tensor "
                                           "'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight' [8, 48] "
                                           "is missing but adapter_config.json targets k_proj")));
  EXPECT_THAT(Validate(AdapterConfig("llama"), Without(AdapterWeights("llama"), "layers.2.mlp.down_proj.lora_B")),
              StatusIs(kInvalid, HasSubstr("tensor 'base_model.model.model.layers.2.mlp.down_proj.lora_B.weight' "
                                           "[48, 8] is missing")));
  // A whole layer missing is caught the same way.
  EXPECT_THAT(Validate(AdapterConfig("llama"), Without(AdapterWeights("llama"), "layers.1.")),
              StatusIs(kInvalid, HasSubstr("'base_model.model.model.layers.1.mlp.down_proj.lora_A.weight' [8, 96] "
                                           "is missing")));
}

TEST(ValidatePeftAdapterTest, ExtraModuleIsNamed) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Json config = AdapterConfig("llama");
  config["target_modules"] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"};
  EXPECT_THAT(Validate(config, AdapterWeights("llama")), StatusIs(kInvalid, HasSubstr("mlp.down_proj.lora_")));
  EXPECT_THAT(Validate(config, AdapterWeights("llama")),
              StatusIs(kInvalid, HasSubstr("is for module down_proj of layer ")));
  EXPECT_THAT(Validate(config, AdapterWeights("llama")),
              StatusIs(kInvalid, HasSubstr("which adapter_config.json target_modules does not cover")));
  auto subset = Validate(config, Without(AdapterWeights("llama"), "down_proj"));
  ASSERT_THAT(subset, IsOk());
  EXPECT_THAT(subset->target_modules, ElementsAre("gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"));
}

TEST(ValidatePeftAdapterTest, TargetModulesAsStrings) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Json config = AdapterConfig("llama");
  config["target_modules"] = "all-linear";
  auto all = Validate(config, AdapterWeights("llama"));
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->target_modules, kAllLinear);
  EXPECT_EQ(all->target_modules_regex, "all-linear");

  config["target_modules"] = R"(model\.layers\.\d+\.self_attn\.(q|v)_proj)";
  EXPECT_THAT(Validate(config, AdapterWeights("llama")),
              StatusIs(kInvalid, HasSubstr("target_modules does not cover")));
  SafetensorsHeader qv = AdapterWeights("llama");
  for (const char* drop : {"k_proj", "o_proj", "mlp."}) qv = Without(qv, drop);
  auto regex = Validate(config, qv);
  ASSERT_THAT(regex, IsOk());
  EXPECT_THAT(regex->target_modules, ElementsAre("q_proj", "v_proj"));

  // A regex that picks some layers only: tuneforge puts LoRA on a module in every layer or in none, so the adapter
  // is refused, naming the layers it leaves out, whatever its weights hold.
  config["target_modules"] = R"(model\.layers\.0\.self_attn\.(q|v)_proj)";
  for (const SafetensorsHeader& weights : {qv, Without(Without(qv, "layers.1."), "layers.2.")}) {
    EXPECT_THAT(Validate(config, weights),
                StatusIs(kInvalid, HasSubstr("covers q_proj in some layers but not in layer(s) 1, 2")));
  }

  config["target_modules"] = "(";
  EXPECT_THAT(Validate(config, qv), StatusIs(kInvalid, HasSubstr("adapter_config.json: target_modules regex '(' "
                                                                 "cannot be used")));
  config["target_modules"] = "lm_head";
  EXPECT_THAT(Validate(config, qv), StatusIs(kInvalid, HasSubstr("target_modules regex 'lm_head' matches no linear "
                                                                 "layer of the llama base model")));
  config["target_modules"] = {"q_proj", "lm_head"};
  EXPECT_THAT(Validate(config, qv),
              StatusIs(kInvalid, HasSubstr("adapter_config.json: target_modules entry 'lm_head' matches no linear "
                                           "layer of the llama base model (3 layers, hidden_size 48); LoRA can "
                                           "target: down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj")));
  // Full module paths are matched as PEFT does (equal or a dotted suffix).
  config["target_modules"] = {"self_attn.q_proj", "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.v_proj",
                              "model.layers.2.self_attn.v_proj"};
  EXPECT_THAT(Validate(config, qv), IsOk());
}

TEST(ValidatePeftAdapterTest, BadConfigsNameTheKey) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  struct Bad {
    const char* key;
    Json value;
    std::string message;
  };
  const Bad cases[] = {
      {"peft_type", "IA3", "adapter_config.json: peft_type 'IA3' is not supported; only LORA adapters are"},
      {"peft_type", nullptr, "adapter_config.json: peft_type is missing"},
      {"task_type", "SEQ_CLS", "adapter_config.json: task_type \"SEQ_CLS\" is not supported"},
      {"r", 0, "adapter_config.json: r must be a positive integer rank"},
      {"r", -8, "r must be a positive integer rank (at most 1048576), got -8"},
      {"r", 8.5, "r must be a positive integer rank (at most 1048576), got 8.5"},
      {"r", "8", "r must be a positive integer rank"},
      {"lora_alpha", 0, "adapter_config.json: lora_alpha must be a positive number, got 0"},
      {"lora_alpha", "16", "lora_alpha must be a positive number"},
      {"use_rslora", "yes", "adapter_config.json: use_rslora must be true or false"},
      {"target_modules", nullptr, "adapter_config.json: target_modules is missing"},
      {"target_modules", Json::array(), "target_modules must be a non-empty list of module names or a string"},
      {"target_modules", Json::array({1}), "target_modules entries must be module names, got 1"},
      {"use_dora", true, "adapter_config.json: use_dora = true is not supported (DoRA)"},
      {"rank_pattern", {{"q_proj", 4}}, "adapter_config.json: rank_pattern = {\"q_proj\":4} is not supported"},
      {"alpha_pattern", {{"q_proj", 4}}, "alpha_pattern = {\"q_proj\":4} is not supported"},
      {"modules_to_save", {"lm_head"}, "modules_to_save = [\"lm_head\"] is not supported"},
      {"layers_to_transform", {0, 1}, "layers_to_transform = [0,1] is not supported"},
      {"layers_to_transform", 0, "layers_to_transform = 0 is not supported"},
      {"layer_replication", {{0, 2}}, "layer_replication = [[0,2]] is not supported"},
      {"bias", "lora_only", "adapter_config.json: bias = \"lora_only\" is not supported"},
      {"base_model_name_or_path", 3, "base_model_name_or_path must be a string"},
  };
  for (const Bad& bad : cases) {
    Json config = AdapterConfig("llama");
    config[bad.key] = bad.value;
    EXPECT_THAT(Validate(config, AdapterWeights("llama")), StatusIs(kInvalid, HasSubstr(bad.message)))
        << bad.key << " = " << bad.value.dump();
  }
  EXPECT_THAT(ValidatePeftAdapter("{", AdapterWeights("llama"), Base("llama"), ""),
              StatusIs(kInvalid, HasSubstr("adapter_config.json: is not valid JSON")));
  EXPECT_THAT(ValidatePeftAdapter("[]", AdapterWeights("llama"), Base("llama"), "org/adapter"),
              StatusIs(kInvalid, HasSubstr("org/adapter/adapter_config.json: must be a JSON object")));
}

TEST(ValidatePeftAdapterTest, PeftDefaultsAndOptionalFields) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  Json config = AdapterConfig("llama");
  config.erase("task_type");
  config.erase("lora_alpha");
  config.erase("use_rslora");
  config["r"] = nullptr;
  config["use_dora"] = false;
  config["modules_to_save"] = Json::array();
  auto info = Validate(config, AdapterWeights("llama"));
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->rank, 8);     // LoraConfig default
  EXPECT_EQ(info->alpha, 8.0);  // LoraConfig default
  EXPECT_EQ(info->task_type, "");
  config["use_rslora"] = true;
  config["lora_alpha"] = 12.5;
  info = Validate(config, AdapterWeights("llama"));
  ASSERT_THAT(info, IsOk());
  EXPECT_TRUE(info->use_rslora);
  EXPECT_EQ(info->alpha, 12.5);
}

TEST(ValidatePeftAdapterTest, UnrecognisedTensorNamesAreRejected) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", "is not a LoRA weight we support"},
      {"base_model.model.lm_head.lora_A.weight", "is not a LoRA weight we support"},
      {"base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", "is not a LoRA weight we support"},
      {"base_model.model.model.layers.00.self_attn.q_proj.lora_A.weight", "is not a LoRA weight we support"},
      {"base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight", "is for layer 3 but the llama base model"},
      {"base_model.model.model.layers.0.mlp.q_proj.lora_A.weight", "puts q_proj under 'mlp' instead of 'self_attn'"},
  };
  for (const auto& [name, message] : bad) {
    SafetensorsHeader weights = AdapterWeights("llama");
    weights.tensors.push_back(TensorInfo{name, "F32", {8, 48}, 0, 0});
    EXPECT_THAT(Validate(AdapterConfig("llama"), weights),
                StatusIs(kInvalid, HasSubstr("adapter_model.safetensors: tensor '" + name + "' " + message)));
  }
  SafetensorsHeader weights = AdapterWeights("llama");
  weights.tensors[0].dtype = "I8";
  EXPECT_THAT(Validate(AdapterConfig("llama"), weights), StatusIs(kInvalid, HasSubstr("has dtype I8")));
}

TEST(InspectLocalAdapterDirectoryTest, MissingFilesAndBrokenWeights) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  const ModelArchitecture base = Base("llama");
  EXPECT_THAT(InspectLocalAdapterDirectory(dir.path(), base),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("adapter_config.json is not in")));
  dir.WriteFile("adapter_config.json", ReadText(CaseDir("llama") + "/lora/adapter_config.json"));
  EXPECT_THAT(InspectLocalAdapterDirectory(dir.path(), base),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("adapter_model.safetensors is not in")));
  dir.WriteFile("adapter_model.bin", "x");
  EXPECT_THAT(InspectLocalAdapterDirectory(dir.path(), base),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("safe_serialization=True")));
  const std::string weights = ReadText(CaseDir("llama") + "/lora/adapter_model.safetensors");
  dir.WriteFile("adapter_model.safetensors", weights.substr(0, weights.size() - 4));
  EXPECT_THAT(InspectLocalAdapterDirectory(dir.path(), base),
              StatusIs(kInvalid, HasSubstr("adapter_model.safetensors: tensor '")));
  dir.WriteFile("adapter_model.safetensors", weights);
  auto adapter = InspectLocalAdapterDirectory(dir.path(), base);
  ASSERT_THAT(adapter, IsOk());
  EXPECT_EQ(adapter->directory, dir.path());
  EXPECT_EQ(adapter->files.size(), 3u);

  // Same content elsewhere: same fingerprint; one changed byte: another.
  ScratchDir copy;
  copy.WriteFile("adapter_config.json", ReadText(dir.path() + "/adapter_config.json"));
  copy.WriteFile("adapter_model.safetensors", weights);
  copy.WriteFile("adapter_model.bin", "x");
  auto same = InspectLocalAdapterDirectory(copy.path(), base);
  ASSERT_THAT(same, IsOk());
  EXPECT_EQ(same->fingerprint, adapter->fingerprint);
  copy.WriteFile("adapter_model.bin", "y");
  auto changed = InspectLocalAdapterDirectory(copy.path(), base);
  ASSERT_THAT(changed, IsOk());
  EXPECT_NE(changed->fingerprint, adapter->fingerprint);

  ScratchDir outside;
  fs::create_symlink(outside.WriteFile("x", "x"), copy.path() + "/README.md");
  EXPECT_THAT(InspectLocalAdapterDirectory(copy.path(), base),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("'README.md' is a symlink to")));
}

}  // namespace
}  // namespace tuneforge
