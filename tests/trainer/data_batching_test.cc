// Epoch order, padding and packing of examples into batches.
#include <algorithm>
#include <numeric>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/trainer/data/batching.h"

namespace tuneforge {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr int64_t X = kIgnoreLabel;

Example Make(std::vector<int32_t> ids, size_t prompt_tokens) {
  Example ex;
  ex.input_ids = ids;
  ex.labels = ids;
  for (size_t t = 0; t < prompt_tokens && t < ids.size(); ++t) ex.labels[t] = kIgnoreLabel;
  return ex;
}

TEST(DataBatchingTest, EpochOrderIsASeededPermutation) {
  const std::vector<size_t> a = EpochOrder(50, 7, 0, true);
  EXPECT_EQ(a, EpochOrder(50, 7, 0, true));
  EXPECT_NE(a, EpochOrder(50, 7, 1, true));
  EXPECT_NE(a, EpochOrder(50, 8, 0, true));
  std::vector<size_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<size_t> identity(50);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  EXPECT_NE(a, identity);
  EXPECT_EQ(EpochOrder(50, 7, 3, false), identity);
  EXPECT_TRUE(EpochOrder(0, 7, 0, true).empty());
  // The order is part of a checkpoint's meaning: pinned so that a change of algorithm is noticed.
  EXPECT_THAT(EpochOrder(8, 42, 0, true), ElementsAre(1, 0, 3, 4, 2, 7, 6, 5));
}

TEST(DataBatchingTest, PaddingOneExamplePerRow) {
  std::vector<Example> examples = {Make({10, 11, 12}, 2), Make({20, 21, 22, 23, 24}, 1), Make({30, 31}, 0)};
  BatchOptions opts;
  opts.batch_size = 2;
  opts.max_seq_len = 8;
  opts.pad_id = 99;
  auto batches = MakeBatches(examples, {2, 1, 0}, opts);
  ASSERT_EQ(batches.size(), 2u);
  const Batch& b = batches[0];
  EXPECT_EQ(b.rows, 2);
  EXPECT_EQ(b.cols, 5);
  EXPECT_THAT(b.examples, ElementsAre(2u, 1u));
  EXPECT_THAT(b.input_ids, ElementsAreArray<int64_t>({30, 31, 99, 99, 99, 20, 21, 22, 23, 24}));
  EXPECT_THAT(b.labels, ElementsAreArray<int64_t>({X, 31, X, X, X, X, 21, 22, 23, 24}));
  EXPECT_THAT(b.attention_mask, ElementsAreArray<int64_t>({1, 1, 0, 0, 0, 1, 1, 1, 1, 1}));
  EXPECT_THAT(b.position_ids, ElementsAreArray<int64_t>({0, 1, 0, 0, 0, 0, 1, 2, 3, 4}));
  EXPECT_EQ(b.tokens, 7);
  EXPECT_EQ(b.label_tokens, 5);
  const Batch& last = batches[1];
  EXPECT_EQ(last.rows, 1);
  EXPECT_EQ(last.cols, 3);
  EXPECT_THAT(last.labels, ElementsAreArray<int64_t>({X, X, 12}));

  opts.pad_to_multiple_of = 4;
  auto rounded = MakeBatches(examples, {0, 1, 2}, opts);
  EXPECT_EQ(rounded[0].cols, 8);  // 5 rounded up to 8
  EXPECT_EQ(rounded[1].cols, 4);  // 2 rounded up to 4
  opts.pad_to_multiple_of = 64;
  EXPECT_EQ(MakeBatches(examples, {0, 1, 2}, opts)[0].cols, 8);  // never past max_seq_len
}

TEST(DataBatchingTest, PaddingFreeBatchesAreTheSameExamplesInOneRow) {
  std::vector<Example> examples = {Make({10, 11, 12}, 1), Make({20, 21, 22, 23}, 2), Make({30, 31}, 0),
                                   Make({40, 41, 42, 43, 44, 45}, 3), Make({50, 51}, 1)};
  BatchOptions opts;
  opts.batch_size = 2;
  opts.max_seq_len = 8;
  opts.pad_to_multiple_of = 4;  // padding only: no effect here
  BatchOptions padded_opts = opts;
  opts.padding_free = true;
  const auto batches = MakeBatches(examples, {0, 1, 2, 3, 4}, opts);
  const auto padded = MakeBatches(examples, {0, 1, 2, 3, 4}, padded_opts);
  ASSERT_EQ(batches.size(), 3u);
  ASSERT_EQ(padded.size(), 3u);
  for (size_t i = 0; i < batches.size(); ++i) {  // the steps padding takes: same examples, tokens and labels
    EXPECT_EQ(batches[i].examples, padded[i].examples);
    EXPECT_EQ(batches[i].tokens, padded[i].tokens);
    EXPECT_EQ(batches[i].label_tokens, padded[i].label_tokens);
    EXPECT_EQ(batches[i].rows, 1);
  }
  const Batch& b = batches[0];
  EXPECT_EQ(b.cols, 7);  // no padding, even past pad_to_multiple_of
  EXPECT_THAT(b.input_ids, ElementsAreArray<int64_t>({10, 11, 12, 20, 21, 22, 23}));
  EXPECT_THAT(b.labels, ElementsAreArray<int64_t>({X, 11, 12, X, X, 22, 23}));
  EXPECT_THAT(b.attention_mask, ElementsAreArray<int64_t>({1, 1, 1, 2, 2, 2, 2}));
  EXPECT_THAT(b.position_ids, ElementsAreArray<int64_t>({0, 1, 2, 0, 1, 2, 3}));
  EXPECT_EQ(batches[1].cols, 8);  // 2 + 6 tokens: a row may be longer than max_seq_len's one example
  EXPECT_THAT(batches[2].attention_mask, ElementsAreArray<int64_t>({1, 1}));

  opts.packing = true;  // packing plans its own rows; padding_free changes nothing there
  padded_opts.packing = true;
  EXPECT_EQ(MakeBatches(examples, {0, 1, 2, 3, 4}, opts)[0].input_ids,
            MakeBatches(examples, {0, 1, 2, 3, 4}, padded_opts)[0].input_ids);
}

TEST(DataBatchingTest, PackingLaysExamplesEndToEnd) {
  std::vector<Example> examples = {Make({10, 11, 12}, 1), Make({20, 21, 22, 23}, 2), Make({30, 31}, 0),
                                   Make({40, 41, 42, 43, 44, 45}, 3)};
  BatchOptions opts;
  opts.batch_size = 2;
  opts.max_seq_len = 8;
  opts.packing = true;
  opts.pad_id = 0;
  auto batches = MakeBatches(examples, {0, 1, 2, 3}, opts);
  // Rows: [0 1] (7 tokens), [2 3] (8 tokens).
  ASSERT_EQ(batches.size(), 1u);
  const Batch& b = batches[0];
  EXPECT_EQ(b.rows, 2);
  EXPECT_EQ(b.cols, 8);
  EXPECT_THAT(b.examples, ElementsAre(0u, 1u, 2u, 3u));
  EXPECT_THAT(b.input_ids, ElementsAreArray<int64_t>({10, 11, 12, 20, 21, 22, 23, 0,  //
                                                      30, 31, 40, 41, 42, 43, 44, 45}));
  EXPECT_THAT(b.labels, ElementsAreArray<int64_t>({X, 11, 12, X, X, 22, 23, X,  //
                                                   X, 31, X, X, X, 43, 44, 45}));
  EXPECT_THAT(b.attention_mask, ElementsAreArray<int64_t>({1, 1, 1, 2, 2, 2, 2, 0,  //
                                                           1, 1, 2, 2, 2, 2, 2, 2}));
  EXPECT_THAT(b.position_ids, ElementsAreArray<int64_t>({0, 1, 2, 0, 1, 2, 3, 0,  //
                                                         0, 1, 0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(b.tokens, 15);
  EXPECT_EQ(b.label_tokens, 8);

  // A different order packs differently but keeps every example exactly once.
  auto other = MakeBatches(examples, EpochOrder(4, 1, 0, true), opts);
  std::vector<size_t> seen;
  int64_t tokens = 0;
  for (const Batch& ob : other) {
    seen.insert(seen.end(), ob.examples.begin(), ob.examples.end());
    tokens += ob.tokens;
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_THAT(seen, ElementsAre(0u, 1u, 2u, 3u));
  EXPECT_EQ(tokens, 15);
}

}  // namespace
}  // namespace tuneforge
