// Generation with a KV cache: greedy output equal to transformers' generate() token for token for every family (with
// and without LoRA, with a repetition penalty, with an EOS that stops one row), sampled output equal to its draws for
// the same seed (temperature, top-k, top-p, all with a repetition penalty), cached logits equal to a full
// recomputation, cached and uncached decoding giving the same tokens (greedy and sampled), the sampling settings, EOS,
// stop strings, max_new_tokens, and the config errors a user sees.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model_config.h"
#include "common/sha256.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/generation.h"
#include "services/trainer/peft/lora_adapter.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

#ifndef TUNEFORGE_GENERATION_REFERENCE
#define TUNEFORGE_GENERATION_REFERENCE ""
#endif

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;
using Json = nlohmann::json;
using Rows = std::vector<std::vector<int64_t>>;

const std::vector<std::string> kCases = {"llama",  "llama_mha", "llama3_rope",   "mistral",
                                         "qwen2",  "phi3",      "phi3_longrope", "gemma"};

std::string CaseDir(const std::string& name) { return ::tuneforge::testing::GeneratedReference() + "/" + name; }

// What tests/reference/make_generation_reference.py writes (the hf_generation_reference fixture).
std::string GenerationReference() {
  const char* env = std::getenv("TUNEFORGE_GENERATION_REFERENCE");
  return env != nullptr && *env != '\0' ? env : TUNEFORGE_GENERATION_REFERENCE;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<CausalLM> LoadCase(const std::string& name, AttentionImpl attn, bool adapter = false) {
  const std::string dir = CaseDir(name);
  BuildOptions options;
  options.attention = attn;
  if (adapter) {
    auto arch = ParseModelConfig(ReadText(dir + "/config.json"), "", "config.json");
    EXPECT_THAT(arch.status(), IsOk());
    if (!arch.ok()) return nullptr;
    auto lora = ReadLoraOptions(dir + "/lora", *arch);
    EXPECT_THAT(lora.status(), IsOk());
    if (!lora.ok()) return nullptr;
    options.lora = *lora;
  }
  auto model = CausalLM::Load(dir, options);
  EXPECT_THAT(model.status(), IsOk());
  if (!model.ok()) return nullptr;
  if (adapter) {
    EXPECT_THAT(LoadLoraWeights(dir + "/lora", **model), IsOk());
  }
  return std::move(*model);
}

// Prompts of the given lengths, ids in [3, vocab), the same for a seed.
Rows RandomPrompts(int64_t vocab, const std::vector<int64_t>& lengths, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> id(3, vocab - 1);
  Rows out;
  for (int64_t n : lengths) {
    out.emplace_back();
    for (int64_t i = 0; i < n; ++i) out.back().push_back(id(rng));
  }
  return out;
}

Rows Tokens(const std::vector<GeneratedSequence>& rows) {
  Rows out;
  for (const auto& r : rows) out.push_back(r.tokens);
  return out;
}

std::vector<GeneratedSequence> MustGenerate(const CausalLM& model, const Rows& prompts, const GenerationConfig& config,
                                            const DecodeFn& decode = {}) {
  auto out = Generate(model, prompts, config, decode);
  EXPECT_THAT(out.status(), IsOk());
  return out.ok() ? *out : std::vector<GeneratedSequence>{};
}

GenerationConfig Greedy(int64_t max_new_tokens) {
  GenerationConfig c;
  c.max_new_tokens = max_new_tokens;
  c.pad_token_id = 0;
  return c;
}

std::string ParamName(const ::testing::TestParamInfo<std::tuple<std::string, AttentionImpl>>& info) {
  return absl::StrCat(std::get<0>(info.param), "_", AttentionImplName(std::get<1>(info.param)));
}

class FamilyTest : public ::testing::TestWithParam<std::tuple<std::string, AttentionImpl>> {
 protected:
  void SetUp() override {
    TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
    at::set_num_threads(1);
  }
  const std::string& family() const { return std::get<0>(GetParam()); }
  AttentionImpl attention() const { return std::get<1>(GetParam()); }
};

// --- transformers' generate() -----------------------------------------------------------------------------------

class MatchesTransformersTest : public FamilyTest {};

TEST_P(MatchesTransformersTest, SameTokensAsGenerate) {
  const std::string path = GenerationReference() + "/" + family() + ".json";
  const std::string text = ReadText(path);
  if (text.empty()) {
    GTEST_SKIP() << "no " << path << ": the hf_generation_reference ctest fixture writes it (tests/reference/"
                 << "make_generation_reference.py, with a Python that has torch, transformers and peft)";
  }
  const Json doc = Json::parse(text);
  // The reference must come from the model files that are here now (both fixtures run together under ctest).
  for (const auto& [file, sha] : doc.at("files").items()) {
    auto here = Sha256File(CaseDir(family()) + "/" + file);
    ASSERT_THAT(here.status(), IsOk());
    ASSERT_EQ(*here, sha.get<std::string>())
        << path << " was made from another " << file << ": run `ctest -R hf_generation_reference` again";
  }
  const Rows prompts = doc.at("prompts").get<Rows>();
  std::map<bool, std::unique_ptr<CausalLM>> models;
  int runs = 0;
  for (const Json& run : doc.at("runs")) {
    SCOPED_TRACE(run.at("name").get<std::string>());
    const bool adapter = run.at("adapter").get<bool>();
    if (models.count(adapter) == 0) models[adapter] = LoadCase(family(), attention(), adapter);
    ASSERT_NE(models[adapter], nullptr);
    auto config = ParseGenerationConfig(run.at("generation_config").dump(), "reference generation_config");
    ASSERT_THAT(config.status(), IsOk());
    const Rows expected = run.at("new_tokens").get<Rows>();
    const auto reasons = run.at("finish_reasons").get<std::vector<std::string>>();
    for (bool use_cache : {true, false}) {
      SCOPED_TRACE(use_cache ? "with cache" : "without cache");
      config->use_cache = use_cache;
      const auto out = MustGenerate(*models[adapter], prompts, *config);
      ASSERT_EQ(out.size(), expected.size());
      EXPECT_EQ(Tokens(out), expected);
      for (size_t r = 0; r < out.size(); ++r) EXPECT_EQ(FinishReasonName(out[r].finish_reason), reasons[r]) << r;
    }
    ++runs;
  }
  // greedy, greedy_lora, repetition_penalty, eos, and sampled: temperature, top_k, top_p, all with a penalty
  EXPECT_EQ(runs, 8);
}

INSTANTIATE_TEST_SUITE_P(Families, MatchesTransformersTest,
                         ::testing::Combine(::testing::ValuesIn(kCases),
                                            ::testing::Values(AttentionImpl::kEager, AttentionImpl::kSdpa)),
                         ParamName);

// --- the cache itself -------------------------------------------------------------------------------------------

at::Tensor LongTensor(const Rows& rows, int64_t pad) {
  size_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.size());
  at::Tensor t = at::full({static_cast<int64_t>(rows.size()), static_cast<int64_t>(longest)}, pad, at::kLong);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < rows[i].size(); ++j) t[i][longest - rows[i].size() + j] = rows[i][j];
  }
  return t;
}

class KvCacheTest : public FamilyTest {};

// Prefill a left-padded batch into a cache, then feed the greedy token one at a time: at every step the cached
// logits equal Forward over the whole sequence (the training path, checked against transformers by the parity
// tests). Also a batch of one without padding fed in two chunks, which takes the masks' other branches.
TEST_P(KvCacheTest, CachedLogitsEqualFullRecomputation) {
  auto model = LoadCase(family(), attention());
  ASSERT_NE(model, nullptr);
  const int64_t vocab = model->config().arch.vocab_size;
  for (const std::vector<int64_t>& lengths : {std::vector<int64_t>{9, 4, 7}, std::vector<int64_t>{10}}) {
    SCOPED_TRACE(absl::StrCat("batch of ", lengths.size()));
    const Rows prompts = RandomPrompts(vocab, lengths, 11);
    at::Tensor ids = LongTensor(prompts, 0);
    Rows ones;
    for (const auto& p : prompts) ones.emplace_back(p.size(), 1);
    at::Tensor mask = LongTensor(ones, 0);
    at::Tensor positions = (mask.cumsum(-1) - 1).clamp_min(0);
    const int64_t batch = ids.size(0), length = ids.size(1);

    KvCache cache;  // no reservation: the storage grows while decoding
    at::Tensor cached;
    if (batch == 1) {  // two chunks: the second one is several queries after cached tokens
      const int64_t half = length / 2;
      at::Tensor first = model->ForwardWithCache(ids.narrow(1, 0, half), mask.narrow(1, 0, half),
                                                 positions.narrow(1, 0, half), cache);
      if (model->CacheValidUpTo(cache, length - 1)) {
        at::Tensor second = model->ForwardWithCache(ids.narrow(1, half, length - half), mask,
                                                    positions.narrow(1, half, length - half), cache);
        cached = at::cat({first, second}, 1);
      } else {  // longrope: the first chunk used short_factor, the whole prompt needs long_factor
        cache.Clear();
        cached = model->ForwardWithCache(ids, mask, positions, cache);
      }
    } else {
      cached = model->ForwardWithCache(ids, mask, positions, cache);
    }
    EXPECT_EQ(cache.length(), length);
    EXPECT_EQ(cache.keys(0).size(2), length);
    at::Tensor full;
    {
      at::NoGradGuard no_grad;
      full = model->Forward(ids, mask, positions);
    }
    const at::Tensor real = mask.to(at::kBool).unsqueeze(-1).expand_as(full);
    EXPECT_LT((cached - full).abs().masked_select(real).max().item<double>(), 1e-4) << "prefill";
    at::Tensor last = cached.select(1, -1);
    for (int step = 0; step < 12; ++step) {
      at::Tensor next = last.argmax(-1).view({batch, 1});
      at::Tensor next_positions = positions.narrow(1, positions.size(1) - 1, 1) + 1;
      ids = at::cat({ids, next}, 1);
      mask = at::cat({mask, at::ones({batch, 1}, at::kLong)}, 1);
      positions = at::cat({positions, next_positions}, 1);
      ASSERT_TRUE(model->CacheValidUpTo(cache, next_positions.max().item<int64_t>()));
      at::Tensor step_logits = model->ForwardWithCache(next, mask, next_positions, cache, /*logits_to_keep=*/1);
      ASSERT_EQ(step_logits.size(1), 1);
      at::NoGradGuard no_grad;
      at::Tensor reference = model->Forward(ids, mask, positions).select(1, -1);
      last = step_logits.select(1, 0);
      EXPECT_LT((last - reference).abs().max().item<double>(), 1e-4) << "step " << step;
    }
    EXPECT_EQ(cache.length(), length + 12);
  }
}

// Prompts (drawn from `seed` on) whose greedy decisions over `steps` steps, recomputing the whole sequence, all have
// a gap of at least 1e-4 between the best and the second best logit. Cached and uncached logits differ by ~3e-6, so at
// a near-tie of a random tiny model either token would be right; such prompts are skipped, not the check loosened.
Rows ClearPrompts(const CausalLM& model, const std::vector<int64_t>& lengths, uint64_t seed, int steps) {
  at::NoGradGuard no_grad;
  for (uint64_t attempt = 0; attempt < 50; ++attempt) {
    const Rows prompts = RandomPrompts(model.config().arch.vocab_size, lengths, seed + attempt);
    at::Tensor ids = LongTensor(prompts, 0);
    Rows ones;
    for (const auto& p : prompts) ones.emplace_back(p.size(), 1);
    at::Tensor mask = LongTensor(ones, 0);
    double gap = 1e9;
    for (int step = 0; step < steps; ++step) {
      at::Tensor logits = model.Forward(ids, mask, (mask.cumsum(-1) - 1).clamp_min(0)).select(1, -1);
      at::Tensor top2 = std::get<0>(logits.topk(2, -1));
      gap = std::min(gap, (top2.select(1, 0) - top2.select(1, 1)).min().item<double>());
      ids = at::cat({ids, logits.argmax(-1, /*keepdim=*/true)}, 1);
      mask = at::cat({mask, at::ones({mask.size(0), 1}, at::kLong)}, 1);
    }
    if (gap >= 1e-4) return prompts;
  }
  ADD_FAILURE() << "50 prompt draws all had a greedy near-tie";
  return {};
}

// Greedy decoding with the cache gives exactly the tokens of recomputing everything, batched with left padding.
TEST_P(KvCacheTest, GreedyCachedEqualsUncached) {
  auto model = LoadCase(family(), attention());
  ASSERT_NE(model, nullptr);
  const Rows prompts = ClearPrompts(*model, {8, 3, 5, 1}, 21, 20);
  GenerationConfig config = Greedy(20);
  const auto cached = MustGenerate(*model, prompts, config);
  config.use_cache = false;
  const auto uncached = MustGenerate(*model, prompts, config);
  ASSERT_EQ(cached.size(), 4u);
  EXPECT_EQ(Tokens(cached), Tokens(uncached));
  for (const auto& row : cached) EXPECT_EQ(row.tokens.size(), 20u);
}

// Sampling draws the same tokens with and without the cache for a seed (the probabilities agree to rounding and the
// draws come from the same CPU generator in the same order).
TEST_P(KvCacheTest, SampledCachedEqualsUncached) {
  auto model = LoadCase(family(), attention());
  ASSERT_NE(model, nullptr);
  const Rows prompts = RandomPrompts(model->config().arch.vocab_size, {6, 2, 9}, 31);
  GenerationConfig config = Greedy(16);
  config.do_sample = true;
  config.temperature = 0.8;
  config.top_k = 40;
  config.top_p = 0.95;
  config.repetition_penalty = 1.1;
  config.seed = 1234;
  const auto cached = MustGenerate(*model, prompts, config);
  config.use_cache = false;
  const auto uncached = MustGenerate(*model, prompts, config);
  EXPECT_EQ(Tokens(cached), Tokens(uncached));
}

INSTANTIATE_TEST_SUITE_P(Families, KvCacheTest,
                         ::testing::Combine(::testing::ValuesIn(kCases),
                                            ::testing::Values(AttentionImpl::kEager, AttentionImpl::kSdpa)),
                         ParamName);

// Phi-3's longrope picks its factor list by the largest position in the batch: the step that first passes
// original_max_position_embeddings (6 in this case) must recompute the whole sequence, as decoding without a cache
// does.
TEST(LongRopeTest, CrossingTheOriginalLengthRecomputesTheCache) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  at::set_num_threads(1);
  auto model = LoadCase("phi3_longrope", AttentionImpl::kEager);
  ASSERT_NE(model, nullptr);
  ASSERT_EQ(model->config().rope.original_max_position_embeddings, 6);
  const Rows prompts = ClearPrompts(*model, {4, 2}, 41, 10);
  GenerationConfig config = Greedy(10);
  const auto cached = MustGenerate(*model, prompts, config);
  config.use_cache = false;
  EXPECT_EQ(Tokens(cached), Tokens(MustGenerate(*model, prompts, config)));

  // What recomputing avoids: keys cached with short_factor, queried with long_factor.
  at::Tensor ids = LongTensor(RandomPrompts(model->config().arch.vocab_size, {6}, 42), 0);
  KvCache cache;
  model->ForwardWithCache(ids, {}, {}, cache);
  EXPECT_TRUE(model->CacheValidUpTo(cache, 5));
  EXPECT_FALSE(model->CacheValidUpTo(cache, 6));
  at::Tensor next = at::full({1, 1}, 7, at::kLong);
  at::Tensor stale = model->ForwardWithCache(next, {}, {}, cache).select(1, -1);
  at::NoGradGuard no_grad;
  at::Tensor fresh = model->Forward(at::cat({ids, next}, 1)).select(1, -1);
  EXPECT_GT((stale - fresh).abs().max().item<double>(), 1e-3);
}

// --- decoding settings ------------------------------------------------------------------------------------------

class DecodingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
    at::set_num_threads(1);
    model_ = LoadCase("llama", AttentionImpl::kSdpa);
    ASSERT_NE(model_, nullptr);
    prompts_ = RandomPrompts(model_->config().arch.vocab_size, {7, 3, 5}, 51);
    greedy_ = MustGenerate(*model_, prompts_, Greedy(kNew));
    ASSERT_EQ(greedy_.size(), 3u);
  }
  static constexpr int64_t kNew = 12;
  std::unique_ptr<CausalLM> model_;
  Rows prompts_;
  std::vector<GeneratedSequence> greedy_;
};

TEST_F(DecodingTest, TopKOneAndTinyTopPAndZeroTemperatureAreGreedy) {
  GenerationConfig config = Greedy(kNew);
  config.do_sample = true;
  config.temperature = 1.5;
  config.top_k = 1;
  config.seed = 3;
  EXPECT_EQ(Tokens(MustGenerate(*model_, prompts_, config)), Tokens(greedy_)) << "top_k=1";
  config.top_k = 0;
  config.top_p = 1e-6;
  EXPECT_EQ(Tokens(MustGenerate(*model_, prompts_, config)), Tokens(greedy_)) << "top_p=1e-6";
  config.top_p = 1.0;
  config.temperature = 0;
  EXPECT_EQ(Tokens(MustGenerate(*model_, prompts_, config)), Tokens(greedy_)) << "temperature=0";
}

TEST_F(DecodingTest, SamplingIsDeterministicForASeedAndDiffersBetweenSeeds) {
  GenerationConfig config = Greedy(kNew);
  config.do_sample = true;
  config.temperature = 1.2;
  config.top_k = 0;
  config.seed = 77;
  const Rows first = Tokens(MustGenerate(*model_, prompts_, config));
  EXPECT_EQ(Tokens(MustGenerate(*model_, prompts_, config)), first);
  EXPECT_NE(first, Tokens(greedy_)) << "sampling at temperature 1.2 never left the argmax";
  config.seed = 78;
  EXPECT_NE(Tokens(MustGenerate(*model_, prompts_, config)), first) << "seeds 77 and 78 drew the same tokens";
}

TEST_F(DecodingTest, RepetitionPenaltyAvoidsSeenTokens) {
  // A penalty this large sends every seen token below every unseen one with a positive logit.
  GenerationConfig config = Greedy(kNew);
  config.repetition_penalty = 1e6;
  const auto out = MustGenerate(*model_, prompts_, config);
  ASSERT_EQ(out.size(), prompts_.size());
  bool greedy_repeats = false;
  for (size_t r = 0; r < out.size(); ++r) {
    std::set<int64_t> seen(prompts_[r].begin(), prompts_[r].end());
    std::set<int64_t> greedy_seen = seen;
    for (int64_t t : greedy_[r].tokens) greedy_repeats |= !greedy_seen.insert(t).second;
    for (int64_t t : out[r].tokens) EXPECT_TRUE(seen.insert(t).second) << "row " << r << " repeated " << t;
  }
  if (!greedy_repeats) GTEST_SKIP() << "plain greedy repeats nothing for this model, so the penalty showed nothing";
}

// The pad id fills the left padding, and transformers' repetition penalty counts it as a token a padded row has seen.
// Here a row is penalized for its own tokens only: making the pad id the token a padded row picks first (under a
// penalty that would push it down) changes nothing.
TEST_F(DecodingTest, PadIdDoesNotChangeWhatARowGenerates) {
  GenerationConfig config = Greedy(kNew);
  config.repetition_penalty = 1e6;
  config.pad_token_id = 1;
  const Rows first = Tokens(MustGenerate(*model_, prompts_, config));
  ASSERT_LT(prompts_[1].size(), prompts_[0].size());  // row 1 is left padded
  config.pad_token_id = first[1][0];
  EXPECT_EQ(Tokens(MustGenerate(*model_, prompts_, config)), first);
}

TEST_F(DecodingTest, MaxNewTokensIsRespected) {
  for (int64_t n : {1, 3}) {
    const auto out = MustGenerate(*model_, prompts_, Greedy(n));
    ASSERT_EQ(out.size(), prompts_.size());
    for (size_t r = 0; r < out.size(); ++r) {
      EXPECT_EQ(out[r].length, n);
      EXPECT_EQ(out[r].finish_reason, FinishReason::kLength);
      EXPECT_EQ(out[r].tokens, std::vector<int64_t>(greedy_[r].tokens.begin(), greedy_[r].tokens.begin() + n));
    }
  }
}

// Expected rows when each row stops at its first token in `stop` (or by length), padded as transformers pads.
std::vector<int64_t> StopAt(const Rows& greedy, size_t row, const std::set<int64_t>& stop, int64_t* length) {
  *length = static_cast<int64_t>(greedy[row].size());
  for (size_t i = 0; i < greedy[row].size(); ++i) {
    if (stop.count(greedy[row][i]) != 0) {
      *length = static_cast<int64_t>(i) + 1;
      break;
    }
  }
  return std::vector<int64_t>(greedy[row].begin(), greedy[row].begin() + *length);
}

TEST_F(DecodingTest, EosStopsARowWhileOthersGoOnAndFinishedRowsArePadded) {
  const Rows greedy = Tokens(greedy_);
  // A token that some row generates for the first time at step >= 1 and another row never generates.
  int64_t eos = -1;
  for (size_t r = 0; r < greedy.size() && eos < 0; ++r) {
    for (size_t i = 1; i + 2 < greedy[r].size() && eos < 0; ++i) {
      const int64_t t = greedy[r][i];
      if (std::find(greedy[r].begin(), greedy[r].begin() + i, t) != greedy[r].begin() + i) continue;
      for (size_t other = 0; other < greedy.size(); ++other) {
        if (std::find(greedy[other].begin(), greedy[other].end(), t) == greedy[other].end()) eos = t;
      }
    }
  }
  ASSERT_GE(eos, 0) << "no token of these greedy rows stops one row only";
  GenerationConfig config = Greedy(kNew);
  config.eos_token_ids = {model_->config().arch.vocab_size + 5, eos};  // the first is never generated
  config.pad_token_id = 2;
  const auto out = MustGenerate(*model_, prompts_, config);
  ASSERT_EQ(out.size(), greedy.size());
  int stopped = 0, went_on = 0;
  for (size_t r = 0; r < out.size(); ++r) {
    int64_t length = 0;
    std::vector<int64_t> expected = StopAt(greedy, r, {eos}, &length);
    expected.resize(kNew, 2);
    EXPECT_EQ(out[r].tokens, expected) << "row " << r;
    EXPECT_EQ(out[r].length, length) << "row " << r;
    const bool generates_eos = std::find(greedy[r].begin(), greedy[r].end(), eos) != greedy[r].end();
    EXPECT_EQ(out[r].finish_reason, generates_eos ? FinishReason::kEos : FinishReason::kLength) << "row " << r;
    (out[r].finish_reason == FinishReason::kEos ? stopped : went_on)++;
  }
  EXPECT_GE(stopped, 1);
  EXPECT_GE(went_on, 1);

  // Every row's first token is an EOS: the batch ends after one step.
  config.eos_token_ids.clear();
  for (const auto& row : greedy) config.eos_token_ids.push_back(row[0]);
  for (const auto& row : MustGenerate(*model_, prompts_, config)) {
    EXPECT_EQ(row.tokens.size(), 1u);
    EXPECT_EQ(row.finish_reason, FinishReason::kEos);
  }
}

// Token t decodes to "<t>", so a stop string can start inside one token and end inside another.
std::string Decode(const std::vector<int64_t>& ids) {
  std::string out;
  for (int64_t id : ids) absl::StrAppend(&out, "<", id, ">");
  return out;
}

TEST_F(DecodingTest, StopStringsStopTheRowAndSayWhereToTrim) {
  const Rows greedy = Tokens(greedy_);
  // From the middle of row 0's 5th token's text to the middle of its 6th: "3><45".
  const std::string fifth = Decode({greedy[0][4]}), sixth = Decode({greedy[0][5]});
  const std::string stop = fifth.substr(fifth.size() - 2) + sixth.substr(0, sixth.size() - 1);
  const std::string never = "no token decodes to this";
  GenerationConfig config = Greedy(kNew);
  config.stop_strings = {never, stop};
  config.pad_token_id = 1;
  const auto out = MustGenerate(*model_, prompts_, config, Decode);
  ASSERT_EQ(out.size(), greedy.size());
  bool row0_stopped_by_it = false;
  for (size_t r = 0; r < out.size(); ++r) {
    // Expected: the first step whose new text contains the stop string.
    int64_t length = kNew;
    for (int64_t n = 1; n <= kNew; ++n) {
      if (Decode(std::vector<int64_t>(greedy[r].begin(), greedy[r].begin() + n)).find(stop) != std::string::npos) {
        length = n;
        break;
      }
    }
    const std::vector<int64_t> own(greedy[r].begin(), greedy[r].begin() + length);
    EXPECT_EQ(out[r].length, length) << "row " << r;
    EXPECT_EQ(std::vector<int64_t>(out[r].tokens.begin(), out[r].tokens.begin() + out[r].length), own);
    for (size_t i = out[r].length; i < out[r].tokens.size(); ++i) EXPECT_EQ(out[r].tokens[i], 1) << "row " << r;
    const std::string text = Decode(own);
    if (text.find(stop) != std::string::npos) {
      EXPECT_EQ(out[r].finish_reason, FinishReason::kStopString) << "row " << r;
      EXPECT_EQ(out[r].stop_string, stop);
      EXPECT_EQ(text.substr(out[r].stop_string_offset, stop.size()), stop);
      EXPECT_EQ(text.substr(0, out[r].stop_string_offset).find(stop), std::string::npos);
      if (r == 0) row0_stopped_by_it = true;
    } else {
      EXPECT_EQ(out[r].finish_reason, FinishReason::kLength) << "row " << r;
    }
  }
  EXPECT_TRUE(row0_stopped_by_it);
  EXPECT_LE(out[0].length, 6);

  // A stop string that is in the prompt's text only does not stop anything: only new text counts.
  config.stop_strings = {Decode({prompts_[0][0], prompts_[0][1]})};
  const auto prompt_only = MustGenerate(*model_, prompts_, config, Decode);
  if (Decode(greedy[0]).find(config.stop_strings[0]) == std::string::npos) {
    EXPECT_EQ(prompt_only[0].finish_reason, FinishReason::kLength);
    EXPECT_EQ(prompt_only[0].tokens, greedy[0]);
  }
}

// --- configs and arguments --------------------------------------------------------------------------------------

TEST(GenerationConfigTest, ReadsHuggingFaceAndTuneforgeDocuments) {
  // A Hugging Face generation_config.json: keys we do not use are ignored, eos_token_id may be a list.
  auto hf = ParseGenerationConfig(R"({"_from_model_config": true, "bos_token_id": 1, "eos_token_id": [2, 32007],
      "pad_token_id": 0, "do_sample": true, "temperature": 0.6, "top_p": 0.9, "max_length": 4096,
      "transformers_version": "4.44.0", "num_beams": 1, "stop_strings": ["</s>", "###"]})",
                                  "generation_config.json");
  ASSERT_THAT(hf.status(), IsOk());
  EXPECT_EQ(hf->eos_token_ids, (std::vector<int64_t>{2, 32007}));
  EXPECT_EQ(hf->pad_token_id, 0);
  EXPECT_TRUE(hf->do_sample);
  EXPECT_DOUBLE_EQ(hf->temperature, 0.6);
  EXPECT_DOUBLE_EQ(hf->top_p, 0.9);
  EXPECT_EQ(hf->top_k, 50);            // transformers' default
  EXPECT_EQ(hf->max_new_tokens, 20);   // max_length is not read
  EXPECT_EQ(hf->stop_strings, (std::vector<std::string>{"</s>", "###"}));

  // A tuneforge generation document over those defaults: integers may arrive as doubles, `stop` is a string or list,
  // null keeps the default.
  auto ours = ParseGenerationConfig(R"({"max_new_tokens": 64.0, "top_k": 0, "repetition_penalty": 1.2,
      "seed": 9, "stop": "\n\n", "eos_token_id": 7, "temperature": null, "use_cache": false})",
                                    "config 'short'", *hf);
  ASSERT_THAT(ours.status(), IsOk());
  EXPECT_EQ(ours->max_new_tokens, 64);
  EXPECT_EQ(ours->top_k, 0);
  EXPECT_DOUBLE_EQ(ours->repetition_penalty, 1.2);
  EXPECT_EQ(ours->seed, 9u);
  EXPECT_EQ(ours->stop_strings, (std::vector<std::string>{"\n\n"}));
  EXPECT_EQ(ours->eos_token_ids, (std::vector<int64_t>{7}));
  EXPECT_DOUBLE_EQ(ours->temperature, 0.6);
  EXPECT_FALSE(ours->use_cache);
  EXPECT_EQ(ours->pad_token_id, 0);
}

TEST(GenerationConfigTest, BadValuesAreRefusedNamingTheKey) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"max_new_tokens": 0})", "max_new_tokens"},
      {R"({"max_new_tokens": 2.5})", "max_new_tokens"},
      {R"({"max_new_tokens": "10"})", "max_new_tokens"},
      {R"({"do_sample": "yes"})", "do_sample"},
      {R"({"temperature": -0.1})", "temperature"},
      {R"({"top_k": -1})", "top_k"},
      {R"({"top_p": 0})", "top_p"},
      {R"({"top_p": 1.5})", "top_p"},
      {R"({"repetition_penalty": 0})", "repetition_penalty"},
      {R"({"eos_token_id": "</s>"})", "eos_token_id"},
      {R"({"eos_token_id": [2, -1]})", "eos_token_id"},
      {R"({"pad_token_id": -3})", "pad_token_id"},
      {R"({"stop_strings": [""]})", "stop_strings"},
      {R"({"stop": 5})", "stop"},
      {R"({"seed": -1})", "seed"},
      {R"({"use_cache": 1})", "use_cache"},
      {R"({"num_beams": 4})", "num_beams"},
  };
  for (const auto& [json, key] : bad) {
    EXPECT_THAT(ParseGenerationConfig(json, "gen.json"),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::AllOf(HasSubstr("gen.json: "), HasSubstr(key))))
        << json;
  }
  EXPECT_THAT(ParseGenerationConfig("[1]", "gen.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be a JSON object")));
  EXPECT_THAT(ParseGenerationConfig("{\"top_k\": ", "gen.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid JSON")));

  // The same rules hold for a config built in code.
  GenerationConfig c;
  EXPECT_THAT(ValidateGenerationConfig(c), IsOk());
  c.top_p = 0;
  EXPECT_THAT(ValidateGenerationConfig(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_p")));
  c = {};
  c.repetition_penalty = -1;
  EXPECT_THAT(ValidateGenerationConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("repetition_penalty")));
  c = {};
  c.eos_token_ids = {-2};
  EXPECT_THAT(ValidateGenerationConfig(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("eos_token_id")));
}

TEST(GenerateTest, RefusesBadArguments) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  auto model = LoadCase("llama", AttentionImpl::kSdpa);
  ASSERT_NE(model, nullptr);
  const int64_t vocab = model->config().arch.vocab_size;
  GenerationConfig config = Greedy(4);
  config.max_new_tokens = 0;
  EXPECT_THAT(Generate(*model, {{5, 6}}, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_new_tokens")));
  config = Greedy(4);
  EXPECT_THAT(Generate(*model, {}, config), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompts")));
  EXPECT_THAT(Generate(*model, {{5, 6}, {}}, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompts[1] is empty")));
  EXPECT_THAT(Generate(*model, {{5, vocab}}, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(absl::StrCat("prompts[0][1] = ", vocab))));
  config.pad_token_id = vocab;
  EXPECT_THAT(Generate(*model, {{5}}, config), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pad_token_id")));
  config = Greedy(4);
  config.stop_strings = {"x"};
  EXPECT_THAT(Generate(*model, {{5}}, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stop_strings need a decode function")));
  model->set_training(true);
  EXPECT_THAT(Generate(*model, {{5}}, Greedy(4)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("set_training(false)")));
}

}  // namespace
}  // namespace tuneforge
