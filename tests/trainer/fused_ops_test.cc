// Fused and chunked forms against the plain ones they replace. The chunked loss (ChunkedCausalLmLoss) against the
// loss over whole logits (CausalLmLoss): the same loss and gradients for the hidden states and the output
// projection, whatever the chunk size, with ignored labels, a weighted backward and bf16; and one training step of a
// real model both ways. The LoRA branch as one addmm against y + (x A^T B^T) * scaling, values and gradients. RoPE and
// the gated activation as single nodes against transformers' op sequences, bit for bit, alone and in whole models of
// three families. And activation checkpointing where attention needs no mask (rows without padding), against no
// checkpointing.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "services/trainer/data/batching.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/fused_ops.h"
#include "services/trainer/train/adamw.h"
#include "services/trainer/train/causal_lm_loss.h"
#include "services/trainer/train/cross_entropy_rows.h"
#include "services/trainer/train/training_step.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

using ::tuneforge::testing::IsOk;

struct Case {
  at::Tensor hidden, head, labels;
};

Case MakeCase(at::ScalarType dtype, int64_t batch, int64_t length, int64_t dim, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  Case c;
  c.hidden = at::randn({batch, length, dim}).to(dtype).requires_grad_(true);
  c.head = (at::randn({vocab, dim}) * 0.3).to(dtype).requires_grad_(true);
  c.labels = at::randint(vocab, {batch, length}, at::kLong);
  // Prompt tokens and padding carry no loss.
  c.labels.slice(1, 0, 2).fill_(kIgnoreLabel);
  c.labels.select(0, 0).slice(0, length - 2).fill_(kIgnoreLabel);
  return c;
}

struct Result {
  double loss;
  at::Tensor grad_hidden, grad_head;
};

Result LossAndGrads(const Case& c, int64_t chunk_rows, double weight = 1.0) {
  at::Tensor h = c.hidden.detach().clone().requires_grad_(true);
  at::Tensor w = c.head.detach().clone().requires_grad_(true);
  at::Tensor loss = chunk_rows == 0 ? CausalLmLoss(at::linear(h, w).to(at::kFloat), c.labels)
                                    : ChunkedCausalLmLoss(h, w, c.labels, chunk_rows);
  (loss * weight).backward();
  return {loss.item<double>(), h.grad().to(at::kFloat), w.grad().to(at::kFloat)};
}

double MaxRelDiff(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

TEST(ChunkedLossTest, EqualsThePlainLossAndGradientsForEveryChunkSize) {
  const Case c = MakeCase(at::kFloat, 3, 11, 16, 97, 1);
  const Result plain = LossAndGrads(c, 0);
  ASSERT_TRUE(std::isfinite(plain.loss));
  for (int64_t chunk : {1, 4, 7, 26, 1000}) {
    SCOPED_TRACE(chunk);
    const Result chunked = LossAndGrads(c, chunk);
    EXPECT_NEAR(chunked.loss, plain.loss, 1e-6 * std::abs(plain.loss));
    EXPECT_LT(MaxRelDiff(chunked.grad_hidden, plain.grad_hidden), 1e-5);
    EXPECT_LT(MaxRelDiff(chunked.grad_head, plain.grad_head), 1e-5);
    // Rows whose shifted label is ignored get no gradient at all, as in the plain path.
    EXPECT_EQ(chunked.grad_hidden.select(0, 0).slice(0, 8).abs().sum().item<double>(), 0.0);
  }
}

// The CPU row kernel of the chunked loss against torch's log_softmax: vocabularies that are and are not a multiple of
// the kernel's 16 lanes, logits spread wide (exponents far below FLT_MIN's) and narrow, fp32 and bf16; the loss, and
// the gradient written in place; a row with a NaN or an infinity gives a NaN loss.
TEST(ChunkedLossTest, TheRowKernelMatchesLogSoftmax) {
  for (int64_t vocab : {1, 7, 16, 33, 1000, 32001}) {
    for (double spread : {0.01, 3.0, 200.0}) {
      for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
        SCOPED_TRACE(::testing::Message() << "vocab " << vocab << " spread " << spread << " " << c10::toString(dtype));
        at::manual_seed(static_cast<uint64_t>(vocab));
        const at::Tensor logits = (at::randn({3, vocab}, at::kDouble) * spread + 5).to(dtype);
        const std::vector<int64_t> targets = {0, vocab - 1, vocab / 2};
        const at::Tensor log_probs = at::log_softmax(logits.to(at::kDouble), 1);
        const double scale = 0.25;
        at::Tensor grad = logits.clone();
        for (int64_t r = 0; r < 3; ++r) {
          const double expected = -log_probs[r][targets[r]].item<double>();
          const double loss =
              dtype == at::kFloat
                  ? CrossEntropyRow(grad[r].data_ptr<float>(), vocab, targets[r], static_cast<float>(scale), true)
                  : CrossEntropyRowBf16(reinterpret_cast<uint16_t*>(grad[r].data_ptr<at::BFloat16>()), vocab,
                                        targets[r], static_cast<float>(scale), true);
          EXPECT_NEAR(loss, expected, 2e-6 * std::max(1.0, std::abs(expected) + std::abs(logits[r].max().item<double>())))
              << r;
          // Without the gradient the row is left as it was.
          at::Tensor untouched = logits[r].clone();
          const double again =
              dtype == at::kFloat
                  ? CrossEntropyRow(untouched.data_ptr<float>(), vocab, targets[r], 1.0f, false)
                  : CrossEntropyRowBf16(reinterpret_cast<uint16_t*>(untouched.data_ptr<at::BFloat16>()), vocab,
                                        targets[r], 1.0f, false);
          EXPECT_EQ(again, loss);
          EXPECT_TRUE(at::equal(untouched, logits[r]));
        }
        at::Tensor expected_grad = log_probs.exp();
        for (int64_t r = 0; r < 3; ++r) expected_grad[r][targets[r]] -= 1.0;
        expected_grad = (expected_grad * scale).to(dtype).to(at::kDouble);
        // fp32: a few ulp, plus the rounding of logsumexp = max + log(sum) at the logits' magnitude; bf16: one
        // rounding step of the result.
        const double magnitude = logits.abs().max().item<double>();
        const double tolerance = dtype == at::kFloat ? (1e-6 + 1e-7 * magnitude) * scale : 8e-3 * scale;
        EXPECT_LE((grad.to(at::kDouble) - expected_grad).abs().max().item<double>(), tolerance);
      }
    }
  }
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    std::vector<float> row = {0.5f, bad, -1.0f, 2.0f};
    if (std::isinf(bad) && bad < 0) row = {bad, bad, bad, bad};
    EXPECT_TRUE(std::isnan(CrossEntropyRow(row.data(), 4, 0, 1.0f, true))) << bad;
  }
}

// A label outside the vocabulary is refused by the row kernel's path, as gather refuses it on the other.
TEST(ChunkedLossTest, ALabelOutsideTheVocabularyIsRefused) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    Case c = MakeCase(dtype, 2, 6, 8, 20, 3);
    c.labels[1][3] = 20;
    try {
      ChunkedCausalLmLoss(c.hidden, c.head, c.labels, 4);
      ADD_FAILURE() << "no error for label 20 in a vocabulary of 20";
    } catch (const c10::Error& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("label 20 is outside the vocabulary [0, 20)"));
    }
  }
}

TEST(ChunkedLossTest, AWeightedBackwardScalesTheGradients) {
  const Case c = MakeCase(at::kFloat, 2, 9, 8, 31, 2);
  const Result plain = LossAndGrads(c, 0, 0.37);
  const Result chunked = LossAndGrads(c, 5, 0.37);
  EXPECT_LT(MaxRelDiff(chunked.grad_hidden, plain.grad_hidden), 1e-5);
  EXPECT_LT(MaxRelDiff(chunked.grad_head, plain.grad_head), 1e-5);
  const Result unweighted = LossAndGrads(c, 5);
  EXPECT_LT(MaxRelDiff(chunked.grad_head, unweighted.grad_head * 0.37), 1e-6);
}

TEST(ChunkedLossTest, Bf16AgreesWithThePlainBf16Path) {
  const Case c = MakeCase(at::kBFloat16, 2, 16, 32, 211, 3);
  const Result plain = LossAndGrads(c, 0);
  const Result chunked = LossAndGrads(c, 5);
  EXPECT_NEAR(chunked.loss, plain.loss, 1e-3 * std::abs(plain.loss));
  EXPECT_LT(MaxRelDiff(chunked.grad_hidden, plain.grad_hidden), 2e-2);
  EXPECT_LT(MaxRelDiff(chunked.grad_head, plain.grad_head), 2e-2);
}

TEST(ChunkedLossTest, FrozenProjectionGetsNoGradientAndNoLabelGivesNan) {
  Case c = MakeCase(at::kFloat, 2, 6, 8, 13, 4);
  at::Tensor h = c.hidden.detach().clone().requires_grad_(true);
  at::Tensor w = c.head.detach();  // frozen, as under LoRA
  at::Tensor loss = ChunkedCausalLmLoss(h, w, c.labels, 3);
  loss.backward();
  EXPECT_TRUE(h.grad().defined());
  EXPECT_FALSE(w.grad().defined());

  c.labels.fill_(kIgnoreLabel);
  const double chunked = ChunkedCausalLmLoss(c.hidden, c.head, c.labels, 3).item<double>();
  const double plain = CausalLmLoss(at::linear(c.hidden, c.head), c.labels).item<double>();
  EXPECT_TRUE(std::isnan(chunked));
  EXPECT_TRUE(std::isnan(plain));
  EXPECT_GT(DefaultLossChunkRows(32000), 1000);
  EXPECT_EQ(DefaultLossChunkRows(int64_t{1} << 40), 1);
}

// One optimizer step of a LoRA model on padded rows: the loss, the gradient norm and every updated LoRA tensor are
// the same with the chunked loss as with whole logits.
TEST(ChunkedLossTest, ATrainingStepIsTheSameWithTheChunkedLoss) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  std::vector<std::vector<at::Tensor>> updated;
  std::vector<StepOutcome> outcomes;
  for (int64_t chunk_rows : {int64_t{0}, int64_t{5}, kAutoLossChunkRows}) {
    BuildOptions options;
    options.lora.rank = 4;
    options.lora.alpha = 8;
    options.lora.target_modules = {"all-linear"};
    options.lora.seed = 7;
    auto model = CausalLM::Load(::tuneforge::testing::GeneratedReference() + "/llama", options);
    ASSERT_THAT(model.status(), IsOk());
    (*model)->set_training(true);
    const int64_t vocab = (*model)->config().arch.vocab_size;
    std::vector<Example> examples;
    for (int64_t len : {12, 7, 10}) {
      Example ex;
      for (int64_t t = 0; t < len; ++t) ex.input_ids.push_back(static_cast<int32_t>((t * 11 + len * 5) % vocab));
      ex.labels.assign(ex.input_ids.begin(), ex.input_ids.end());
      for (int64_t t = 0; t < 3; ++t) ex.labels[t] = kIgnoreLabel;  // a prompt
      examples.push_back(ex);
    }
    BatchOptions batch_options;
    batch_options.batch_size = 3;
    batch_options.max_seq_len = 16;
    const std::vector<Batch> batches = MakeBatches(examples, {0, 1, 2}, batch_options);
    std::vector<const Batch*> group;
    for (const Batch& b : batches) group.push_back(&b);
    std::vector<at::Tensor> params = (*model)->TrainableParameters();
    AdamWSettings adam;
    // AdamW's first step is about lr * sign(g) where |g| >> eps: with the default 1e-8 an entry whose gradient is
    // rounding noise moves a whole step either way. With 1e-3 such entries move by about lr * g / eps.
    adam.eps = 1e-3;
    AdamWOptimizer optimizer(params, adam);
    StepOptions step;
    step.learning_rate = 1e-2;
    step.loss_chunk_rows = chunk_rows;
    auto outcome = TrainStep(**model, group, optimizer, params, step, c10::Device(c10::kCPU), nullptr);
    ASSERT_THAT(outcome.status(), IsOk());
    outcomes.push_back(*outcome);
    std::vector<at::Tensor> copies;
    for (const at::Tensor& p : params) copies.push_back(p.detach().clone());
    updated.push_back(copies);
  }
  for (size_t run = 1; run < outcomes.size(); ++run) {
    SCOPED_TRACE(run);
    EXPECT_NEAR(outcomes[run].loss, outcomes[0].loss, 1e-6 * std::abs(outcomes[0].loss));
    EXPECT_NEAR(outcomes[run].grad_norm, outcomes[0].grad_norm, 1e-5 * outcomes[0].grad_norm);
    ASSERT_EQ(updated[run].size(), updated[0].size());
    for (size_t i = 0; i < updated[0].size(); ++i) {
      EXPECT_LT((updated[run][i] - updated[0][i]).abs().max().item<double>(), 1e-6) << i;
    }
  }
}

// Projection::Forward adds the LoRA branch with one addmm; PEFT's form is linear(x, W, b) + B(A(x)) * scaling.
TEST(FusedOpsTest, TheLoraBranchEqualsPeftsFormInValueAndGradients) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    at::manual_seed(11);
    Projection p;
    p.weight = at::randn({24, 16}).to(dtype);
    p.bias = at::randn({24}).to(dtype);
    p.lora_a = (at::randn({4, 16}) * 0.2).to(dtype).requires_grad_(true);
    p.lora_b = (at::randn({24, 4}) * 0.2).to(dtype).requires_grad_(true);
    p.lora_scaling = 2.5;
    const at::Tensor x = at::randn({3, 5, 16}).to(dtype).requires_grad_(true);
    const at::Tensor upstream = at::randn({3, 5, 24}).to(dtype);

    const at::Tensor fused = p.Forward(x, /*training=*/true);
    const std::vector<at::Tensor> fused_grads = torch::autograd::grad({fused}, {x, p.lora_a, p.lora_b}, {upstream});
    const at::Tensor plain =
        at::linear(x, p.weight, p.bias) + at::linear(at::linear(x, p.lora_a), p.lora_b) * p.lora_scaling;
    const std::vector<at::Tensor> plain_grads = torch::autograd::grad({plain}, {x, p.lora_a, p.lora_b}, {upstream});

    const double tolerance = dtype == at::kFloat ? 1e-5 : 2e-2;
    ASSERT_EQ(fused.sizes(), plain.sizes());
    EXPECT_LT(MaxRelDiff(fused.to(at::kFloat), plain.to(at::kFloat)), tolerance);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_LT(MaxRelDiff(fused_grads[i].to(at::kFloat), plain_grads[i].to(at::kFloat)), tolerance) << i;
    }
    // The branch is really there: without it the output differs.
    EXPECT_GT(MaxRelDiff(at::linear(x, p.weight, p.bias).to(at::kFloat), plain.to(at::kFloat)), 1e-2);
  }
}

// Exact equality: the fused forms do the reference's arithmetic in the same order.
void ExpectBitEqual(const at::Tensor& a, const at::Tensor& b, const char* what) {
  ASSERT_TRUE(a.defined()) << what;
  ASSERT_TRUE(b.defined()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  ASSERT_EQ(a.scalar_type(), b.scalar_type()) << what;
  EXPECT_TRUE(at::equal(a, b)) << what << ": max abs diff "
                               << (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

TEST(FusedOpsTest, RopeEqualsTransformersFormBitForBit) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    at::manual_seed(21);
    // q and k as the attention has them: transposed views of the projections' [B,T,heads*D] outputs.
    const at::Tensor q_in = at::randn({2, 7, 4 * 8}).to(dtype).requires_grad_(true);
    const at::Tensor k_in = at::randn({2, 7, 2 * 8}).to(dtype).requires_grad_(true);
    const at::Tensor angles = at::cat({at::rand({2, 7, 4}) * 6, at::rand({2, 7, 4}) * 6}, -1);
    const at::Tensor cos = angles.cos().to(dtype).unsqueeze(1), sin = angles.sin().to(dtype).unsqueeze(1);
    auto heads = [](const at::Tensor& x, int64_t n) { return x.view({2, 7, n, 8}).transpose(1, 2); };
    const at::Tensor gq = at::randn({2, 4, 7, 8}).to(dtype), gk = at::randn({2, 2, 7, 8}).to(dtype);

    const auto [q, k] = ApplyRope(heads(q_in, 4), heads(k_in, 2), cos, sin);
    const auto fused = torch::autograd::grad({q, k}, {q_in, k_in}, {gq, gk});
    const at::Tensor q_ref = ApplyRopeReference(heads(q_in, 4), cos, sin);
    const at::Tensor k_ref = ApplyRopeReference(heads(k_in, 2), cos, sin);
    const auto reference = torch::autograd::grad({q_ref, k_ref}, {q_in, k_in}, {gq, gk});
    ExpectBitEqual(q, q_ref, "q");
    ExpectBitEqual(k, k_ref, "k");
    ExpectBitEqual(fused[0], reference[0], "grad q");
    ExpectBitEqual(fused[1], reference[1], "grad k");
    // The rotation is really applied: q changed, and its gradient is not the incoming one.
    EXPECT_FALSE(at::allclose(q.to(at::kFloat), heads(q_in, 4).to(at::kFloat), 1e-2, 1e-2));
    EXPECT_FALSE(at::allclose(fused[0].to(at::kFloat), gq.transpose(1, 2).reshape({2, 7, 32}).to(at::kFloat), 1e-2,
                              1e-2));
    // Only the keys' gradient asked for: the queries' side may be left out.
    const auto [q2, k2] = ApplyRope(heads(q_in, 4), heads(k_in, 2), cos, sin);
    ExpectBitEqual(torch::autograd::grad({k2}, {k_in}, {gk})[0], reference[1], "grad k alone");
  }
}

TEST(FusedOpsTest, GatedActivationEqualsTheOpSequenceBitForBit) {
  for (Activation activation : {Activation::kSilu, Activation::kGeluTanh, Activation::kGeluErf}) {
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      SCOPED_TRACE(::testing::Message() << c10::toString(dtype) << " activation " << static_cast<int>(activation));
      at::manual_seed(23);
      // gate and up as halves of one projection (phi3's gate_up) and as tensors of their own.
      const at::Tensor gate_up = (at::randn({3, 5, 24}) * 3).to(dtype).requires_grad_(true);
      const at::Tensor gate = gate_up.slice(-1, 0, 12), up = gate_up.slice(-1, 12);
      const at::Tensor upstream = at::randn({3, 5, 12}).to(dtype);
      const at::Tensor fused = GatedActivation(gate, up, activation);
      const at::Tensor fused_grad = torch::autograd::grad({fused}, {gate_up}, {upstream})[0];
      const at::Tensor plain = GatedActivationReference(gate, up, activation);
      const at::Tensor plain_grad = torch::autograd::grad({plain}, {gate_up}, {upstream})[0];
      ExpectBitEqual(fused, plain, "value");
      ExpectBitEqual(fused_grad, plain_grad, "grad");
      EXPECT_GT(fused_grad.slice(-1, 0, 12).abs().sum().item<double>(), 0);
      EXPECT_GT(fused_grad.slice(-1, 12).abs().sum().item<double>(), 0);
      // A gate that needs no gradient gets none; up still gets its own.
      const at::Tensor frozen_gate = gate.detach();
      const at::Tensor up_only = GatedActivation(frozen_gate, up, activation);
      const at::Tensor up_grad = torch::autograd::grad({up_only}, {gate_up}, {upstream})[0];
      ExpectBitEqual(up_grad.slice(-1, 12), plain_grad.slice(-1, 12), "grad up alone");
      EXPECT_EQ(up_grad.slice(-1, 0, 12).abs().sum().item<double>(), 0);
    }
  }
}

// The MLP's activation and down_proj's LoRA down-projection as one node: h and h A^T, and the gradients of gate, up and
// A, bit for bit as the two ops give them, with h's gradient from a later consumer, without one, and with only up
// needing a gradient. And h is not kept: once the caller lets go of it, its storage is freed while the graph lives,
// where the two ops keep it for A's gradient.
TEST(FusedOpsTest, GatedActivationLoraDownEqualsTheOpsAndKeepsNoActivation) {
  for (Activation activation : {Activation::kSilu, Activation::kGeluTanh, Activation::kGeluErf}) {
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      SCOPED_TRACE(::testing::Message() << c10::toString(dtype) << " activation " << static_cast<int>(activation));
      at::manual_seed(29);
      const at::Tensor gate = (at::randn({3, 5, 12}) * 3).to(dtype).requires_grad_(true);
      const at::Tensor up = (at::randn({3, 5, 12}) * 3).to(dtype).requires_grad_(true);
      const at::Tensor a = (at::randn({4, 12}) * 0.2).to(dtype).requires_grad_(true);
      const at::Tensor w = (at::randn({6, 12}) * 0.2).to(dtype);  // the frozen base weight h feeds
      const at::Tensor upstream_y = at::randn({3, 5, 6}).to(dtype);
      const at::Tensor upstream_down = at::randn({3, 5, 4}).to(dtype);

      const auto [h, down] = GatedActivationLoraDown(gate, up, a, activation);
      const at::Tensor y = at::linear(h, w);
      const auto fused = torch::autograd::grad({y, down}, {gate, up, a}, {upstream_y, upstream_down},
                                               /*retain_graph=*/true);
      const at::Tensor plain_h = GatedActivationReference(gate, up, activation);
      const at::Tensor plain_down = at::linear(plain_h, a);
      const at::Tensor plain_y = at::linear(plain_h, w);
      const auto plain = torch::autograd::grad({plain_y, plain_down}, {gate, up, a}, {upstream_y, upstream_down},
                                               /*retain_graph=*/true);
      ExpectBitEqual(h, plain_h, "h");
      ExpectBitEqual(down, plain_down, "down");
      for (size_t i = 0; i < 3; ++i) {
        ExpectBitEqual(fused[i], plain[i], i == 0 ? "grad gate" : i == 1 ? "grad up" : "grad A");
        EXPECT_GT(fused[i].abs().sum().item<double>(), 0);
      }

      // Only the LoRA branch downstream: h's own gradient is undefined in the node's backward.
      const auto fused_branch = torch::autograd::grad({down}, {gate, up, a}, {upstream_down}, /*retain_graph=*/true);
      const auto plain_branch =
          torch::autograd::grad({plain_down}, {gate, up, a}, {upstream_down}, /*retain_graph=*/true);
      for (size_t i = 0; i < 3; ++i) ExpectBitEqual(fused_branch[i], plain_branch[i], "branch only");

      // h's incoming gradient shared with another input (an addition passes one tensor to both): the node must not
      // add into it, or the other input's gradient would change.
      const at::Tensor other = at::randn({3, 5, 12}).to(dtype).requires_grad_(true);
      const at::Tensor upstream_h = at::randn({3, 5, 12}).to(dtype);
      const auto [h3, down3] = GatedActivationLoraDown(gate, up, a, activation);
      const auto shared = torch::autograd::grad({h3 + other, down3}, {gate, up, a, other}, {upstream_h, upstream_down});
      const auto plain_shared = torch::autograd::grad({plain_h + other, plain_down}, {gate, up, a, other},
                                                      {upstream_h, upstream_down}, /*retain_graph=*/true);
      for (size_t i = 0; i < 4; ++i) ExpectBitEqual(shared[i], plain_shared[i], "shared incoming gradient");
      ExpectBitEqual(shared[3], upstream_h, "the other input's gradient");

      // A gate that needs no gradient gets none; up and A still get theirs.
      const auto [h2, down2] = GatedActivationLoraDown(gate.detach(), up, a, activation);
      const auto up_only = torch::autograd::grad({at::linear(h2, w), down2}, {up, a}, {upstream_y, upstream_down});
      ExpectBitEqual(up_only[0], plain[1], "grad up alone");
      ExpectBitEqual(up_only[1], plain[2], "grad A alone");

      // Storage: h freed (fused) or kept (the two ops) while the graph that consumed it lives.
      auto kept_after_release = [&](bool use_fused) {
        at::Tensor act, lora_down;
        if (use_fused) {
          std::tie(act, lora_down) = GatedActivationLoraDown(gate, up, a, activation);
        } else {
          act = GatedActivationReference(gate, up, activation);
          lora_down = at::linear(act, a);
        }
        const at::Tensor out = at::linear(act, w) + at::linear(lora_down, at::ones({6, 4}, dtype));
        const c10::weak_intrusive_ptr<c10::StorageImpl> storage(act.storage().getWeakStorageImpl());
        act.reset();
        const bool kept = !storage.expired();
        out.sum().backward();  // the graph is still whole
        return kept;
      };
      EXPECT_FALSE(kept_after_release(true));
      EXPECT_TRUE(kept_after_release(false));  // the measure can tell
    }
  }
}

// The LoRA down-projection under dropout keeps the mask, not the dropped input: from the same generator state it gives
// what linear(dropout(x)) gives, values and gradients bit for bit, and draws the same number of random values.
TEST(FusedOpsTest, DropoutLinearEqualsLinearOfDropout) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    at::manual_seed(31);
    const at::Tensor x = at::randn({3, 50, 24}).to(dtype).requires_grad_(true);
    const at::Tensor a = (at::randn({4, 24}) * 0.2).to(dtype).requires_grad_(true);
    const at::Tensor upstream = at::randn({3, 50, 4}).to(dtype);

    at::manual_seed(77);
    const at::Tensor fused = DropoutLinear(x, a, 0.25);
    const double after_fused = at::rand({1}).item<double>();
    const auto fused_grads = torch::autograd::grad({fused}, {x, a}, {upstream});
    at::manual_seed(77);
    const at::Tensor plain = at::linear(at::dropout(x, 0.25, /*train=*/true), a);
    const double after_plain = at::rand({1}).item<double>();
    const auto plain_grads = torch::autograd::grad({plain}, {x, a}, {upstream});

    ExpectBitEqual(fused, plain, "value");
    ExpectBitEqual(fused_grads[0], plain_grads[0], "grad x");
    ExpectBitEqual(fused_grads[1], plain_grads[1], "grad A");
    EXPECT_EQ(after_fused, after_plain);
    // Dropout really happened: about a quarter of x's gradient entries are zero.
    const double zeros = (fused_grads[0] == 0).to(at::kFloat).mean().item<double>();
    EXPECT_GT(zeros, 0.15);
    EXPECT_LT(zeros, 0.35);
  }
}

// Whole models: llama (silu), gemma (gelu tanh, scaled embeddings) and phi3 (fused qkv and gate_up projections), in
// fp32 and bf16, give the same logits, loss and LoRA gradients with the fused nodes as with the op sequences.
TEST(FusedOpsTest, ModelsGiveTheSameLossAndGradientsWithTheFusedNodes) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  for (const char* family : {"llama", "gemma", "phi3"}) {
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      SCOPED_TRACE(::testing::Message() << family << " " << c10::toString(dtype));
      std::vector<at::Tensor> logits, losses;
      std::vector<std::vector<at::Tensor>> grads;
      for (bool fused : {true, false}) {
        BuildOptions options;
        options.dtype = dtype;
        options.lora.rank = 4;
        options.lora.alpha = 8;
        options.lora.target_modules = {"all-linear"};
        options.lora.seed = 9;
        options.fused_elementwise = fused;
        auto model = CausalLM::Load(::tuneforge::testing::GeneratedReference() + "/" + family, options);
        ASSERT_THAT(model.status(), IsOk());
        (*model)->set_training(true);
        // LoRA B starts at zero; move it so that every LoRA tensor gets a gradient.
        {
          at::NoGradGuard no_grad;
          at::manual_seed(4);
          for (const at::Tensor& p : (*model)->TrainableParameters()) p.add_(at::randn_like(p) * 0.05);
        }
        const int64_t vocab = (*model)->config().arch.vocab_size;
        const at::Tensor ids = at::arange(3, 3 + 2 * 11, at::kLong).view({2, 11}).mul(7).remainder(vocab);
        const at::Tensor hidden = (*model)->ForwardHidden(ids);
        at::Tensor loss = ChunkedCausalLmLoss(hidden, (*model)->lm_head(), ids, 8);
        loss.backward();
        losses.push_back(loss.detach());
        logits.push_back(at::linear(hidden.detach(), (*model)->lm_head()));
        std::vector<at::Tensor> g;
        for (const at::Tensor& p : (*model)->TrainableParameters()) {
          ASSERT_TRUE(p.grad().defined());
          g.push_back(p.grad().clone());
        }
        grads.push_back(g);
      }
      ExpectBitEqual(logits[0], logits[1], "logits");
      ExpectBitEqual(losses[0], losses[1], "loss");
      ASSERT_EQ(grads[0].size(), grads[1].size());
      for (size_t i = 0; i < grads[0].size(); ++i) ExpectBitEqual(grads[0][i], grads[1][i], "LoRA grad");
    }
  }
}

// Rows of one length need no attention mask with sdpa; checkpointed layers then run without one, and must give the
// gradients the plain forward gives, with the layer inputs kept on the device or offloaded to host memory (on the CPU
// a separate copy, so the copy and the way back are exercised).
TEST(FusedOpsTest, ActivationCheckpointingWithoutAMaskGivesThePlainGradients) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  std::vector<std::vector<at::Tensor>> grads;
  std::vector<double> losses;
  for (int form = 0; form < 3; ++form) {
    SCOPED_TRACE(form == 0 ? "plain" : form == 1 ? "checkpointing" : "checkpointing + offload");
    const bool checkpointing = form > 0;
    BuildOptions options;
    options.activation_offload = form == 2;
    options.lora.rank = 4;
    options.lora.alpha = 8;
    options.lora.target_modules = {"all-linear"};
    options.lora.seed = 5;
    options.gradient_checkpointing = checkpointing;
    auto model = CausalLM::Load(::tuneforge::testing::GeneratedReference() + "/llama", options);
    ASSERT_THAT(model.status(), IsOk());
    (*model)->set_training(true);
    const int64_t vocab = (*model)->config().arch.vocab_size;
    const at::Tensor ids = at::arange(2 * 12, at::kLong).view({2, 12}).remainder(vocab);
    at::Tensor loss = ChunkedCausalLmLoss((*model)->ForwardHidden(ids), (*model)->lm_head(), ids, 7);
    loss.backward();
    losses.push_back(loss.item<double>());
    std::vector<at::Tensor> g;
    for (const at::Tensor& p : (*model)->TrainableParameters()) {
      ASSERT_TRUE(p.grad().defined());
      g.push_back(p.grad().clone());
    }
    grads.push_back(g);
  }
  for (size_t form = 1; form < 3; ++form) {
    EXPECT_NEAR(losses[form], losses[0], 1e-6 * std::abs(losses[0])) << form;
    ASSERT_EQ(grads[0].size(), grads[form].size());
    for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_LT(MaxRelDiff(grads[form][i], grads[0][i]), 1e-5) << i;
  }
  // Offloading changes where the inputs wait, not the arithmetic.
  for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_TRUE(at::equal(grads[2][i], grads[1][i])) << i;
}

}  // namespace
}  // namespace tuneforge
