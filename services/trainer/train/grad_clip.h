// Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_ (norm_type 2).
#ifndef TUNEFORGE_SERVICES_TRAINER_TRAIN_GRAD_CLIP_H_
#define TUNEFORGE_SERVICES_TRAINER_TRAIN_GRAD_CLIP_H_

#include <ATen/core/Tensor.h>

#include <vector>

#include "absl/status/statusor.h"

namespace tuneforge {

// Scales every defined grad of `parameters` in place by min(1, max_norm / (total + 1e-6)), where total is
// the L2 norm of all those grads together, and returns total as it was before clipping (0 when no parameter
// has a grad). When total is inf or NaN the grads are left as they are and total is returned, so the caller
// can report the step (torch would instead scale them to 0 or NaN). Norms are taken in fp32 (fp64 for
// fp64 grads) whatever the grad dtype. INVALID_ARGUMENT naming max_grad_norm unless it is finite and > 0.
absl::StatusOr<double> ClipGradNorm(const std::vector<at::Tensor>& parameters, double max_norm);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TRAIN_GRAD_CLIP_H_
