// AdamWOptimizer: the fused update equals torch.optim.AdamW's formula step after step (fp32 and bf16; hf_parity
// checks a step against torch.optim.AdamW itself), and 8-bit moments follow the full-precision run closely in a
// quarter of the memory and survive a checkpoint round trip exactly.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <memory>
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

// A learning rate and weight decay large enough that every step moves the parameters visibly.
AdamWSettings StepSettings(AdamWStates states) {
  AdamWSettings settings;
  settings.lr = 1e-2;
  settings.weight_decay = 0.1;
  settings.states = states;
  return settings;
}

TEST(AdamWTest, FusedStepsEqualTorchsUpdate) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const AdamWSettings settings = StepSettings(AdamWStates::kFull);
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

// The 8-bit step runs all tensors of a device, dtype and step count together: the same parameters and states as an
// optimizer per tensor, in fp32 and bf16, also when one tensor skips a step (then its step count differs and it is
// stepped apart) and for tensors that are not whole blocks (7 and 300 entries).
TEST(AdamWTest, EightBitTensorsStepTogetherAsTheyWouldAlone) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const AdamWSettings settings = StepSettings(AdamWStates::kEightBit);
    std::vector<at::Tensor> together = Params(dtype, 6), alone = Params(dtype, 6);
    AdamWOptimizer group(together, settings);
    std::vector<std::unique_ptr<AdamWOptimizer>> singles;
    for (const at::Tensor& p : alone) singles.push_back(std::make_unique<AdamWOptimizer>(std::vector<at::Tensor>{p},
                                                                                          settings));
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
    for (int step = 0; step < 5; ++step) {
      for (size_t i = 0; i < together.size(); ++i) {
        if (step == 2 && i == 1) continue;  // tensor 1 has no gradient at step 2
        const at::Tensor g = at::randn(together[i].sizes(), gen, at::TensorOptions().dtype(at::kFloat)).to(dtype);
        together[i].mutable_grad() = g;
        alone[i].mutable_grad() = g.clone();
      }
      group.Step();
      group.ZeroGrad();
      for (auto& o : singles) {
        o->Step();
        o->ZeroGrad();
      }
    }
    const std::vector<AdamWParamState> state = group.ExportState();
    for (size_t i = 0; i < together.size(); ++i) {
      EXPECT_TRUE(at::equal(together[i].detach(), alone[i].detach())) << i;
      const AdamWParamState single = singles[i]->ExportState()[0];
      EXPECT_EQ(state[i].step, i == 1 ? 4 : 5) << i;
      EXPECT_EQ(single.step, state[i].step) << i;
      EXPECT_TRUE(at::equal(state[i].exp_avg, single.exp_avg)) << i;
      EXPECT_TRUE(at::equal(state[i].exp_avg_sq, single.exp_avg_sq)) << i;
    }
    int64_t single_bytes = 0;
    for (auto& o : singles) single_bytes += o->StateBytes();
    EXPECT_EQ(group.StateBytes(), single_bytes);
  }
}

// The CPU encoder's table and comparisons against at::bucketize on the same scaled values: entries over nine orders
// of magnitude, both signs, zeros, the map's midpoints themselves (ties go to the lower code), whole and partial
// blocks, and an all-zero block.
TEST(AdamWTest, TheCpuEncoderGivesBucketizesCodes) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(8);
  for (bool is_signed : {true, false}) {
    SCOPED_TRACE(is_signed ? "signed" : "unsigned");
    const at::Tensor mids = EightBitMidpoints(is_signed);
    ASSERT_EQ(mids.numel(), 255);
    const auto opts = at::TensorOptions().dtype(at::kFloat);
    at::Tensor spread = at::randn({3000}, gen, opts) * at::pow(10.0, at::rand({3000}, gen, opts) * -9);
    if (!is_signed) spread = spread.abs();
    // One block holding 1 (its absmax) and every midpoint: scaled by 1, the values are the midpoints exactly.
    const at::Tensor exact = at::cat({at::ones({1}, opts), mids, at::zeros({0}, opts)});
    const at::Tensor x = at::cat({exact, at::zeros({256}, opts), spread, at::full({7}, -0.0f, opts)});
    const auto [codes, scales] = EncodeEightBit(x, is_signed);

    const int64_t blocks = (x.numel() + 255) / 256;
    ASSERT_EQ(codes.numel(), blocks * 256);
    at::Tensor padded = at::zeros({blocks * 256}, opts);
    padded.narrow(0, 0, x.numel()).copy_(x);
    const at::Tensor b = padded.view({blocks, 256});
    at::Tensor expected_scales = b.abs().amax(1);
    expected_scales = at::where(expected_scales > 0, expected_scales, at::ones_like(expected_scales));
    const at::Tensor expected = at::bucketize(b / expected_scales.unsqueeze(1), mids).to(at::kByte).view({-1});
    EXPECT_TRUE(at::equal(scales, expected_scales));
    EXPECT_TRUE(at::equal(codes, expected)) << (codes.to(at::kInt) - expected.to(at::kInt)).abs().max().item<int>();
    // The midpoints map to their own index: a tie goes below.
    EXPECT_TRUE(at::equal(codes.narrow(0, 1, 255).to(at::kLong), at::arange(255, at::kLong)));
    // Codes really spread over the map.
    EXPECT_GT(std::get<0>(at::_unique(codes)).numel(), 200);
  }
}

TEST(AdamWTest, OptimizerNames) {
  EXPECT_EQ(*ParseAdamWStates("adamw"), AdamWStates::kFull);
  EXPECT_EQ(*ParseAdamWStates("adamw_8bit"), AdamWStates::kEightBit);
  EXPECT_THAT(ParseAdamWStates("sgd").status().message(), HasSubstr("use adamw"));
}

}  // namespace
}  // namespace tuneforge
