// The parity checks: forward logits and loss for the four input batches, greedy tokens, then LoRA
// logits, loss, gradients, one AdamW step and the merge, each with the README's tolerance.
#include "services/trainer/model/hf_parity.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/model_config.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/device.h"
#include "services/trainer/model/tensor_file.h"
#include "services/trainer/peft/lora_adapter.h"
#include "services/trainer/train/adamw.h"
#include "services/trainer/train/causal_lm_loss.h"

namespace tuneforge {
namespace {

using Json = nlohmann::json;

constexpr double kLogitsAtol = 1e-4, kLogitsRtol = 1e-4;
constexpr double kLossAtol = 1e-5;
constexpr double kGradAtol = 1e-5, kGradRtol = 1e-4;
constexpr double kMergedAtol = 1e-6;
constexpr double kStepAtol = 1e-6;                   // where |grad| > kStepSignGrad
constexpr double kStepSignFlipAtol = 1.0e-3 + 1e-6;  // first Adam step of a ~0 gradient may flip sign
constexpr double kStepSignGrad = 1e-5;

at::Tensor IdsTensor(const Json& rows) {
  std::vector<int64_t> flat;
  int64_t n_rows = 0, n_cols = 0;
  for (const Json& row : rows) {
    ++n_rows;
    n_cols = static_cast<int64_t>(row.size());
    for (const Json& v : row) flat.push_back(v.get<int64_t>());
  }
  return at::tensor(flat, at::TensorOptions().dtype(at::kLong)).view({n_rows, n_cols});
}

// Compares `actual` with `expected` where `valid` (bool, broadcastable) holds: |a-e| <= atol + rtol|e|.
ParityCheck Compare(std::string name, const at::Tensor& actual, const at::Tensor& expected, const at::Tensor& valid,
                    double atol, double rtol) {
  at::Tensor a = actual.detach().to(at::kDouble), e = expected.to(at::kDouble);
  at::Tensor diff = (a - e).abs();
  at::Tensor limit = e.abs() * rtol + atol;
  at::Tensor bad = diff > limit;
  if (valid.defined()) {
    diff = diff * valid;
    bad = at::logical_and(bad, valid);
  }
  ParityCheck c;
  c.name = std::move(name);
  c.max_abs_diff = diff.max().item<double>();
  c.tolerance = atol;
  c.pass = !bad.any().item<bool>() &&
           !at::isnan(a).logical_and(valid.defined() ? valid : at::ones_like(a, at::kBool)).any().item<bool>();
  c.detail = absl::StrCat("atol ", atol, " rtol ", rtol);
  return c;
}

ParityCheck CompareScalar(std::string name, double actual, double expected, double atol) {
  ParityCheck c;
  c.name = std::move(name);
  c.max_abs_diff = std::abs(actual - expected);
  c.tolerance = atol;
  c.pass = c.max_abs_diff <= atol;
  c.detail = absl::StrCat("ours ", actual, " reference ", expected);
  return c;
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " is missing"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<Json> ReadJson(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadText(path));
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

struct Batch {
  at::Tensor ids, mask, positions, labels, valid;  // valid: [B,T,1] bool
};

Batch MakeBatch(const Json& c) {
  Batch b;
  b.ids = IdsTensor(c.at("input_ids"));
  if (!c.at("attention_mask").is_null()) b.mask = IdsTensor(c.at("attention_mask"));
  if (!c.at("position_ids").is_null()) b.positions = IdsTensor(c.at("position_ids"));
  b.labels = IdsTensor(c.at("labels"));
  b.valid = (b.mask.defined() ? b.mask != 0 : at::ones_like(b.ids, at::kBool)).unsqueeze(-1);
  return b;
}

absl::Status RunChecks(const std::string& dir, std::vector<ParityCheck>& out) {
  ASSIGN_OR_RETURN(Json inputs, ReadJson(dir + "/inputs.json"));
  ASSIGN_OR_RETURN(auto ref_logits, ReadTensorFile(dir + "/logits.safetensors", "logits.safetensors"));
  // The case names the attention implementation its reference ran with (the 4.44 set predates sdpa: eager).
  BuildOptions base_options;
  ASSIGN_OR_RETURN(base_options.attention,
                   ParseAttentionImpl(inputs.value("attn_implementation", std::string("eager"))));
  ASSIGN_OR_RETURN(std::unique_ptr<CausalLM> base, CausalLM::Load(dir, base_options));

  try {
    // (1) forward logits and loss of the base model.
    {
      at::NoGradGuard no_grad;
      for (const auto& [case_name, c] : inputs.at("cases").items()) {
        Batch b = MakeBatch(c);
        at::Tensor logits = base->Forward(b.ids, b.mask, b.positions);
        auto ref = ref_logits.find(c.at("logits_key").get<std::string>());
        if (ref == ref_logits.end()) {
          return absl::InvalidArgumentError(absl::StrCat("logits.safetensors lacks ", c.at("logits_key").dump()));
        }
        out.push_back(Compare("logits/" + case_name, logits, ref->second, b.valid, kLogitsAtol, kLogitsRtol));
        out.push_back(CompareScalar("loss/" + case_name, CausalLmLoss(logits, b.labels).item<double>(),
                                    c.at("loss").get<double>(), kLossAtol));
      }
      const Json& greedy = inputs.at("greedy");
      std::vector<int64_t> tokens = base->GreedyGenerate(greedy.at("prompt").get<std::vector<int64_t>>(),
                                                         static_cast<int64_t>(greedy.at("new_tokens").size()));
      const auto expected = greedy.at("new_tokens").get<std::vector<int64_t>>();
      ParityCheck g;
      g.name = "greedy/new_tokens";
      for (size_t i = 0; i < expected.size(); ++i) g.max_abs_diff += tokens[i] != expected[i] ? 1 : 0;
      g.tolerance = 0;
      g.pass = g.max_abs_diff == 0;
      g.detail = absl::StrCat("ours [", absl::StrJoin(tokens, ","), "] reference [", absl::StrJoin(expected, ","), "]");
      out.push_back(g);
    }

    // (2) LoRA logits and losses.
    const Json& lora = inputs.at("lora");
    const std::string adapter_dir = dir + "/lora";
    ASSIGN_OR_RETURN(LoraOptions lora_options, ReadLoraOptions(adapter_dir, base->config().arch));
    BuildOptions options = base_options;
    options.lora = lora_options;
    ASSIGN_OR_RETURN(std::unique_ptr<CausalLM> model, CausalLM::Load(dir, options));
    RETURN_IF_ERROR(LoadLoraWeights(adapter_dir, *model));
    out.push_back(
        CompareScalar("lora/scaling", model->lora_scaling(), lora.at("peft_config").at("scaling").get<double>(), 0));
    Batch b = MakeBatch(inputs.at("cases").at(lora.at("batch_case").get<std::string>()));
    {
      at::NoGradGuard no_grad;
      out.push_back(CompareScalar("lora/loss_base",
                                  CausalLmLoss(base->Forward(b.ids, b.mask, b.positions), b.labels).item<double>(),
                                  lora.at("loss_base").get<double>(), kLossAtol));
    }
    ASSIGN_OR_RETURN(auto ref_lora_logits,
                     ReadTensorFile(adapter_dir + "/lora_logits.safetensors", "lora_logits.safetensors"));
    model->set_training(true);
    at::Tensor logits = model->Forward(b.ids, b.mask, b.positions);
    at::Tensor loss = CausalLmLoss(logits, b.labels);
    const std::string lora_key = lora.at("batch_case").get<std::string>() + ".lora.logits";
    if (ref_lora_logits.count(lora_key) == 0)
      return absl::InvalidArgumentError("lora_logits.safetensors lacks " + lora_key);
    out.push_back(Compare("lora/logits", logits, ref_lora_logits.at(lora_key), b.valid, kLogitsAtol, kLogitsRtol));
    out.push_back(CompareScalar("lora/loss_with_adapter", loss.item<double>(),
                                lora.at("loss_with_adapter").get<double>(), kLossAtol));

    // (3) gradients of every LoRA tensor.
    loss.backward();
    ASSIGN_OR_RETURN(auto ref_grads,
                     ReadTensorFile(adapter_dir + "/grads_step0.safetensors", "grads_step0.safetensors"));
    const auto params = model->LoraParameters();
    if (params.size() != ref_grads.size()) {
      out.push_back({"lora/grad_count", std::abs(double(params.size()) - double(ref_grads.size())), 0, false,
                     absl::StrCat(params.size(), " LoRA tensors, reference has ", ref_grads.size())});
    }
    double worst_norm = 0;
    for (const auto& [name, p] : params) {
      auto ref = ref_grads.find(name);
      if (ref == ref_grads.end() || !p.grad().defined()) {
        out.push_back({"lora/grad/" + name, 1e9, kGradAtol, false, "no reference or no gradient"});
        continue;
      }
      out.push_back(Compare("lora/grad/" + name, p.grad(), ref->second, {}, kGradAtol, kGradRtol));
      const double norm = p.grad().norm().item<double>();
      const double ref_norm = lora.at("grad_norms").at(name).get<double>();
      worst_norm = std::max(worst_norm, std::abs(norm - ref_norm) / std::max(ref_norm, 1e-30));
    }
    out.push_back({"lora/grad_norms_rel", worst_norm, 1e-4, worst_norm <= 1e-4, "max relative diff of L2 norms"});

    // (4) one AdamW step on the LoRA tensors only.
    const Json& opt = lora.at("optimizer");
    AdamWSettings settings;
    settings.lr = opt.at("lr").get<double>();
    settings.beta1 = opt.at("betas").at(0).get<double>();
    settings.beta2 = opt.at("betas").at(1).get<double>();
    settings.eps = opt.at("eps").get<double>();
    settings.weight_decay = opt.at("weight_decay").get<double>();
    {
      std::vector<at::Tensor> tensors;
      for (const auto& [name, p] : params) tensors.push_back(p);
      AdamWOptimizer optimizer(tensors, settings);
      optimizer.Step();
    }
    ASSIGN_OR_RETURN(auto ref_step, ReadTensorFile(adapter_dir + "/adapter_after_1_adamw_step.safetensors",
                                                   "adapter_after_1_adamw_step.safetensors"));
    double step_worst = 0, flip_worst = 0;
    bool step_pass = true;
    int flips = 0;
    for (const auto& [name, p] : params) {
      auto ref = ref_step.find(name);
      if (ref == ref_step.end()) {
        step_pass = false;
        continue;
      }
      at::Tensor diff = (p.detach().to(at::kDouble) - ref->second.to(at::kDouble)).abs();
      at::Tensor large = ref_grads.at(name).abs() > kStepSignGrad;
      step_worst = std::max(step_worst, (diff * large).max().item<double>());
      flip_worst = std::max(flip_worst, (diff * large.logical_not()).max().item<double>());
      flips += (diff * large.logical_not() > kStepAtol).sum().item<int>();
    }
    step_pass = step_pass && step_worst <= kStepAtol && flip_worst <= kStepSignFlipAtol;
    out.push_back({"adamw/lora_after_1_step", step_worst, kStepAtol, step_pass,
                   absl::StrCat("where |grad| > ", kStepSignGrad, "; elsewhere max ", flip_worst, " (allowed ",
                                kStepSignFlipAtol, ", ", flips, " sign flips)")});
    {
      at::NoGradGuard no_grad;
      out.push_back(CompareScalar("adamw/loss_after_1_step",
                                  CausalLmLoss(model->Forward(b.ids, b.mask, b.positions), b.labels).item<double>(),
                                  lora.at("loss_after_1_adamw_step").get<double>(), kLossAtol));
    }

    // (5) merge W + scaling * B @ A with the adapter before the step.
    RETURN_IF_ERROR(LoadLoraWeights(adapter_dir, *model));
    model->set_training(false);
    model->MergeLora();
    const std::string target = lora.at("merged_target").get<std::string>();
    at::Tensor merged = model->weights().at(target).detach().reshape({-1});
    at::Tensor first8 = at::tensor(lora.at("merged_first8").get<std::vector<double>>()).to(at::kDouble);
    out.push_back(Compare("merge/first8", merged.slice(0, 0, 8), first8, {}, kMergedAtol, 0));
    out.push_back(CompareScalar("merge/sum", merged.to(at::kDouble).sum().item<double>(),
                                lora.at("merged_sum").get<double>(), 1e-4));
    {
      at::NoGradGuard no_grad;
      out.push_back(CompareScalar("merge/loss_with_merged_weights",
                                  CausalLmLoss(model->Forward(b.ids, b.mask, b.positions), b.labels).item<double>(),
                                  lora.at("loss_with_adapter").get<double>(), kLossAtol));
      model->UnmergeLora();
      at::Tensor restored = model->weights().at(target).detach();
      ASSIGN_OR_RETURN(auto base_weights, ReadTensorFile(dir + "/model.safetensors", "model.safetensors"));
      out.push_back(Compare("merge/unmerge_restores", restored, base_weights.at(target), {}, kMergedAtol, 0));
    }
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/inputs.json: ", e.what()));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(dir, ": torch error: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteLogits(const LogitsRun& run) {
  if (run.inputs_paths.size() != run.output_paths.size() || run.inputs_paths.empty()) {
    return absl::InvalidArgumentError("give as many output files as input files (at least one)");
  }
  ASSIGN_OR_RETURN(DeviceRequest request, ParseDeviceRequest(run.device));
  BuildOptions options;
  ASSIGN_OR_RETURN(options.device, ResolveDevice(request));
  ASSIGN_OR_RETURN(options.attention, ParseAttentionImpl(run.attention));
  if (run.dtype != "fp32" && run.dtype != "bf16") {
    return absl::InvalidArgumentError(absl::StrCat("dtype '", run.dtype, "': use fp32 or bf16"));
  }
  options.dtype = run.dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  if (!run.adapter_dir.empty()) {
    ASSIGN_OR_RETURN(std::string config_json, ReadText(run.model_dir + "/config.json"));
    ASSIGN_OR_RETURN(ModelArchitecture arch, ParseModelConfig(config_json, "", "config.json"));
    ASSIGN_OR_RETURN(options.lora, ReadLoraOptions(run.adapter_dir, arch));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<CausalLM> model, CausalLM::Load(run.model_dir, options));
  if (!run.adapter_dir.empty()) RETURN_IF_ERROR(LoadLoraWeights(run.adapter_dir, *model));
  for (size_t i = 0; i < run.inputs_paths.size(); ++i) {
    ASSIGN_OR_RETURN(auto inputs, ReadTensorFile(run.inputs_paths[i], "inputs"));
    if (inputs.count("input_ids") == 0) {
      return absl::InvalidArgumentError(absl::StrCat(run.inputs_paths[i], " has no input_ids tensor"));
    }
    auto input = [&](const char* name) {
      auto it = inputs.find(name);
      return it == inputs.end() ? at::Tensor() : it->second.to(options.device, at::kLong);
    };
    at::Tensor logits;
    try {
      at::NoGradGuard no_grad;
      logits = model->Forward(input("input_ids"), input("attention_mask"), input("position_ids")).cpu();
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("forward pass failed: ", e.what_without_backtrace()));
    }
    RETURN_IF_ERROR(WriteTensorFile(run.output_paths[i], {{"logits", logits}}));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ParityCheck>> RunHfParityChecks(const std::string& case_dir) {
  std::vector<ParityCheck> checks;
  RETURN_IF_ERROR(RunChecks(case_dir, checks));
  return checks;
}

}  // namespace tuneforge
