// The decoder, loss, LoRA, AdamW and merge against the fixed transformers 4.44 / PEFT 0.12 reference dumps of
// ../shared/testdata (the cases generated at test time are checked by the parity_* ctest tests), the decoder's family
// features and config reading on the generated cases, and the errors a user sees for checkpoints and configs that do
// not fit.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/decoder_config.h"
#include "services/trainer/model/hf_parity.h"
#include "services/trainer/model/tensor_file.h"
#include "services/trainer/peft/lora_adapter.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;

// A case generated at test time (tests/reference/make_hf_reference.py): config.json as transformers 5 writes it.
std::string CaseDir(const std::string& name) { return ::tuneforge::testing::GeneratedReference() + "/" + name; }

std::string SharedCaseDir(const std::string& name) {
  return ::tuneforge::testing::SharedTestdata() + "/hf_reference/" + name;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class HfParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
    at::set_num_threads(1);
  }
};

// The fixed transformers 4.44 cases; the generated ones run through tuneforge-parity as the parity_eager_* and
// parity_sdpa_* ctest tests (they add a packed batch, so their check count differs).
TEST_P(HfParityTest, MatchesTransformersAndPeft) {
  auto checks = RunHfParityChecks(SharedCaseDir(GetParam()));
  ASSERT_THAT(checks.status(), IsOk());
  // 4 batches x (logits, loss), greedy, scaling, loss_base, lora logits, lora loss, grad norms, AdamW (2),
  // merge (4), plus one check per LoRA tensor (42, or 24 for the fused phi3 projections).
  const bool fused = GetParam().rfind("phi3", 0) == 0;
  EXPECT_EQ(checks->size(), 20u + (fused ? 24u : 42u));
  double worst_logits = 0, worst_loss = 0, worst_grad = 0;
  for (const ParityCheck& c : *checks) {
    EXPECT_TRUE(c.pass) << c.name << ": max abs diff " << c.max_abs_diff << " (tolerance " << c.tolerance << ") "
                        << c.detail;
    if (c.name.find("logits") != std::string::npos) worst_logits = std::max(worst_logits, c.max_abs_diff);
    if (c.name.find("loss") != std::string::npos) worst_loss = std::max(worst_loss, c.max_abs_diff);
    if (c.name.rfind("lora/grad/", 0) == 0) worst_grad = std::max(worst_grad, c.max_abs_diff);
  }
  std::printf("[%s] %zu checks; max abs diff: logits %.2e, loss %.2e, LoRA grads %.2e\n", GetParam().c_str(),
              checks->size(), worst_logits, worst_loss, worst_grad);
}

INSTANTIATE_TEST_SUITE_P(AllCases, HfParityTest,
                         ::testing::Values("llama", "llama3_rope", "mistral", "qwen2", "phi3", "phi3_longrope",
                                           "gemma"));

struct LoadedCase {
  DecoderConfig config;
  std::map<std::string, at::Tensor> weights;
};

LoadedCase LoadCase(const std::string& name) {
  LoadedCase out;
  auto config = ParseDecoderConfig(ReadText(CaseDir(name) + "/config.json"), "", "config.json");
  EXPECT_THAT(config.status(), IsOk());
  out.config = *config;
  auto weights = ReadTensorFile(CaseDir(name) + "/model.safetensors", "model.safetensors");
  EXPECT_THAT(weights.status(), IsOk());
  out.weights = *weights;
  return out;
}

// Max abs diff of the nomask logits against the reference: how far a wrong semantic moves them.
double NomaskLogitsDiff(const std::string& name, const CausalLM& model) {
  at::NoGradGuard no_grad;
  const auto inputs = nlohmann::json::parse(ReadText(CaseDir(name) + "/inputs.json"));
  std::vector<int64_t> ids;
  for (const auto& row : inputs["cases"]["nomask"]["input_ids"])
    for (const auto& v : row) ids.push_back(v.get<int64_t>());
  at::Tensor input = at::tensor(ids, at::TensorOptions().dtype(at::kLong)).view({3, -1});
  auto ref = ReadTensorFile(CaseDir(name) + "/logits.safetensors", "logits.safetensors");
  EXPECT_THAT(ref.status(), IsOk());
  return (model.Forward(input) - ref->at("nomask.logits")).abs().max().item<double>();
}

TEST(DecoderSemanticsTest, EachFamilyFeatureChangesTheLogits) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  at::set_num_threads(1);
  {
    LoadedCase c = LoadCase("mistral");
    auto exact = CausalLM::Build(c.config, c.weights, {});
    ASSERT_THAT(exact.status(), IsOk());
    EXPECT_LT(NomaskLogitsDiff("mistral", **exact), 1e-4);
    c.config.sliding_window = 0;
    auto model = CausalLM::Build(c.config, c.weights, {});
    ASSERT_THAT(model.status(), IsOk());
    EXPECT_GT(NomaskLogitsDiff("mistral", **model), 0.1);
  }
  {
    LoadedCase c = LoadCase("gemma");
    EXPECT_EQ(c.config.norm_weight_offset, 1.0);
    EXPECT_EQ(c.config.activation, Activation::kGeluTanh);
    c.config.activation = Activation::kGeluErf;
    auto model = CausalLM::Build(c.config, c.weights, {});
    ASSERT_THAT(model.status(), IsOk());
    EXPECT_GT(NomaskLogitsDiff("gemma", **model), 1e-4);
  }
  {
    LoadedCase c = LoadCase("llama3_rope");
    EXPECT_EQ(c.config.rope.kind, RopeKind::kLlama3);
    c.config.rope.kind = RopeKind::kDefault;
    auto model = CausalLM::Build(c.config, c.weights, {});
    ASSERT_THAT(model.status(), IsOk());
    EXPECT_GT(NomaskLogitsDiff("llama3_rope", **model), 0.05);
  }
}

TEST(CausalLMBuildTest, NamesMissingUnexpectedAndMisshapenWeights) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  LoadedCase c = LoadCase("llama");
  auto weights = c.weights;
  weights.erase("model.layers.1.mlp.up_proj.weight");
  weights["model.layers.0.extra.weight"] = at::zeros({2});
  weights["model.norm.weight"] = at::zeros({47});
  auto model = CausalLM::Build(c.config, weights, {});
  EXPECT_THAT(model.status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing: model.layers.1.mlp.up_proj.weight")));
  EXPECT_THAT(model.status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unexpected: model.layers.0.extra.weight")));
  EXPECT_THAT(model.status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.norm.weight is [47], expected [48]")));
}

TEST(CausalLMBuildTest, RejectsLoraTargetsTheFamilyLacks) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  LoadedCase c = LoadCase("phi3");
  BuildOptions options;
  options.lora.rank = 4;
  options.lora.alpha = 8;
  options.lora.target_modules = {"q_proj"};
  auto model = CausalLM::Build(c.config, c.weights, options);
  EXPECT_THAT(model.status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("target module 'q_proj' is not a linear layer of phi3")));
}

TEST(CausalLMBuildTest, AllLinearTargetsEveryBlockProjection) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  for (const auto& [name, per_layer] : std::vector<std::pair<std::string, size_t>>{{"llama", 7}, {"phi3", 4}}) {
    LoadedCase c = LoadCase(name);
    BuildOptions options;
    options.lora.rank = 4;
    options.lora.alpha = 8;
    options.lora.target_modules = {"all-linear"};
    auto model = CausalLM::Build(c.config, c.weights, options);
    ASSERT_THAT(model.status(), IsOk());
    EXPECT_EQ((*model)->LoraParameters().size(), 3 * per_layer * 2) << name;  // 3 layers x modules x (A, B)
    for (const auto& [key, tensor] : (*model)->LoraParameters()) EXPECT_EQ(key.find("lm_head"), std::string::npos);
  }
}

TEST(CausalLMBuildTest, FreshLoraIsANoOpWithPeftInit) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  at::set_num_threads(1);
  LoadedCase c = LoadCase("qwen2");
  BuildOptions options;
  options.lora.rank = 8;
  options.lora.alpha = 16;
  options.lora.use_rslora = true;
  options.lora.target_modules = {"q_proj", "down_proj"};
  options.lora.seed = 7;
  auto model = CausalLM::Build(c.config, c.weights, options);
  ASSERT_THAT(model.status(), IsOk());
  EXPECT_DOUBLE_EQ((*model)->lora_scaling(), 16 / std::sqrt(8.0));
  const auto params = (*model)->LoraParameters();
  ASSERT_EQ(params.size(), 12u);  // 3 layers x 2 modules x (A, B)
  EXPECT_EQ(params[0].first, "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
  const double bound = 1.0 / std::sqrt(96.0);  // kaiming_uniform(a=sqrt(5)) on in_features 96
  EXPECT_LE(params[0].second.abs().max().item<double>(), bound);
  EXPECT_GT(params[0].second.abs().max().item<double>(), 0.5 * bound);
  EXPECT_EQ(params[1].second.abs().max().item<double>(), 0.0);
  EXPECT_TRUE(params[0].second.requires_grad());
  EXPECT_FALSE((*model)->weights().at("model.embed_tokens.weight").requires_grad());
  EXPECT_LT(NomaskLogitsDiff("qwen2", **model), 1e-4);
}

TEST(CausalLMBuildTest, Bf16ForwardStaysCloseAndLoraDropoutOnlyTrains) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  at::set_num_threads(1);
  LoadedCase c = LoadCase("llama");
  BuildOptions options;
  options.dtype = at::kBFloat16;
  auto bf16 = CausalLM::Build(c.config, c.weights, options);
  ASSERT_THAT(bf16.status(), IsOk());
  const double diff = NomaskLogitsDiff("llama", **bf16);
  EXPECT_GT(diff, 1e-4);  // it really ran in bf16
  EXPECT_LT(diff, 0.2);

  options.dtype = at::kFloat;
  options.lora.rank = 4;
  options.lora.alpha = 8;
  options.lora.dropout = 0.5;
  options.lora.target_modules = {"v_proj"};
  auto model = CausalLM::Build(c.config, c.weights, options);
  ASSERT_THAT(model.status(), IsOk());
  for (auto& [name, p] : (*model)->projections()) {
    if (p.lora_b.defined()) p.lora_b.detach().fill_(0.3);
  }
  at::NoGradGuard no_grad;
  at::Tensor ids = at::arange(3, 15, at::TensorOptions().dtype(at::kLong)).view({1, -1});
  at::Tensor eval1 = (*model)->Forward(ids), eval2 = (*model)->Forward(ids);
  EXPECT_TRUE(at::equal(eval1, eval2));
  (*model)->set_training(true);
  EXPECT_GT(((*model)->Forward(ids) - eval1).abs().max().item<double>(), 1e-3);
}

TEST(PeftAdapterTest, SavedAdapterLoadsBackIdentically) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  at::set_num_threads(1);
  ::tuneforge::testing::ScratchDir scratch;
  const std::string dir = CaseDir("gemma");
  auto base = CausalLM::Load(dir, {});
  ASSERT_THAT(base.status(), IsOk());
  auto options = ReadLoraOptions(dir + "/lora", (*base)->config().arch);
  ASSERT_THAT(options.status(), IsOk());
  BuildOptions build;
  build.lora = *options;
  auto model = CausalLM::Load(dir, build);
  ASSERT_THAT(model.status(), IsOk());
  ASSERT_THAT(LoadLoraWeights(dir + "/lora", **model), IsOk());
  ASSERT_THAT(SavePeftAdapter(**model, "hf_reference/gemma", scratch.path()), IsOk());

  auto reread = ReadLoraOptions(scratch.path(), (*base)->config().arch);
  ASSERT_THAT(reread.status(), IsOk());
  EXPECT_EQ(reread->rank, 8);
  EXPECT_EQ(reread->alpha, 16);
  EXPECT_EQ(reread->target_modules, options->target_modules);
  auto copy = CausalLM::Load(dir, build);
  ASSERT_THAT(copy.status(), IsOk());
  ASSERT_THAT(LoadLoraWeights(scratch.path(), **copy), IsOk());
  const auto a = (*model)->LoraParameters(), b = (*copy)->LoraParameters();
  ASSERT_EQ(a.size(), 42u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;

  // An adapter for another model names the tensor that does not fit.
  auto llama = CausalLM::Load(CaseDir("llama"), build);
  ASSERT_THAT(llama.status(), IsOk());
  EXPECT_THAT(LoadLoraWeights(scratch.path(), **llama),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("self_attn.o_proj.lora_A.weight' has shape [8,96], expected [8,48]")));
}

TEST(DecoderConfigTest, ReadsFamilyRowsAndRejectsUnknownRope) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  auto phi3 = ParseDecoderConfig(ReadText(CaseDir("phi3_longrope") + "/config.json"), "", "config.json");
  ASSERT_THAT(phi3.status(), IsOk());
  EXPECT_EQ(phi3->rms_norm_eps, 1e-5);
  EXPECT_EQ(phi3->rope.kind, RopeKind::kLongRope);
  EXPECT_EQ(phi3->rope.original_max_position_embeddings, 6);
  EXPECT_EQ(phi3->rope.long_factor.back(), 10.2);
  auto qwen = ParseDecoderConfig(ReadText(CaseDir("qwen2") + "/config.json"), "", "config.json");
  ASSERT_THAT(qwen.status(), IsOk());
  EXPECT_EQ(qwen->rope.theta, 1e6);
  EXPECT_EQ(qwen->sliding_window, 0);

  // A config written by transformers 4.x: Gemma's activation is hidden_activation, and HF forces the tanh
  // approximation when it is null, whatever hidden_act says.
  auto gemma_json = nlohmann::json::parse(ReadText(CaseDir("gemma") + "/config.json"));
  gemma_json["transformers_version"] = "4.44.2";
  gemma_json["hidden_activation"] = nullptr;
  gemma_json["hidden_act"] = "gelu";
  auto gemma = ParseDecoderConfig(gemma_json.dump(), "", "config.json");
  ASSERT_THAT(gemma.status(), IsOk());
  EXPECT_EQ(gemma->activation, Activation::kGeluTanh);
  EXPECT_TRUE(gemma->scale_embeddings);
  // A config written by transformers 5 has no hidden_activation: hidden_act is what runs.
  gemma_json["transformers_version"] = "5.17.0";
  gemma_json.erase("hidden_activation");
  auto gemma5 = ParseDecoderConfig(gemma_json.dump(), "", "config.json");
  ASSERT_THAT(gemma5.status(), IsOk());
  EXPECT_EQ(gemma5->activation, Activation::kGeluErf);

  auto json = nlohmann::json::parse(ReadText(CaseDir("llama") + "/config.json"));
  json["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"rope_theta", 10000.0}};
  EXPECT_THAT(ParseDecoderConfig(json.dump(), "", "model/config.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model/config.json: rope_parameters.rope_type 'yarn' is not supported")));
  json.erase("rope_parameters");  // 4.x spelling
  json["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_THAT(ParseDecoderConfig(json.dump(), "", "model/config.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model/config.json: rope_scaling.rope_type 'yarn' is not supported")));
  json.erase("rope_scaling");
  json["hidden_act"] = "relu";
  EXPECT_THAT(ParseDecoderConfig(json.dump(), "", "config.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hidden_act 'relu'")));
}

// transformers 5 writes one rope_parameters object (rope_theta inside it) where 4.x wrote rope_theta and
// rope_scaling; both spellings give the same settings. The generated configs are 5's; the 4.x ones are built here.
TEST(DecoderConfigTest, ReadsTransformers5RopeParameters) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  auto new_json = nlohmann::json::parse(ReadText(CaseDir("llama3_rope") + "/config.json"));
  ASSERT_TRUE(new_json.contains("rope_parameters"));
  auto old_json = new_json;
  old_json.erase("rope_parameters");
  old_json["rope_theta"] = new_json["rope_parameters"]["rope_theta"];
  old_json["rope_scaling"] = new_json["rope_parameters"];
  old_json["rope_scaling"].erase("rope_theta");
  auto before = ParseDecoderConfig(old_json.dump(), "", "config.json");
  auto after = ParseDecoderConfig(new_json.dump(), "", "config.json");
  ASSERT_THAT(before.status(), IsOk());
  ASSERT_THAT(after.status(), IsOk());
  EXPECT_EQ(after->rope.kind, RopeKind::kLlama3);
  EXPECT_EQ(after->rope.theta, 500000.0);
  EXPECT_EQ(after->rope.factor, 16.0);
  EXPECT_EQ(after->rope.original_max_position_embeddings, 48);
  EXPECT_EQ(before->rope.kind, after->rope.kind);
  EXPECT_EQ(before->rope.theta, after->rope.theta);
  EXPECT_EQ(before->rope.factor, after->rope.factor);
  EXPECT_EQ(before->rope.low_freq_factor, after->rope.low_freq_factor);
  EXPECT_EQ(before->rope.high_freq_factor, after->rope.high_freq_factor);
  EXPECT_EQ(before->rope.original_max_position_embeddings, after->rope.original_max_position_embeddings);

  // longrope: original_max_position_embeddings inside rope_parameters (5) or at the top (4.x, where the block was
  // rope_scaling with "type"); partial rotary refused wherever it is.
  auto phi_json = nlohmann::json::parse(ReadText(CaseDir("phi3_longrope") + "/config.json"));
  ASSERT_TRUE(phi_json.contains("rope_parameters"));
  nlohmann::json inner_only = phi_json;
  inner_only.erase("original_max_position_embeddings");
  auto phi = ParseDecoderConfig(inner_only.dump(), "", "config.json");
  ASSERT_THAT(phi.status(), IsOk());
  EXPECT_EQ(phi->rope.kind, RopeKind::kLongRope);
  EXPECT_EQ(phi->rope.original_max_position_embeddings, 6);
  nlohmann::json old_phi = phi_json;
  nlohmann::json scaling = phi_json["rope_parameters"];
  for (const char* key : {"rope_type", "rope_theta", "original_max_position_embeddings", "partial_rotary_factor"}) {
    scaling.erase(key);
  }
  scaling["type"] = "longrope";
  old_phi.erase("rope_parameters");
  old_phi["rope_scaling"] = scaling;
  old_phi["rope_theta"] = 10000.0;
  old_phi["original_max_position_embeddings"] = 6;
  auto phi_old = ParseDecoderConfig(old_phi.dump(), "", "config.json");
  ASSERT_THAT(phi_old.status(), IsOk());
  EXPECT_EQ(phi_old->rope.kind, RopeKind::kLongRope);
  EXPECT_EQ(phi_old->rope.original_max_position_embeddings, 6);
  EXPECT_EQ(phi_old->rope.short_factor, phi->rope.short_factor);
  EXPECT_EQ(phi_old->rope.long_factor, phi->rope.long_factor);
  inner_only["rope_parameters"]["partial_rotary_factor"] = 0.5;
  EXPECT_THAT(ParseDecoderConfig(inner_only.dump(), "", "config.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("partial_rotary_factor")));
  old_phi["partial_rotary_factor"] = 0.5;
  EXPECT_THAT(ParseDecoderConfig(old_phi.dump(), "", "config.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("partial_rotary_factor")));
}

}  // namespace
}  // namespace tuneforge
