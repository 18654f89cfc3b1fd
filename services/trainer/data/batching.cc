// Epoch order, padding and packing (see batching.h).
#include "services/trainer/data/batching.h"

#include <algorithm>

#include "common/dataset_files.h"

namespace tuneforge {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

namespace {

// Rows of example indices: one example each, or packed end to end up to max_seq_len.
std::vector<std::vector<size_t>> PlanRows(const std::vector<Example>& examples, const std::vector<size_t>& order,
                                          const BatchOptions& options) {
  std::vector<std::vector<size_t>> rows;
  size_t used = 0;
  for (size_t idx : order) {
    const size_t len = examples[idx].input_ids.size();
    if (!options.packing || rows.empty() || used + len > static_cast<size_t>(options.max_seq_len)) {
      rows.push_back({idx});
      used = len;
    } else {
      rows.back().push_back(idx);
      used += len;
    }
  }
  return rows;
}

}  // namespace

std::vector<size_t> EpochOrder(size_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  if (!shuffle) {
    std::vector<size_t> identity(n);
    for (size_t i = 0; i < n; ++i) identity[i] = i;
    return identity;
  }
  return SeededPermutation(n, SplitMix64(seed ^ SplitMix64(static_cast<uint64_t>(epoch))));
}

std::vector<Batch> MakeBatches(const std::vector<Example>& examples, const std::vector<size_t>& order,
                               const BatchOptions& options) {
  const std::vector<std::vector<size_t>> rows = PlanRows(examples, order, options);
  const size_t per_batch = static_cast<size_t>(std::max<int64_t>(1, options.batch_size));
  std::vector<Batch> batches;
  const bool flat = options.padding_free && !options.packing;
  for (size_t first = 0; first < rows.size(); first += per_batch) {
    const size_t last = std::min(rows.size(), first + per_batch);
    Batch b;
    b.rows = flat ? 1 : static_cast<int64_t>(last - first);
    int64_t longest = 0, total = 0;
    for (size_t r = first; r < last; ++r) {
      int64_t len = 0;
      for (size_t idx : rows[r]) len += static_cast<int64_t>(examples[idx].input_ids.size());
      longest = std::max(longest, len);
      total += len;
    }
    int64_t cols = longest;
    if (flat) {
      cols = total;
    } else if (options.packing) {
      cols = options.max_seq_len;
    } else if (options.pad_to_multiple_of > 1) {
      const int64_t m = options.pad_to_multiple_of;
      cols = std::min<int64_t>(std::max<int64_t>(options.max_seq_len, longest), (longest + m - 1) / m * m);
    }
    b.cols = cols;
    const size_t cells = static_cast<size_t>(b.rows * b.cols);
    b.input_ids.assign(cells, options.pad_id);
    b.labels.assign(cells, kIgnoreLabel);
    b.attention_mask.assign(cells, 0);
    b.position_ids.assign(cells, 0);
    size_t at = 0;
    int64_t segment = 0;
    for (size_t r = first; r < last; ++r) {
      if (!flat) {  // each planned row its own batch row; padding-free: all of them one after another
        at = (r - first) * static_cast<size_t>(b.cols);
        segment = 0;
      }
      for (size_t idx : rows[r]) {
        const Example& ex = examples[idx];
        ++segment;
        for (size_t t = 0; t < ex.input_ids.size(); ++t, ++at) {
          b.input_ids[at] = ex.input_ids[t];
          b.labels[at] = t == 0 ? kIgnoreLabel : ex.labels[t];
          b.attention_mask[at] = segment;
          b.position_ids[at] = static_cast<int64_t>(t);
          ++b.tokens;
          if (b.labels[at] != kIgnoreLabel) ++b.label_tokens;
        }
        b.examples.push_back(idx);
      }
    }
    batches.push_back(std::move(b));
  }
  return batches;
}

}  // namespace tuneforge
