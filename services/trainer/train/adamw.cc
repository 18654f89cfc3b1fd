// The one TU that includes libtorch's optimizer headers.
#include "services/trainer/train/adamw.h"

#include <torch/optim/adamw.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace tuneforge {

AdamWOptimizer::AdamWOptimizer(std::vector<at::Tensor> parameters, const AdamWSettings& settings) {
  torch::optim::AdamWOptions options(settings.lr);
  options.betas({settings.beta1, settings.beta2}).eps(settings.eps).weight_decay(settings.weight_decay).amsgrad(false);
  optimizer_ = std::make_unique<torch::optim::AdamW>(std::move(parameters), options);
}

AdamWOptimizer::~AdamWOptimizer() = default;

void AdamWOptimizer::Step() { optimizer_->step(); }

void AdamWOptimizer::ZeroGrad() { optimizer_->zero_grad(); }

void AdamWOptimizer::SetLearningRate(double lr) {
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
}

namespace {

// torch::optim (2.x) keys a parameter's state by the address of its TensorImpl.
void* StateKey(const at::Tensor& p) { return p.unsafeGetTensorImpl(); }

}  // namespace

std::vector<AdamWParamState> AdamWOptimizer::ExportState() const {
  std::vector<AdamWParamState> out;
  for (const auto& group : optimizer_->param_groups()) {
    for (const at::Tensor& p : group.params()) {
      AdamWParamState s;
      auto it = optimizer_->state().find(StateKey(p));
      if (it != optimizer_->state().end()) {
        const auto& state = static_cast<const torch::optim::AdamWParamState&>(*it->second);
        s.step = state.step();
        s.exp_avg = state.exp_avg().detach().clone();
        s.exp_avg_sq = state.exp_avg_sq().detach().clone();
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

absl::Status AdamWOptimizer::ImportState(const std::vector<AdamWParamState>& state) {
  std::vector<at::Tensor> params;
  for (const auto& group : optimizer_->param_groups()) {
    for (const at::Tensor& p : group.params()) params.push_back(p);
  }
  if (state.size() != params.size()) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer state has ", state.size(), " entries, the optimizer ",
                                                   params.size(), " parameters"));
  }
  for (size_t i = 0; i < params.size(); ++i) {
    const AdamWParamState& s = state[i];
    if (s.step == 0) continue;
    if (!s.exp_avg.defined() || !s.exp_avg_sq.defined() || s.exp_avg.sizes() != params[i].sizes() ||
        s.exp_avg_sq.sizes() != params[i].sizes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer state of parameter ", i, " does not match the parameter's shape"));
    }
  }
  auto& table = optimizer_->state();
  for (size_t i = 0; i < params.size(); ++i) {
    const AdamWParamState& s = state[i];
    void* const key = StateKey(params[i]);
    if (s.step == 0) {
      table.erase(key);
      continue;
    }
    auto restored = std::make_unique<torch::optim::AdamWParamState>();
    restored->step(s.step);
    restored->exp_avg(s.exp_avg.detach().to(params[i].options(), /*non_blocking=*/false, /*copy=*/true));
    restored->exp_avg_sq(s.exp_avg_sq.detach().to(params[i].options(), /*non_blocking=*/false, /*copy=*/true));
    table[key] = std::move(restored);
  }
  return absl::OkStatus();
}

}  // namespace tuneforge
