// Packed rows give each example the logits, loss and gradients it gets alone (per-sequence attention under sdpa, a
// segment mask under eager, restarting position ids), and padded rows the gradients they get alone, with either
// attention implementation, with and without activation checkpointing.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "services/trainer/data/batching.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/train/causal_lm_loss.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

using ::tuneforge::testing::IsOk;

at::Tensor ToTensor(const std::vector<int64_t>& v, int64_t rows, int64_t cols) {
  return at::tensor(v, at::kLong).view({rows, cols});
}

class PackingTest : public ::testing::TestWithParam<AttentionImpl> {
 protected:
  // The test's attention with LoRA r=4 on every linear layer.
  static BuildOptions LoraBuild() {
    BuildOptions options;
    options.attention = GetParam();
    options.lora.rank = 4;
    options.lora.alpha = 8;
    options.lora.target_modules = {"all-linear"};
    return options;
  }
};

TEST_P(PackingTest, PackedLogitsEqualSeparateLogits) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  for (const char* family : {"llama", "mistral", "qwen2"}) {
    SCOPED_TRACE(family);
    BuildOptions options;
    options.attention = GetParam();
    auto model = CausalLM::Load(::tuneforge::testing::GeneratedReference() + "/" + family, options);
    ASSERT_THAT(model.status(), IsOk());
    const int64_t vocab = (*model)->config().arch.vocab_size;
    std::vector<Example> examples;
    for (int64_t len : {5, 9, 3}) {
      Example ex;
      for (int64_t t = 0; t < len; ++t) ex.input_ids.push_back(static_cast<int32_t>((t * 7 + len * 13) % vocab));
      ex.labels = ex.input_ids;
      examples.push_back(ex);
    }
    BatchOptions packed_opts;
    packed_opts.batch_size = 1;
    packed_opts.max_seq_len = 20;
    packed_opts.packing = true;
    auto packed = MakeBatches(examples, {0, 1, 2}, packed_opts);
    ASSERT_EQ(packed.size(), 1u);
    const Batch& p = packed[0];
    // sdpa attends sequence by sequence, unless a sliding window (mistral's is 5 here) is shorter than one of them.
    const bool windowed = (*model)->config().sliding_window > 0 && (*model)->config().sliding_window < 9;
    EXPECT_STREQ((*model)->Layout(ToTensor(p.attention_mask, 1, p.cols), 1, p.cols).Describe(),
                 GetParam() == AttentionImpl::kSdpa && !windowed ? "per-sequence" : "mask");
    at::Tensor logits = (*model)->Forward(ToTensor(p.input_ids, 1, p.cols), ToTensor(p.attention_mask, 1, p.cols),
                                          ToTensor(p.position_ids, 1, p.cols));
    int64_t offset = 0;
    for (const Example& ex : examples) {
      std::vector<int64_t> ids(ex.input_ids.begin(), ex.input_ids.end());
      const int64_t len = static_cast<int64_t>(ids.size());
      at::Tensor alone = (*model)->Forward(ToTensor(ids, 1, len));
      at::Tensor part = logits.slice(1, offset, offset + len);
      EXPECT_LT((alone - part).abs().max().item<double>(), 1e-5);
      offset += len;
    }

    // The padded batch of the same examples has the same summed loss over the same label tokens.
    BatchOptions padded_opts = packed_opts;
    padded_opts.packing = false;
    padded_opts.batch_size = 3;
    auto padded = MakeBatches(examples, {0, 1, 2}, padded_opts);
    ASSERT_EQ(padded.size(), 1u);
    const Batch& q = padded[0];
    EXPECT_EQ(q.label_tokens, p.label_tokens);
    at::Tensor padded_logits = (*model)->Forward(ToTensor(q.input_ids, q.rows, q.cols),
                                                 ToTensor(q.attention_mask, q.rows, q.cols),
                                                 ToTensor(q.position_ids, q.rows, q.cols));
    const double packed_loss = CausalLmLoss(logits, ToTensor(p.labels, 1, p.cols)).item<double>();
    const double padded_loss = CausalLmLoss(padded_logits, ToTensor(q.labels, q.rows, q.cols)).item<double>();
    EXPECT_NEAR(packed_loss, padded_loss, 1e-5);
  }
}

// A LoRA model's gradients from packed rows (two rows of several examples and a padding tail) equal those from the
// same examples padded one a row, and those with activation checkpointing; the loss is the mean over the same label
// tokens, so all three are the same function.
TEST_P(PackingTest, PackedGradientsEqualPaddedGradients) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  BuildOptions options = LoraBuild();
  options.lora.seed = 3;
  const std::string dir = ::tuneforge::testing::GeneratedReference() + "/qwen2";
  auto model = CausalLM::Load(dir, options);
  ASSERT_THAT(model.status(), IsOk());
  options.gradient_checkpointing = true;
  auto checkpointed = CausalLM::Load(dir, options);
  ASSERT_THAT(checkpointed.status(), IsOk());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  for (auto& [name, p] : (*model)->projections()) {
    if (!p.lora_b.defined()) continue;
    p.lora_b.detach().normal_(0, 0.1, gen);  // B = 0 would give A no gradient
    (*checkpointed)->projections().at(name).lora_b.detach().copy_(p.lora_b.detach());
  }
  const int64_t vocab = (*model)->config().arch.vocab_size;
  std::vector<Example> examples;
  for (int64_t len : {5, 9, 3, 7, 4}) {
    Example ex;
    for (int64_t t = 0; t < len; ++t) ex.input_ids.push_back(static_cast<int32_t>((t * 5 + len * 17 + 3) % vocab));
    ex.labels = ex.input_ids;
    ex.labels[0] = kIgnoreLabel;  // a one-token prompt
    examples.push_back(ex);
  }
  BatchOptions packed_opts;
  packed_opts.batch_size = 2;
  packed_opts.max_seq_len = 16;
  packed_opts.packing = true;
  const std::vector<Batch> packed = MakeBatches(examples, {0, 1, 2, 3, 4}, packed_opts);
  ASSERT_EQ(packed.size(), 1u);
  ASSERT_EQ(packed[0].rows, 2);
  BatchOptions padded_opts = packed_opts;
  padded_opts.packing = false;
  padded_opts.batch_size = 5;
  const std::vector<Batch> padded = MakeBatches(examples, {0, 1, 2, 3, 4}, padded_opts);
  ASSERT_EQ(padded.size(), 1u);
  ASSERT_EQ(packed[0].label_tokens, padded[0].label_tokens);

  auto grads = [this](CausalLM& m, const Batch& b) {
    m.set_training(true);
    for (at::Tensor& t : m.TrainableParameters()) t.mutable_grad() = at::Tensor();
    const at::Tensor mask = ToTensor(b.attention_mask, b.rows, b.cols);
    EXPECT_STREQ(m.Layout(mask, b.rows, b.cols).Describe(),
                 GetParam() == AttentionImpl::kSdpa ? "per-sequence" : "mask");
    CausalLmLoss(m.Forward(ToTensor(b.input_ids, b.rows, b.cols), mask, ToTensor(b.position_ids, b.rows, b.cols)),
                 ToTensor(b.labels, b.rows, b.cols))
        .backward();
    std::vector<at::Tensor> out;
    for (at::Tensor& t : m.TrainableParameters()) out.push_back(t.grad().clone());
    return out;
  };
  const auto from_packed = grads(**model, packed[0]);
  const auto from_padded = grads(**model, padded[0]);
  const auto checkpointed_packed = grads(**checkpointed, packed[0]);
  ASSERT_EQ(from_packed.size(), from_padded.size());
  ASSERT_EQ(from_packed.size(), checkpointed_packed.size());
  ASSERT_FALSE(from_packed.empty());
  for (size_t i = 0; i < from_packed.size(); ++i) {
    ASSERT_TRUE(at::isfinite(from_packed[i]).all().item<bool>()) << "gradient " << i;
    EXPECT_GT(from_padded[i].abs().max().item<double>(), 0) << "gradient " << i;
    EXPECT_LT((from_packed[i] - from_padded[i]).abs().max().item<double>(), 1e-5) << "gradient " << i;
    EXPECT_LT((from_packed[i] - checkpointed_packed[i]).abs().max().item<double>(), 1e-6) << "gradient " << i;
  }
}

// Left padding gives padding queries no key to see. Under sdpa such rows must not turn into NaN (which would reach
// the LoRA gradients through 0 * NaN): the gradients of a left-padded batch are finite and equal those of the same
// rows without padding.
TEST_P(PackingTest, LeftPaddedGradientsAreFiniteAndEqualUnpadded) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  auto model = CausalLM::Load(::tuneforge::testing::GeneratedReference() + "/llama", LoraBuild());
  ASSERT_THAT(model.status(), IsOk());
  for (auto& [name, p] : (*model)->projections()) {
    if (p.lora_b.defined()) p.lora_b.detach().normal_(0, 0.1);  // B = 0 would give A no gradient
  }
  (*model)->set_training(true);
  auto grads = [&](const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& labels) {
    for (at::Tensor& t : (*model)->TrainableParameters()) t.mutable_grad() = at::Tensor();
    CausalLmLoss((*model)->Forward(ids, mask), labels).backward();
    std::vector<at::Tensor> out;
    for (at::Tensor& t : (*model)->TrainableParameters()) out.push_back(t.grad().clone());
    return out;
  };
  const std::vector<int64_t> row = {11, 52, 7, 91, 33, 18, 64};
  std::vector<int64_t> padded = {0, 0, 0};
  padded.insert(padded.end(), row.begin(), row.end());
  std::vector<int64_t> mask = {0, 0, 0, 1, 1, 1, 1, 1, 1, 1};
  // The first real token would be predicted from a padding position: not a label, as in the row alone.
  std::vector<int64_t> labels = {-100, -100, -100, -100};
  labels.insert(labels.end(), row.begin() + 1, row.end());
  const auto left = grads(ToTensor(padded, 1, 10), ToTensor(mask, 1, 10), ToTensor(labels, 1, 10));
  // Alone, with its own positions 0..6 (the padded row's positions are shifted by 3: RoPE is relative, so equal).
  const auto alone = grads(ToTensor(row, 1, 7), at::Tensor(), ToTensor(row, 1, 7));
  ASSERT_EQ(left.size(), alone.size());
  ASSERT_FALSE(left.empty());
  for (size_t i = 0; i < left.size(); ++i) {
    ASSERT_TRUE(at::isfinite(left[i]).all().item<bool>()) << "gradient " << i;
    EXPECT_LT((left[i] - alone[i]).abs().max().item<double>(), 1e-5) << "gradient " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Attention, PackingTest, ::testing::Values(AttentionImpl::kSdpa, AttentionImpl::kEager),
                         [](const ::testing::TestParamInfo<AttentionImpl>& info) {
                           return std::string(AttentionImplName(info.param));
                         });

}  // namespace
}  // namespace tuneforge
