// AdamW (see adamw.h). The update of one tensor is torch.optim.AdamW's:
//   p *= 1 - lr * wd;  m = lerp(m, g, 1 - b1);  v = b2 * v + (1 - b2) * g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#include "services/trainer/train/adamw.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

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
  // For the CPU encoder: the midpoints, and for each value of a float's top 16 bits the number of midpoints below
  // every float that starts with them; a code is that count plus the few midpoints still below the value.
  std::vector<float> mids;
  std::vector<uint8_t> below;  // [65536]
};

Codebook MakeCodebook(bool is_signed) {
  Codebook c;
  c.values = DynamicMap(is_signed);
  c.midpoints = (c.values.slice(0, 1) + c.values.slice(0, 0, -1)) / 2;
  c.mids.assign(c.midpoints.data_ptr<float>(), c.midpoints.data_ptr<float>() + c.midpoints.numel());
  c.below.resize(65536);
  for (uint32_t key = 0; key < 65536; ++key) {
    // The smallest float with these top bits: the low bits all zero for a positive one, all one for a negative one.
    const uint32_t bits = (key << 16) | ((key & 0x8000u) != 0 ? 0xFFFFu : 0u);
    float least;
    std::memcpy(&least, &bits, sizeof least);
    const int64_t count = least != least ? 0 : std::lower_bound(c.mids.begin(), c.mids.end(), least) - c.mids.begin();
    c.below[key] = static_cast<uint8_t>(count);
  }
  return c;
}

const Codebook& Map(bool is_signed) {
  static const Codebook signed_map = MakeCodebook(true);
  static const Codebook unsigned_map = MakeCodebook(false);
  return is_signed ? signed_map : unsigned_map;
}

// Encode on the CPU: per block its absmax, then each entry's code by the table and at most a few comparisons; the
// same codes as bucketize (the number of midpoints strictly below the scaled value).
std::pair<at::Tensor, at::Tensor> EncodeOnCpu(const at::Tensor& x, bool is_signed) {
  const int64_t n = x.numel(), blocks = (n + kBlock - 1) / kBlock;
  const at::Tensor flat = x.reshape({-1}).to(at::kFloat).contiguous();
  at::Tensor codes = at::empty({blocks * kBlock}, x.options().dtype(at::kByte));
  at::Tensor scales = at::empty({blocks}, x.options().dtype(at::kFloat));
  const float* in = flat.data_ptr<float>();
  uint8_t* out = codes.data_ptr<uint8_t>();
  float* scale_out = scales.data_ptr<float>();
  const Codebook& map = Map(is_signed);
  at::parallel_for(0, blocks, 16, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      const int64_t start = b * kBlock, end = std::min(n, start + kBlock);
      float absmax = 0;
      for (int64_t i = start; i < end; ++i) absmax = std::max(absmax, std::abs(in[i]));
      const float scale = absmax > 0 ? absmax : 1.0f;
      scale_out[b] = scale;
      for (int64_t i = start; i < start + kBlock; ++i) {
        const float v = (i < end ? in[i] : 0.0f) / scale;
        uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        int code = map.below[bits >> 16];
        while (code < 255 && map.mids[code] < v) ++code;
        out[i] = static_cast<uint8_t>(code);
      }
    }
  });
  return {codes, scales};
}

// x (any shape) -> uint8 codes [blocks * kBlock] and fp32 absmax scales [blocks] (1 for an all-zero block).
std::pair<at::Tensor, at::Tensor> Encode(const at::Tensor& x, bool is_signed) {
  if (x.is_cpu()) return EncodeOnCpu(x, is_signed);
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

std::pair<at::Tensor, at::Tensor> EncodeEightBit(const at::Tensor& x, bool is_signed) { return Encode(x, is_signed); }

at::Tensor EightBitMidpoints(bool is_signed) { return Map(is_signed).midpoints.clone(); }

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
  // By device and dtype, for the fused kernel; 8-bit states also by step count, which sets the bias corrections.
  std::map<std::tuple<std::string, int, int64_t>, std::vector<Slot*>> groups;
  const bool eight_bit = settings_.states == AdamWStates::kEightBit;
  for (Slot& slot : slots_) {
    if (!slot.param.grad().defined()) continue;  // as torch: a parameter without a gradient is left alone
    if (slot.step == 0 && !slot.exp_avg.defined()) InitSlot(slot, at::Tensor(), at::Tensor());
    ++slot.step;
    groups[{slot.param.device().str(), static_cast<int>(slot.param.scalar_type()), eight_bit ? slot.step : 0}]
        .push_back(&slot);
  }
  for (auto& [key, slots] : groups) eight_bit ? StepEightBit(slots) : StepFull(slots);
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

void AdamWOptimizer::StepEightBit(std::vector<Slot*>& slots) {
  // Every slot's codes are whole blocks, so the slots side by side are one run of blocks: decoded, updated and encoded
  // again in a fixed number of operations, however many tensors there are. The full-size fp32 moments exist only for
  // the step's duration.
  std::vector<at::Tensor> params, grads, avg_codes, avg_scales, sq_codes, sq_scales;
  for (Slot* s : slots) {
    const int64_t pad = s->exp_avg.numel() - s->param.numel();
    params.push_back(s->param.detach().reshape({-1}));
    grads.push_back(s->param.grad().reshape({-1}));
    if (pad > 0) {
      params.push_back(at::zeros({pad}, s->param.options()));
      grads.push_back(at::zeros({pad}, s->param.grad().options()));
    }
    avg_codes.push_back(s->exp_avg);
    avg_scales.push_back(s->avg_scale);
    sq_codes.push_back(s->exp_avg_sq);
    sq_scales.push_back(s->avg_sq_scale);
  }
  at::Tensor p = at::cat(params).to(at::kFloat);
  const at::Tensor g = at::cat(grads).to(at::kFloat);
  at::Tensor m = Decode(at::cat(avg_codes), at::cat(avg_scales), true, p);
  at::Tensor v = Decode(at::cat(sq_codes), at::cat(sq_scales), false, p);
  AdamWUpdate(p, g, m, v, slots.front()->step, settings_);
  const auto [m_codes, m_scales] = Encode(m, true);
  const auto [v_codes, v_scales] = Encode(v, false);
  std::vector<at::Tensor> targets, sources;
  int64_t offset = 0, block = 0;
  for (Slot* s : slots) {
    const int64_t padded = s->exp_avg.numel(), blocks = padded / kBlock;
    targets.push_back(s->param);
    sources.push_back(p.narrow(0, offset, s->param.numel()).view(s->param.sizes()));
    s->exp_avg = m_codes.narrow(0, offset, padded);
    s->exp_avg_sq = v_codes.narrow(0, offset, padded);
    s->avg_scale = m_scales.narrow(0, block, blocks);
    s->avg_sq_scale = v_scales.narrow(0, block, blocks);
    offset += padded;
    block += blocks;
  }
  at::_foreach_copy_(targets, sources);
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
