// Shifted cross entropy as transformers' LlamaForCausalLM computes it, from logits or a chunk of rows at a time.
#include "services/trainer/train/causal_lm_loss.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "services/trainer/train/cross_entropy_rows.h"

namespace tuneforge {

namespace {

// Labels shifted left by one ([B*T]): position t is scored against token t+1, the last position gets kIgnoreLabel.
at::Tensor ShiftedLabels(const at::Tensor& labels) {
  return at::cat({labels.slice(1, 1), at::full({labels.size(0), 1}, int64_t{kIgnoreLabel}, labels.options())}, 1)
      .view({-1});
}

// On the CPU in fp32 and bf16 a chunk's loss and gradient come from CrossEntropyRow, rows in parallel, in place over
// the chunk's logits (contiguous, as at::linear returns them).
bool RowKernelApplies(const at::Tensor& logits) {
  return logits.is_cpu() && logits.is_contiguous() &&
         (logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kBFloat16);
}

// The chunk's summed loss; with write_grad the logits become scale * (softmax - onehot). targets: [rows, 1] int64.
double RowKernelLoss(at::Tensor& logits, const at::Tensor& targets, double scale, bool write_grad) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  const at::Tensor t = targets.contiguous();
  const int64_t* target = t.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    TORCH_CHECK(target[r] >= 0 && target[r] < vocab, "label ", target[r], " is outside the vocabulary [0, ", vocab,
                ")");
  }
  std::vector<double> losses(static_cast<size_t>(rows));
  const bool bf16 = logits.scalar_type() == at::kBFloat16;
  auto* base = static_cast<char*>(logits.data_ptr());
  const int64_t row_bytes = vocab * static_cast<int64_t>(logits.element_size());
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      void* row = base + r * row_bytes;
      losses[r] = bf16 ? CrossEntropyRowBf16(static_cast<uint16_t*>(row), vocab, target[r], static_cast<float>(scale),
                                             write_grad)
                       : CrossEntropyRow(static_cast<float*>(row), vocab, target[r], static_cast<float>(scale),
                                         write_grad);
    }
  });
  double sum = 0;
  for (double l : losses) sum += l;
  return sum;
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
    double kernel_loss = 0;  // the row kernel's chunks: summed in double, added to `loss` at the end
    for (int64_t start = 0; start < counted; start += chunk_rows) {
      const at::Tensor chunk = rows.slice(0, start, std::min(counted, start + chunk_rows));
      const at::Tensor h = hidden.index_select(0, chunk);
      const at::Tensor target = labels.index_select(0, chunk).unsqueeze(1);
      at::Tensor logits = at::linear(h, lm_head);
      at::Tensor g;
      if (RowKernelApplies(logits)) {
        // The loss and, in place, d(mean loss)/d(logits) = (softmax - onehot) / counted, in one kernel per row.
        kernel_loss += RowKernelLoss(logits, target, scale, hidden_grad || head_grad);
        if (!hidden_grad && !head_grad) continue;
        g = logits;
      } else {
        // One fused log-softmax pass; its exp is the softmax the gradient needs.
        at::Tensor log_probs = at::log_softmax(logits.to(at::kFloat), 1);
        loss.sub_(log_probs.gather(1, target).sum());
        if (!hidden_grad && !head_grad) continue;
        // d(mean loss)/d(logits) = (softmax - onehot) / counted, in fp32 as the plain path has it, then in the
        // projection's dtype for the two matmuls, as autograd would cast it.
        log_probs.exp_();
        log_probs.scatter_add_(1, target, at::full({target.size(0), 1}, -1.0f, log_probs.options()));
        log_probs.mul_(scale);
        g = log_probs.to(lm_head.scalar_type());
      }
      if (hidden_grad) grad_hidden.index_copy_(0, chunk, at::mm(g, lm_head));
      if (head_grad) grad_head.add_(at::mm(g.t(), h).to(at::kFloat));
    }
    loss.add_(kernel_loss);
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
