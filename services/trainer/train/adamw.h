// AdamW as torch.optim.AdamW (decoupled weight decay), a thin owner of torch::optim::AdamW so that
// callers do not include <torch/optim.h>.
#ifndef TUNEFORGE_SERVICES_TRAINER_TRAIN_ADAMW_H_
#define TUNEFORGE_SERVICES_TRAINER_TRAIN_ADAMW_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"

namespace torch::optim {
class AdamW;
}  // namespace torch::optim

namespace tuneforge {

// The optimizer's state of one parameter, for checkpoints: torch.optim.AdamW's "step", "exp_avg" and
// "exp_avg_sq". Before the parameter's first update step is 0 and the tensors are undefined.
struct AdamWParamState {
  int64_t step = 0;
  at::Tensor exp_avg;     // same shape as the parameter
  at::Tensor exp_avg_sq;  // same shape as the parameter
};

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

  // One entry per parameter, in the order given to the constructor; the tensors are copies.
  std::vector<AdamWParamState> ExportState() const;
  // Restores what ExportState gave (tensors are copied and moved to each parameter's device and dtype), so the
  // next Step() is the one the exporting optimizer would have taken. INVALID_ARGUMENT for a wrong count or a
  // shape that does not match its parameter; entries with step 0 clear that parameter's state.
  absl::Status ImportState(const std::vector<AdamWParamState>& state);

 private:
  std::unique_ptr<torch::optim::AdamW> optimizer_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TRAIN_ADAMW_H_
