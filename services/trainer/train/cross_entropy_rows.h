// The cross entropy of rows of logits and its gradient in one kernel, for the chunked loss on the CPU: each row is read
// three times (max, sum of exponentials, gradient) in its own dtype and the gradient is written over it, instead of
// an fp32 copy, a log-softmax, an exp, a scale and a cast back, each a pass of its own over fresh memory. Torch-free.
#ifndef TUNEFORGE_SERVICES_TRAINER_TRAIN_CROSS_ENTROPY_ROWS_H_
#define TUNEFORGE_SERVICES_TRAINER_TRAIN_CROSS_ENTROPY_ROWS_H_

#include <cstdint>

namespace tuneforge {

// One row of `vocab` logits (fp32, or bf16 as its raw bits) against the token `target` in [0, vocab): returns
// logsumexp(row) - row[target], computed in fp32 (NaN when the row holds a NaN or an infinity). With write_grad, the
// row is overwritten by the gradient of that loss times grad_scale: (softmax(row) - onehot(target)) * grad_scale,
// rounded to nearest-even for bf16.
double CrossEntropyRow(float* row, int64_t vocab, int64_t target, float grad_scale, bool write_grad);
double CrossEntropyRowBf16(uint16_t* row, int64_t vocab, int64_t target, float grad_scale, bool write_grad);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TRAIN_CROSS_ENTROPY_ROWS_H_
