// Batches of training examples: a deterministic order per (seed, epoch), then either padding (one example a row,
// padded to the longest in the batch) or packing (examples laid end to end in rows of max_seq_len, each attending
// only to itself, with position ids restarting at 0).
#ifndef TUNEFORGE_SERVICES_TRAINER_DATA_BATCHING_H_
#define TUNEFORGE_SERVICES_TRAINER_DATA_BATCHING_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "services/trainer/data/examples.h"

namespace tuneforge {

struct BatchOptions {
  int64_t batch_size = 1;   // rows per batch
  int64_t max_seq_len = 2048;
  bool packing = false;
  int32_t pad_id = 0;
  int64_t pad_to_multiple_of = 1;  // padding mode: round the row length up (never past max_seq_len)
  // Padding mode without the padding: each batch's examples (the same ones padding would group) end to end in one
  // row, each attending only to itself, positions restarting. The same loss and gradients as padding (exact), for
  // models that attend sequence by sequence (CausalLM's per-sequence attention).
  bool padding_free = false;
};

// Row-major [rows, cols] tensors as flat vectors, ready for CausalLM::Forward and the loss.
struct Batch {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> input_ids;
  std::vector<int64_t> labels;  // kIgnoreLabel on padding and on the first token of each example
  // 0 on padding; elsewhere the 1-based index of the example within its row (always 1 without packing). Tokens
  // attend only to earlier tokens with the same value.
  std::vector<int64_t> attention_mask;
  std::vector<int64_t> position_ids;  // 0.. within each example; 0 on padding
  std::vector<size_t> examples;       // indices into the example list, in row order
  int64_t tokens = 0;                 // non-padding tokens
  int64_t label_tokens = 0;           // tokens with a loss
};

// 0..n-1 in training order for `epoch`: shuffled by a generator seeded from (seed, epoch), identical on every
// machine and standard library; the identity order when !shuffle.
std::vector<size_t> EpochOrder(size_t n, uint64_t seed, int64_t epoch, bool shuffle);

// The SplitMix64 mixer: seeds derived from (seed, epoch) or (seed, step) with it are independent of each other.
uint64_t SplitMix64(uint64_t x);

// Batches of the examples in `order`. Every example must be at most max_seq_len long (ExampleBuilder truncates).
// Packing fills rows greedily in order, starting a new row when the next example does not fit; the last batch may
// have fewer rows. Padding-free batches are one row of batch_size examples (fewer in the last).
std::vector<Batch> MakeBatches(const std::vector<Example>& examples, const std::vector<size_t>& order,
                               const BatchOptions& options);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_DATA_BATCHING_H_
