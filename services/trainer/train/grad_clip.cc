// clip_grad_norm_ in ATen: one norm per grad, the norm of those norms, one in-place scale per grad.
#include "services/trainer/train/grad_clip.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tuneforge {

namespace {
constexpr double kEpsilon = 1e-6;  // clip_grad_norm_'s guard against dividing by a zero norm
}  // namespace

absl::StatusOr<double> ClipGradNorm(const std::vector<at::Tensor>& parameters, double max_norm) {
  if (!(std::isfinite(max_norm) && max_norm > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_grad_norm is ", max_norm, "; use a finite value above 0 (1.0 is the usual choice)"));
  }
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : parameters) {
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0.0;

  // All per-grad norms go to the first grad's device so that the stack works when parameters are spread.
  const c10::Device norm_device = grads.front().device();
  std::vector<at::Tensor> norms;
  norms.reserve(grads.size());
  for (const at::Tensor& g : grads) {
    const at::ScalarType norm_dtype = g.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    norms.push_back(at::linalg_vector_norm(g, 2, c10::nullopt, false, norm_dtype).to(norm_device));
  }
  const at::Tensor total = at::linalg_vector_norm(at::stack(norms), 2);
  const double total_value = total.item<double>();
  if (!std::isfinite(total_value)) return total_value;

  const at::Tensor coefficient = (max_norm / (total + kEpsilon)).clamp_max(1.0);
  for (at::Tensor& g : grads) {
    g.mul_(coefficient.to(g.device(), g.scalar_type()));
  }
  return total_value;
}

}  // namespace tuneforge
