// Shifted cross entropy as transformers' LlamaForCausalLM computes it, from logits or a chunk of rows at a time.
#include "services/trainer/train/causal_lm_loss.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <limits>

namespace tuneforge {

namespace {

// Labels shifted left by one ([B*T]): position t is scored against token t+1, the last position gets kIgnoreLabel.
at::Tensor ShiftedLabels(const at::Tensor& labels) {
  return at::cat({labels.slice(1, 1), at::full({labels.size(0), 1}, int64_t{kIgnoreLabel}, labels.options())}, 1)
      .view({-1});
}

// The loss and its gradients, computed in the forward. Inputs: hidden [N,H], lm_head [V,H], shifted labels [N],
// chunk rows. The gradients are those of the mean loss; backward multiplies them by the incoming gradient.
class ChunkedLoss : public torch::autograd::Function<ChunkedLoss> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& lm_head,
                            const at::Tensor& labels, int64_t chunk_rows) {
    const bool hidden_grad = hidden.requires_grad();
    const bool head_grad = lm_head.requires_grad();
    at::NoGradGuard no_grad;
    const at::Tensor rows = labels.ne(kIgnoreLabel).nonzero().view({-1});
    const int64_t counted = rows.size(0);
    at::Tensor loss = at::zeros({}, hidden.options().dtype(at::kFloat));
    at::Tensor grad_hidden = hidden_grad ? at::zeros_like(hidden) : at::Tensor();
    at::Tensor grad_head = head_grad ? at::zeros(lm_head.sizes(), lm_head.options().dtype(at::kFloat)) : at::Tensor();
    if (counted == 0) {
      loss.fill_(std::numeric_limits<float>::quiet_NaN());
    }
    const double scale = counted > 0 ? 1.0 / static_cast<double>(counted) : 0.0;
    for (int64_t start = 0; start < counted; start += chunk_rows) {
      const at::Tensor chunk = rows.slice(0, start, std::min(counted, start + chunk_rows));
      const at::Tensor h = hidden.index_select(0, chunk);
      const at::Tensor target = labels.index_select(0, chunk).unsqueeze(1);
      // One fused log-softmax pass; its exp is the softmax the gradient needs.
      at::Tensor log_probs = at::log_softmax(at::linear(h, lm_head).to(at::kFloat), 1);
      loss.sub_(log_probs.gather(1, target).sum());
      if (!hidden_grad && !head_grad) continue;
      // d(mean loss)/d(logits) = (softmax - onehot) / counted, in fp32 as the plain path has it, then in the
      // projection's dtype for the two matmuls, as autograd would cast it.
      log_probs.exp_();
      log_probs.scatter_add_(1, target, at::full({target.size(0), 1}, -1.0f, log_probs.options()));
      log_probs.mul_(scale);
      const at::Tensor g = log_probs.to(lm_head.scalar_type());
      if (hidden_grad) grad_hidden.index_copy_(0, chunk, at::mm(g, lm_head));
      if (head_grad) grad_head.add_(at::mm(g.t(), h).to(at::kFloat));
    }
    if (counted > 0) loss.mul_(scale);
    ctx->saved_data["grad_hidden"] = grad_hidden;
    ctx->saved_data["grad_head"] = head_grad ? grad_head.to(lm_head.scalar_type()) : at::Tensor();
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const at::Tensor& g = grad_outputs[0];
    auto scaled = [&](const char* key) -> at::Tensor {
      const at::Tensor t = ctx->saved_data[key].toTensor();
      return t.defined() ? t * g.to(t.scalar_type()) : at::Tensor();
    };
    return {scaled("grad_hidden"), scaled("grad_head"), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor CausalLmLoss(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t vocab = logits.size(2);
  at::Tensor flat_logits = logits.to(at::kFloat).reshape({-1, vocab});
  return at::cross_entropy_loss(flat_logits, ShiftedLabels(labels), /*weight=*/{}, at::Reduction::Mean,
                                int64_t{kIgnoreLabel});
}

at::Tensor ChunkedCausalLmLoss(const at::Tensor& hidden, const at::Tensor& lm_head, const at::Tensor& labels,
                               int64_t chunk_rows) {
  const at::Tensor flat = hidden.reshape({-1, hidden.size(-1)});
  return ChunkedLoss::apply(flat, lm_head, ShiftedLabels(labels), std::max<int64_t>(chunk_rows, 1));
}

int64_t DefaultLossChunkRows(int64_t vocab) {
  return std::max<int64_t>(1, (int64_t{32} << 20) / std::max<int64_t>(vocab, 1));
}

}  // namespace tuneforge
