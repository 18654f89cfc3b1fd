// The fused forms against the plain ones they replace, on one device: RoPE, the gated MLP activation, the LoRA
// down-projection under dropout, the chunked loss, the fused AdamW step and the 8-bit moments' encoder. The unit
// tests check the same on the CPU; this program is how bench/gpu_check.sh checks them on CUDA, where there is no
// test framework. One CHECK line per comparison (name, dtype, max abs difference, tolerance, ok); exit status 1 when
// any comparison fails.
// Usage: fused_ops_check [--device=auto|cpu|cuda|cuda:N]
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <torch/csrc/autograd/autograd.h>

#include "services/trainer/model/device.h"
#include "services/trainer/model/fused_ops.h"
#include "services/trainer/train/adamw.h"
#include "services/trainer/train/causal_lm_loss.h"

namespace {

using tuneforge::Activation;

int failures = 0;

// Compares a with b (any dtype, on any device); the tolerance is relative to b's largest magnitude.
void Check(const std::string& name, at::ScalarType dtype, const at::Tensor& a, const at::Tensor& b,
           double relative_tolerance) {
  const at::Tensor x = a.detach().to(at::kCPU, at::kDouble), y = b.detach().to(at::kCPU, at::kDouble);
  const bool shapes = x.sizes() == y.sizes();
  const double diff = shapes ? (x - y).abs().max().item<double>() : INFINITY;
  const double tolerance = relative_tolerance * std::max(1e-30, y.abs().max().item<double>());
  const bool ok = shapes && diff <= tolerance;
  if (!ok) ++failures;
  std::printf("CHECK %s dtype=%s max_abs=%.3e tol=%.3e ok=%d\n", name.c_str(), c10::toString(dtype), diff, tolerance,
              ok ? 1 : 0);
}

double Tolerance(at::ScalarType dtype) { return dtype == at::kFloat ? 1e-5 : 2e-2; }

void Seed(const c10::Device& device, uint64_t seed) {
  at::Generator generator = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_current_seed(seed);
}

void CheckRope(const c10::Device& device, at::ScalarType dtype) {
  const auto opts = at::TensorOptions().device(device);
  const at::Tensor q_in = at::randn({2, 64, 8 * 64}, opts).to(dtype).requires_grad_(true);
  const at::Tensor k_in = at::randn({2, 64, 4 * 64}, opts).to(dtype).requires_grad_(true);
  const at::Tensor half = at::rand({2, 64, 32}, opts) * 6;
  const at::Tensor angles = at::cat({half, half}, -1);
  const at::Tensor cos = angles.cos().to(dtype).unsqueeze(1), sin = angles.sin().to(dtype).unsqueeze(1);
  auto heads = [](const at::Tensor& x, int64_t n) { return x.view({2, 64, n, 64}).transpose(1, 2); };
  const at::Tensor gq = at::randn({2, 8, 64, 64}, opts).to(dtype), gk = at::randn({2, 4, 64, 64}, opts).to(dtype);
  const auto [q, k] = tuneforge::ApplyRope(heads(q_in, 8), heads(k_in, 4), cos, sin);
  const auto fused = torch::autograd::grad({q, k}, {q_in, k_in}, {gq, gk});
  const at::Tensor q_ref = tuneforge::ApplyRopeReference(heads(q_in, 8), cos, sin);
  const at::Tensor k_ref = tuneforge::ApplyRopeReference(heads(k_in, 4), cos, sin);
  const auto reference = torch::autograd::grad({q_ref, k_ref}, {q_in, k_in}, {gq, gk});
  Check("rope/q", dtype, q, q_ref, Tolerance(dtype));
  Check("rope/k", dtype, k, k_ref, Tolerance(dtype));
  Check("rope/grad_q", dtype, fused[0], reference[0], Tolerance(dtype));
  Check("rope/grad_k", dtype, fused[1], reference[1], Tolerance(dtype));
}

void CheckGatedActivation(const c10::Device& device, at::ScalarType dtype) {
  const auto opts = at::TensorOptions().device(device);
  for (auto [activation, label] : {std::pair{Activation::kSilu, "silu"}, std::pair{Activation::kGeluTanh, "gelu"}}) {
    const at::Tensor gate = (at::randn({512, 1376}, opts) * 3).to(dtype).requires_grad_(true);
    const at::Tensor up = at::randn({512, 1376}, opts).to(dtype).requires_grad_(true);
    const at::Tensor g = at::randn({512, 1376}, opts).to(dtype);
    const at::Tensor fused = tuneforge::GatedActivation(gate, up, activation);
    const auto fused_grads = torch::autograd::grad({fused}, {gate, up}, {g});
    const at::Tensor plain = tuneforge::GatedActivationReference(gate, up, activation);
    const auto plain_grads = torch::autograd::grad({plain}, {gate, up}, {g});
    const std::string name = std::string("gated_") + label;
    Check(name, dtype, fused, plain, Tolerance(dtype));
    Check(name + "/grad_gate", dtype, fused_grads[0], plain_grads[0], Tolerance(dtype));
    Check(name + "/grad_up", dtype, fused_grads[1], plain_grads[1], Tolerance(dtype));
  }
}

void CheckDropoutLinear(const c10::Device& device, at::ScalarType dtype) {
  const auto opts = at::TensorOptions().device(device);
  const at::Tensor x = at::randn({4, 128, 512}, opts).to(dtype).requires_grad_(true);
  const at::Tensor a = (at::randn({16, 512}, opts) * 0.05).to(dtype).requires_grad_(true);
  const at::Tensor g = at::randn({4, 128, 16}, opts).to(dtype);
  const double p = 0.1;
  Seed(device, 99);
  const at::Tensor fused = tuneforge::DropoutLinear(x, a, p);
  const auto fused_grads = torch::autograd::grad({fused}, {x, a}, {g});
  // The reference draws the same noise from the same generator state, as dropout's composite form does.
  Seed(device, 99);
  const at::Tensor noise = at::empty_like(x).bernoulli_(1 - p).div_(1 - p);
  const at::Tensor plain = at::linear(x * noise, a);
  const auto plain_grads = torch::autograd::grad({plain}, {x, a}, {g});
  Check("dropout_linear", dtype, fused, plain, Tolerance(dtype));
  Check("dropout_linear/grad_x", dtype, fused_grads[0], plain_grads[0], Tolerance(dtype));
  Check("dropout_linear/grad_a", dtype, fused_grads[1], plain_grads[1], Tolerance(dtype));
}

void CheckChunkedLoss(const c10::Device& device, at::ScalarType dtype) {
  const auto opts = at::TensorOptions().device(device);
  const at::Tensor hidden = at::randn({4, 128, 256}, opts).to(dtype);
  const at::Tensor head = (at::randn({5000, 256}, opts) * 0.2).to(dtype);
  at::Tensor labels = at::randint(5000, {4, 128}, opts.dtype(at::kLong));
  labels.slice(1, 0, 16).fill_(tuneforge::kIgnoreLabel);  // a prompt
  std::vector<at::Tensor> losses, grads_hidden, grads_head;
  for (int64_t chunk : {0, 100}) {
    const at::Tensor h = hidden.clone().requires_grad_(true), w = head.clone().requires_grad_(true);
    const at::Tensor loss = chunk == 0 ? tuneforge::CausalLmLoss(at::linear(h, w), labels)
                                       : tuneforge::ChunkedCausalLmLoss(h, w, labels, chunk);
    const auto grads = torch::autograd::grad({loss}, {h, w});
    losses.push_back(loss);
    grads_hidden.push_back(grads[0]);
    grads_head.push_back(grads[1]);
  }
  Check("chunked_loss", dtype, losses[1], losses[0], dtype == at::kFloat ? 1e-6 : 1e-3);
  Check("chunked_loss/grad_hidden", dtype, grads_hidden[1], grads_hidden[0], Tolerance(dtype));
  Check("chunked_loss/grad_head", dtype, grads_head[1], grads_head[0], Tolerance(dtype));
}

// Three steps of the fused AdamW against torch.optim.AdamW's update written out in fp32.
void CheckAdamW(const c10::Device& device, at::ScalarType dtype) {
  const auto opts = at::TensorOptions().device(device);
  tuneforge::AdamWSettings s;
  s.lr = 1e-2;
  s.weight_decay = 0.1;
  std::vector<at::Tensor> params = {at::randn({64, 512}, opts).to(dtype).requires_grad_(true),
                                    at::randn({1376, 16}, opts).to(dtype).requires_grad_(true)};
  std::vector<at::Tensor> expected, m, v;
  for (const at::Tensor& p : params) {
    expected.push_back(p.detach().to(at::kFloat, false, /*copy=*/true));
    m.push_back(at::zeros_like(expected.back()));
    v.push_back(at::zeros_like(expected.back()));
  }
  tuneforge::AdamWOptimizer optimizer(params, s);
  for (int t = 1; t <= 3; ++t) {
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor g = at::randn(params[i].sizes(), opts).to(dtype);
      params[i].mutable_grad() = g;
      const at::Tensor gf = g.to(at::kFloat);
      expected[i] = expected[i] * (1 - s.lr * s.weight_decay);
      m[i] = m[i] + (gf - m[i]) * (1 - s.beta1);
      v[i] = v[i] * s.beta2 + gf * gf * (1 - s.beta2);
      const double bias1 = 1 - std::pow(s.beta1, t), bias2 = 1 - std::pow(s.beta2, t);
      expected[i] = expected[i] - (s.lr / bias1) * m[i] / (v[i].sqrt() / std::sqrt(bias2) + s.eps);
      if (dtype != at::kFloat) expected[i] = expected[i].to(dtype).to(at::kFloat);
    }
    optimizer.Step();
    optimizer.ZeroGrad();
  }
  for (size_t i = 0; i < params.size(); ++i) {
    Check("adamw/param" + std::to_string(i), dtype, params[i], expected[i], dtype == at::kFloat ? 1e-6 : 1e-2);
  }
}

// The 8-bit codes made on the device equal those made on the CPU for the same values.
void CheckEightBitCodes(const c10::Device& device) {
  const at::Tensor x = at::randn({100000}) * at::pow(10.0, at::rand({100000}) * -8);
  for (bool is_signed : {true, false}) {
    const at::Tensor values = is_signed ? x : x.abs();
    const auto [codes, scales] = tuneforge::EncodeEightBit(values.to(device), is_signed);
    const auto [cpu_codes, cpu_scales] = tuneforge::EncodeEightBit(values, is_signed);
    const std::string name = is_signed ? "adamw_8bit/codes_signed" : "adamw_8bit/codes_unsigned";
    Check(name, at::kByte, codes.to(at::kInt), cpu_codes.to(at::kInt), 0);
    Check(name + "/scales", at::kFloat, scales, cpu_scales, 0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string device_flag = "auto";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--device=", 9) == 0) {
      device_flag = argv[i] + 9;
    } else {
      std::fprintf(stderr, "usage: fused_ops_check [--device=auto|cpu|cuda|cuda:N]\n");
      return 2;
    }
  }
  auto request = tuneforge::ParseDeviceRequest(device_flag);
  auto device = request.ok() ? tuneforge::ResolveDevice(*request) : absl::StatusOr<c10::Device>(request.status());
  if (!device.ok()) {
    std::fprintf(stderr, "fused_ops_check: %s\n", std::string(device.status().message()).c_str());
    return 2;
  }
  at::manual_seed(1234);
  Seed(*device, 1234);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    CheckRope(*device, dtype);
    CheckGatedActivation(*device, dtype);
    CheckDropoutLinear(*device, dtype);
    CheckChunkedLoss(*device, dtype);
    CheckAdamW(*device, dtype);
  }
  CheckEightBitCodes(*device);
  std::printf("RESULT fused_ops_check device=%s failures=%d\n", device->str().c_str(), failures);
  return failures == 0 ? 0 : 1;
}
