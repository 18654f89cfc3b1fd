// AdamW as torch.optim.AdamW (decoupled weight decay), a thin owner of torch::optim::AdamW so that
// callers do not include <torch/optim.h>.
#ifndef TUNEFORGE_SERVICES_TRAINER_TRAIN_ADAMW_H_
#define TUNEFORGE_SERVICES_TRAINER_TRAIN_ADAMW_H_

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

namespace torch::optim {
class AdamW;
}  // namespace torch::optim

namespace tuneforge {

struct AdamWSettings {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // torch.optim.AdamW's default; libtorch's C++ default differs, so always set
};

class AdamWOptimizer {
 public:
  AdamWOptimizer(std::vector<at::Tensor> parameters, const AdamWSettings& settings);
  ~AdamWOptimizer();
  AdamWOptimizer(const AdamWOptimizer&) = delete;
  AdamWOptimizer& operator=(const AdamWOptimizer&) = delete;

  void Step();
  void ZeroGrad();
  void SetLearningRate(double lr);  // e.g. from a schedule, before Step()

 private:
  std::unique_ptr<torch::optim::AdamW> optimizer_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TRAIN_ADAMW_H_
