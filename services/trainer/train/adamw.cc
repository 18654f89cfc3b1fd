// AdamW (see adamw.h). The update of one tensor is torch.optim.AdamW's:
//   p *= 1 - lr * wd;  m = lerp(m, g, 1 - b1);  v = b2 * v + (1 - b2) * g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#include "services/trainer/train/adamw.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tuneforge {
namespace {

constexpr int64_t kBlock = 256;  // entries per 8-bit scale

// The 8-bit codes' values, sorted, in [-1, 1] (signed, for the first moment) or [0, 1] (unsigned, for the second):
// for each decade d = 0..6, the midpoints of 2^d (signed; mirrored for negatives) or 2^(d+1) (unsigned) equal parts
// of [0.1, 1], times 10^(d-6), then 0 and 1. Fine steps near zero, coarse near the block's largest value: the
// moments span orders of magnitude within a block. The signed map has -1 in place of its smallest negative value,
// so that both signs reach the block's absmax: then decoding and encoding again gives back the same codes.
at::Tensor DynamicMap(bool is_signed) {
  std::vector<float> values;
  for (int d = 0; d < 7; ++d) {
    const int parts = is_signed ? (1 << d) : (1 << (d + 1));
    const double scale = std::pow(10.0, d - 6);
    for (int i = 0; i < parts; ++i) {
      const double mid = 0.1 + 0.9 * (i + 0.5) / parts;
      values.push_back(static_cast<float>(scale * mid));
      if (is_signed) values.push_back(static_cast<float>(d == 0 ? -1.0 : -scale * mid));
    }
  }
  values.push_back(0.0f);
  values.push_back(1.0f);
  std::sort(values.begin(), values.end());
  return at::tensor(values, at::TensorOptions().dtype(at::kFloat));
}

struct Codebook {
  at::Tensor values;      // [256]
  at::Tensor midpoints;   // [255], between neighbouring values: bucketize against them finds the nearest value
};

const Codebook& Map(bool is_signed) {
  static const Codebook signed_map = [] {
    const at::Tensor v = DynamicMap(true);
    return Codebook{v, (v.slice(0, 1) + v.slice(0, 0, -1)) / 2};
  }();
  static const Codebook unsigned_map = [] {
    const at::Tensor v = DynamicMap(false);
    return Codebook{v, (v.slice(0, 1) + v.slice(0, 0, -1)) / 2};
  }();
  return is_signed ? signed_map : unsigned_map;
}

// x (any shape) -> uint8 codes [blocks * kBlock] and fp32 absmax scales [blocks] (1 for an all-zero block).
std::pair<at::Tensor, at::Tensor> Encode(const at::Tensor& x, bool is_signed) {
  const int64_t n = x.numel(), blocks = (n + kBlock - 1) / kBlock;
  at::Tensor padded = at::zeros({blocks * kBlock}, x.options().dtype(at::kFloat));
  padded.narrow(0, 0, n).copy_(x.reshape({-1}));
  const at::Tensor b = padded.view({blocks, kBlock});
  at::Tensor scale = b.abs().amax(1);
  scale = at::where(scale > 0, scale, at::ones_like(scale));
  const Codebook& map = Map(is_signed);
  const at::Tensor codes = at::bucketize(b / scale.unsqueeze(1), map.midpoints.to(x.device()));
  return {codes.to(at::kByte).view({-1}), scale};
}

// The inverse of Encode, as fp32 of `like`'s shape.
at::Tensor Decode(const at::Tensor& codes, const at::Tensor& scale, bool is_signed, const at::Tensor& like) {
  const Codebook& map = Map(is_signed);
  const at::Tensor values = map.values.to(codes.device()).index_select(0, codes.to(at::kLong));
  return (values.view({scale.size(0), kBlock}) * scale.unsqueeze(1)).view({-1}).narrow(0, 0, like.numel()).view(
      like.sizes());
}

// One AdamW update of p from g with moments m and v (all the same dtype; in place), at step t (1-based).
void AdamWUpdate(at::Tensor& p, const at::Tensor& g, at::Tensor& m, at::Tensor& v, int64_t t,
                 const AdamWSettings& s) {
  p.mul_(1 - s.lr * s.weight_decay);
  m.lerp_(g, 1 - s.beta1);
  v.mul_(s.beta2).addcmul_(g, g, 1 - s.beta2);
  const double bias1 = 1 - std::pow(s.beta1, static_cast<double>(t));
  const double bias2 = 1 - std::pow(s.beta2, static_cast<double>(t));
  const at::Tensor denom = (v.sqrt() / std::sqrt(bias2)).add_(s.eps);
  p.addcdiv_(m, denom, -s.lr / bias1);
}

}  // namespace

absl::StatusOr<AdamWStates> ParseAdamWStates(std::string_view name) {
  if (name == "adamw") return AdamWStates::kFull;
  if (name == "adamw_8bit") return AdamWStates::kEightBit;
  return absl::InvalidArgumentError(absl::StrCat(
      "optimizer '", std::string(name),
      "' is not one we have; use adamw (torch.optim.AdamW, fused) or adamw_8bit (8-bit moments, 4x less state)"));
}

AdamWOptimizer::AdamWOptimizer(std::vector<at::Tensor> parameters, const AdamWSettings& settings)
    : settings_(settings) {
  for (at::Tensor& p : parameters) slots_.push_back(Slot{std::move(p)});
}

AdamWOptimizer::~AdamWOptimizer() = default;

void AdamWOptimizer::InitSlot(Slot& slot, const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq) const {
  const at::Tensor& p = slot.param;
  slot.step_tensor = at::full({}, static_cast<double>(slot.step), p.options().dtype(at::kFloat));
  if (settings_.states == AdamWStates::kFull) {
    slot.exp_avg = exp_avg.defined() ? exp_avg.detach().to(p.options(), false, /*copy=*/true) : at::zeros_like(p);
    slot.exp_avg_sq =
        exp_avg_sq.defined() ? exp_avg_sq.detach().to(p.options(), false, /*copy=*/true) : at::zeros_like(p);
    return;
  }
  const at::Tensor zeros = at::zeros(p.sizes(), p.options().dtype(at::kFloat));
  std::tie(slot.exp_avg, slot.avg_scale) =
      Encode(exp_avg.defined() ? exp_avg.detach().to(p.device(), at::kFloat) : zeros, /*is_signed=*/true);
  std::tie(slot.exp_avg_sq, slot.avg_sq_scale) =
      Encode(exp_avg_sq.defined() ? exp_avg_sq.detach().to(p.device(), at::kFloat) : zeros, /*is_signed=*/false);
}

void AdamWOptimizer::Step() {
  at::NoGradGuard no_grad;
  std::map<std::pair<std::string, int>, std::vector<Slot*>> groups;  // by device and dtype, for the fused kernel
  for (Slot& slot : slots_) {
    if (!slot.param.grad().defined()) continue;  // as torch: a parameter without a gradient is left alone
    if (slot.step == 0 && !slot.exp_avg.defined()) InitSlot(slot, at::Tensor(), at::Tensor());
    ++slot.step;
    if (settings_.states == AdamWStates::kEightBit) {
      StepEightBit(slot);
      continue;
    }
    groups[{slot.param.device().str(), static_cast<int>(slot.param.scalar_type())}].push_back(&slot);
  }
  for (auto& [key, slots] : groups) StepFull(slots);
}

void AdamWOptimizer::StepFull(std::vector<Slot*>& slots) {
  std::vector<at::Tensor> params, grads, avgs, avg_sqs, steps;
  for (Slot* s : slots) {
    s->step_tensor.fill_(static_cast<double>(s->step));
    params.push_back(s->param);
    grads.push_back(s->param.grad());
    avgs.push_back(s->exp_avg);
    avg_sqs.push_back(s->exp_avg_sq);
    steps.push_back(s->step_tensor);
  }
  static bool fused_missing = false;  // a torch without the fused kernel for this device: the composition below
  if (!fused_missing) {
    try {
      at::_fused_adamw_(params, grads, avgs, avg_sqs, /*max_exp_avg_sqs=*/{}, steps, settings_.lr, settings_.beta1,
                        settings_.beta2, settings_.weight_decay, settings_.eps, /*amsgrad=*/false, /*maximize=*/false);
      return;
    } catch (const c10::Error&) {
      fused_missing = true;
    }
  }
  for (Slot* s : slots) AdamWUpdate(s->param, s->param.grad(), s->exp_avg, s->exp_avg_sq, s->step, settings_);
}

void AdamWOptimizer::StepEightBit(Slot& slot) {
  // Decoded to fp32 for the update, encoded again after it: the full-size moments exist one tensor at a time.
  at::Tensor p = slot.param.to(at::kFloat);
  const at::Tensor g = slot.param.grad().to(at::kFloat);
  at::Tensor m = Decode(slot.exp_avg, slot.avg_scale, true, slot.param);
  at::Tensor v = Decode(slot.exp_avg_sq, slot.avg_sq_scale, false, slot.param);
  AdamWUpdate(p, g, m, v, slot.step, settings_);
  if (!p.is_same(slot.param)) slot.param.copy_(p);
  std::tie(slot.exp_avg, slot.avg_scale) = Encode(m, true);
  std::tie(slot.exp_avg_sq, slot.avg_sq_scale) = Encode(v, false);
}

void AdamWOptimizer::ZeroGrad() {
  for (Slot& slot : slots_) slot.param.mutable_grad() = at::Tensor();
}

void AdamWOptimizer::SetLearningRate(double lr) { settings_.lr = lr; }

int64_t AdamWOptimizer::StateBytes() const {
  int64_t bytes = 0;
  for (const Slot& s : slots_) {
    for (const at::Tensor* t : {&s.exp_avg, &s.exp_avg_sq, &s.avg_scale, &s.avg_sq_scale}) {
      if (t->defined()) bytes += t->numel() * static_cast<int64_t>(t->element_size());
    }
  }
  return bytes;
}

std::vector<AdamWParamState> AdamWOptimizer::ExportState() const {
  std::vector<AdamWParamState> out;
  for (const Slot& s : slots_) {
    AdamWParamState state;
    if (s.step > 0) {
      state.step = s.step;
      if (settings_.states == AdamWStates::kFull) {
        state.exp_avg = s.exp_avg.detach().clone();
        state.exp_avg_sq = s.exp_avg_sq.detach().clone();
      } else {
        state.exp_avg = Decode(s.exp_avg, s.avg_scale, true, s.param);
        state.exp_avg_sq = Decode(s.exp_avg_sq, s.avg_sq_scale, false, s.param);
      }
    }
    out.push_back(std::move(state));
  }
  return out;
}

absl::Status AdamWOptimizer::ImportState(const std::vector<AdamWParamState>& state) {
  if (state.size() != slots_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer state has ", state.size(), " entries, the optimizer ",
                                                   slots_.size(), " parameters"));
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    const AdamWParamState& s = state[i];
    if (s.step == 0) continue;
    if (!s.exp_avg.defined() || !s.exp_avg_sq.defined() || s.exp_avg.sizes() != slots_[i].param.sizes() ||
        s.exp_avg_sq.sizes() != slots_[i].param.sizes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer state of parameter ", i, " does not match the parameter's shape"));
    }
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    slot.step = state[i].step;
    slot.exp_avg = slot.exp_avg_sq = slot.avg_scale = slot.avg_sq_scale = slot.step_tensor = at::Tensor();
    if (slot.step > 0) InitSlot(slot, state[i].exp_avg, state[i].exp_avg_sq);
  }
  return absl::OkStatus();
}

}  // namespace tuneforge
