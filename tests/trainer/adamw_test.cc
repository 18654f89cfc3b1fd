// AdamWOptimizer: the fused update equals torch.optim.AdamW's formula step after step (fp32 and bf16; hf_parity
// checks a step against torch.optim.AdamW itself), and 8-bit moments follow the full-precision run closely in a
// quarter of the memory and survive a checkpoint round trip exactly.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/trainer/train/adamw.h"
#include "tests/support/status_matchers.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;

std::vector<at::Tensor> Params(at::ScalarType dtype, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<at::Tensor> out;
  for (std::vector<int64_t> shape : {std::vector<int64_t>{16, 40}, {40, 16}, {7}, {300}}) {
    out.push_back(at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)).to(dtype).requires_grad_(true));
  }
  return out;
}

// torch.optim.AdamW's single-tensor update, written out (fp32 math, the moments in the parameter's dtype).
struct Reference {
  explicit Reference(const AdamWSettings& s) : s(s) {}
  void Step(std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads) {
    if (m.empty()) {
      for (const at::Tensor& p : params) {
        m.push_back(at::zeros_like(p));
        v.push_back(at::zeros_like(p));
      }
    }
    ++t;
    const double bias1 = 1 - std::pow(s.beta1, t), bias2 = 1 - std::pow(s.beta2, t);
    for (size_t i = 0; i < params.size(); ++i) {
      params[i] = params[i] * (1 - s.lr * s.weight_decay);
      m[i] = m[i] + (grads[i] - m[i]) * (1 - s.beta1);
      v[i] = v[i] * s.beta2 + grads[i] * grads[i] * (1 - s.beta2);
      params[i] = params[i] - (s.lr / bias1) * m[i] / (v[i].sqrt() / std::sqrt(bias2) + s.eps);
    }
  }
  AdamWSettings s;
  std::vector<at::Tensor> m, v;
  int t = 0;
};

TEST(AdamWTest, FusedStepsEqualTorchsUpdate) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    AdamWSettings settings;
    settings.lr = 1e-2;
    settings.weight_decay = 0.1;
    std::vector<at::Tensor> params = Params(dtype, 1);
    std::vector<at::Tensor> expected;
    for (const at::Tensor& p : params) expected.push_back(p.detach().to(at::kFloat, false, /*copy=*/true));
    Reference reference(settings);
    AdamWOptimizer optimizer(params, settings);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(2);
    for (int step = 0; step < 6; ++step) {
      std::vector<at::Tensor> grads;
      for (at::Tensor& p : params) {
        p.mutable_grad() = at::randn(p.sizes(), gen, at::TensorOptions().dtype(at::kFloat)).to(dtype);
        grads.push_back(p.grad().to(at::kFloat));
      }
      optimizer.Step();
      optimizer.ZeroGrad();
      reference.Step(expected, grads);
      if (dtype == at::kBFloat16) {  // the reference keeps the parameter's dtype too
        for (at::Tensor& e : expected) e = e.to(at::kBFloat16).to(at::kFloat);
      }
      for (size_t i = 0; i < params.size(); ++i) {
        EXPECT_FALSE(params[i].grad().defined());
        const double tolerance = dtype == at::kFloat ? 1e-6 : 2e-2;
        EXPECT_LT((params[i].detach().to(at::kFloat) - expected[i]).abs().max().item<double>(), tolerance)
            << "step " << step << " tensor " << i;
      }
    }
    EXPECT_EQ(optimizer.StateBytes(), 2 * (640 + 640 + 7 + 300) * static_cast<int64_t>(c10::elementSize(dtype)));
  }
}

TEST(AdamWTest, AParameterWithoutAGradientIsLeftAlone) {
  std::vector<at::Tensor> params = Params(at::kFloat, 3);
  const at::Tensor before = params[2].detach().clone();
  AdamWSettings settings;
  AdamWOptimizer optimizer(params, settings);
  for (size_t i = 0; i < params.size(); ++i) {
    if (i != 2) params[i].mutable_grad() = at::ones_like(params[i]);
  }
  optimizer.Step();
  EXPECT_TRUE(at::equal(params[2].detach(), before));
  const std::vector<AdamWParamState> state = optimizer.ExportState();
  ASSERT_EQ(state.size(), 4u);
  EXPECT_EQ(state[0].step, 1);
  EXPECT_EQ(state[2].step, 0);
  EXPECT_FALSE(state[2].exp_avg.defined());
}

// A least-squares fit with one solution: 8-bit moments reach the full-precision loss within a few percent and about
// the same weights, with a quarter of the state memory.
TEST(AdamWTest, EightBitMomentsFollowFullPrecision) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4);
  const at::Tensor x = at::randn({512, 64}, gen, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor target = at::randn({48, 64}, gen, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor y = at::matmul(x, target.t());
  const at::Tensor start = at::randn({48, 64}, gen, at::TensorOptions().dtype(at::kFloat)) * 0.1;
  std::vector<double> final_loss;
  std::vector<at::Tensor> final_w;
  std::vector<int64_t> bytes;
  for (AdamWStates states : {AdamWStates::kFull, AdamWStates::kEightBit}) {
    at::Tensor w = start.clone().requires_grad_(true);
    AdamWSettings settings;
    settings.lr = 2e-2;
    settings.weight_decay = 0;
    settings.states = states;
    AdamWOptimizer optimizer({w}, settings);
    double loss = 0;
    for (int step = 0; step < 200; ++step) {
      at::Tensor l = (at::matmul(x, w.t()) - y).pow(2).mean();
      l.backward();
      optimizer.Step();
      optimizer.ZeroGrad();
      loss = l.item<double>();
    }
    final_loss.push_back(loss);
    final_w.push_back(w.detach().clone());
    bytes.push_back(optimizer.StateBytes());
  }
  EXPECT_LT(final_loss[0], 0.05 * 64);  // it trains: from about 64 (|target row|^2)
  EXPECT_NEAR(final_loss[1], final_loss[0], 0.05 * final_loss[0] + 1e-3);
  // The two runs' weights: within a few percent of how far they moved (about 3; seen 3.7%).
  const double moved = (final_w[0] - start).abs().max().item<double>();
  EXPECT_LT((final_w[1] - final_w[0]).abs().max().item<double>(), 0.06 * moved);
  // 3072 entries: 2 x 4 bytes each in fp32; 2 x (1 byte each + 4 bytes per 256) in 8 bits.
  EXPECT_EQ(bytes[0], 2 * 3072 * 4);
  EXPECT_EQ(bytes[1], 2 * (3072 + 12 * 4));
}

TEST(AdamWTest, EightBitStateSurvivesACheckpointExactly) {
  std::vector<at::Tensor> params = Params(at::kFloat, 5);
  std::vector<at::Tensor> copies;
  for (const at::Tensor& p : params) copies.push_back(p.detach().clone().requires_grad_(true));
  AdamWSettings settings;
  settings.states = AdamWStates::kEightBit;
  AdamWOptimizer first(params, settings);
  auto set_grads = [&](std::vector<at::Tensor>& ps, uint64_t seed) {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
    for (at::Tensor& p : ps) p.mutable_grad() = at::randn(p.sizes(), g, at::TensorOptions().dtype(at::kFloat));
  };
  for (uint64_t step = 0; step < 3; ++step) {
    set_grads(params, step);
    first.Step();
  }
  for (size_t i = 0; i < params.size(); ++i) copies[i].detach().copy_(params[i].detach());
  const std::vector<AdamWParamState> saved = first.ExportState();
  AdamWOptimizer second(copies, settings);
  ASSERT_THAT(second.ImportState(saved), IsOk());
  const std::vector<AdamWParamState> again = second.ExportState();
  ASSERT_EQ(again.size(), saved.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    EXPECT_EQ(again[i].step, 3);
    EXPECT_TRUE(at::equal(again[i].exp_avg, saved[i].exp_avg)) << i;
    EXPECT_TRUE(at::equal(again[i].exp_avg_sq, saved[i].exp_avg_sq)) << i;
    EXPECT_GT(saved[i].exp_avg_sq.max().item<double>(), 0) << i;
  }
  set_grads(params, 9);
  set_grads(copies, 9);
  first.Step();
  second.Step();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(at::equal(params[i].detach(), copies[i].detach())) << i;

  std::vector<AdamWParamState> wrong = saved;
  wrong[1].exp_avg = at::zeros({3});
  EXPECT_THAT(second.ImportState(wrong).message(), HasSubstr("parameter 1 does not match"));
}

TEST(AdamWTest, OptimizerNames) {
  EXPECT_EQ(*ParseAdamWStates("adamw"), AdamWStates::kFull);
  EXPECT_EQ(*ParseAdamWStates("adamw_8bit"), AdamWStates::kEightBit);
  EXPECT_THAT(ParseAdamWStates("sgd").status().message(), HasSubstr("use adamw"));
}

}  // namespace
}  // namespace tuneforge
