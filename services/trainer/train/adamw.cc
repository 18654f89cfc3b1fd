// The one TU that includes libtorch's optimizer headers.
#include "services/trainer/train/adamw.h"

#include <torch/optim/adamw.h>

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

}  // namespace tuneforge
