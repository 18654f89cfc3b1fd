// Checks the tokenizer against reference encodings and decodes computed with the Rust tokenizers library
// (shared testdata tokenizers/cases.jsonl), plus randomized robustness and round-trip tests on the same real
// vocabularies (all skipped when ../shared/testdata is not beside the clone), and errors on tiny tokenizers.
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "services/trainer/tokenizer/tokenizer.h"
#include "services/trainer/tokenizer/utf8.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;

const char* const kNames[] = {"llama3", "llama3_1", "llama2", "qwen3", "gemma3"};

std::string TokenizerDir() { return ::tuneforge::testing::SharedTestdata() + "/tokenizers"; }

// Tokenizers are large (up to 14 MiB of JSON); load each once for the whole binary.
const Tokenizer& Load(const std::string& name) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>();
  auto it = cache->find(name);
  if (it == cache->end()) {
    auto t = Tokenizer::FromFile(TokenizerDir() + "/" + name + "/tokenizer.json");
    EXPECT_THAT(t.status(), IsOk());
    if (!t.ok()) std::abort();
    it = cache->emplace(name, std::move(t).value()).first;
  }
  return *it->second;
}

std::vector<nlohmann::json> CasesFor(const std::string& name) {
  std::vector<nlohmann::json> out;
  std::ifstream in(TokenizerDir() + "/cases.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json c = nlohmann::json::parse(line);
    if (c.at("tokenizer") == name) out.push_back(std::move(c));
  }
  return out;
}

class TokenizerCasesTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerCasesTest, MatchesReferenceIdsAndDecodes) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  const std::string name = GetParam();
  const Tokenizer& tok = Load(name);
  const std::vector<nlohmann::json> cases = CasesFor(name);
  ASSERT_GE(cases.size(), 100u) << "cases.jsonl has too few cases for " << name;
  int passed = 0;
  for (const nlohmann::json& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const std::string where = name + " case " + c.at("id").dump();
    auto plain = tok.Encode(text, false);
    auto with = tok.Encode(text, true);
    ASSERT_THAT(plain.status(), IsOk()) << where;
    ASSERT_THAT(with.status(), IsOk()) << where;
    const auto want_plain = c.at("ids_no_special").get<std::vector<int32_t>>();
    const auto want_with = c.at("ids_with_special").get<std::vector<int32_t>>();
    bool ok = true;
    ok &= *plain == want_plain;
    EXPECT_EQ(*plain, want_plain) << where << " ids_no_special, text: " << c.at("text").dump();
    ok &= *with == want_with;
    EXPECT_EQ(*with, want_with) << where << " ids_with_special";
    auto decoded = tok.Decode(want_with, false);
    auto decoded_skip = tok.Decode(want_with, true);
    auto decoded_plain = tok.Decode(want_plain, false);
    ASSERT_THAT(decoded.status(), IsOk()) << where;
    ASSERT_THAT(decoded_skip.status(), IsOk()) << where;
    ASSERT_THAT(decoded_plain.status(), IsOk()) << where;
    ok &= *decoded == c.at("decoded").get<std::string>();
    EXPECT_EQ(*decoded, c.at("decoded").get<std::string>()) << where << " decoded";
    ok &= *decoded_skip == c.at("decoded_skip_special").get<std::string>();
    EXPECT_EQ(*decoded_skip, c.at("decoded_skip_special").get<std::string>()) << where << " decoded_skip_special";
    ok &= *decoded_plain == c.at("decoded_no_special").get<std::string>();
    EXPECT_EQ(*decoded_plain, c.at("decoded_no_special").get<std::string>()) << where << " decoded_no_special";
    if (ok) ++passed;
  }
  std::printf("[ tokenizer ] %s: %d/%zu cases pass\n", name.c_str(), passed, cases.size());
  EXPECT_EQ(passed, static_cast<int>(cases.size()));
}

INSTANTIATE_TEST_SUITE_P(AllTokenizers, TokenizerCasesTest, ::testing::Values("llama3", "llama3_1", "llama2", "qwen3", "gemma3"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

std::string RandomUnicode(std::mt19937* rng, size_t chars) {
  // Mix ASCII (incl. spaces, digits, controls), Latin, combining marks, CJK, emoji and astral planes.
  static const std::pair<uint32_t, uint32_t> kRanges[] = {
      {0x00, 0x7F},     {0x20, 0x20},       {0x30, 0x39},     {0xA0, 0x24F},     {0x300, 0x36F},
      {0x400, 0x4FF},   {0x600, 0x6FF},     {0x900, 0x97F},   {0x1100, 0x11FF},  {0x2000, 0x206F},
      {0x3000, 0x30FF}, {0x4E00, 0x9FFF},   {0xAC00, 0xD7A3}, {0xE000, 0xF8FF},  {0xFE00, 0xFE0F},
      {0x1F300, 0x1FAFF}, {0x20000, 0x2A6DF}, {0x12000, 0x123FF}, {0x10FFF0, 0x10FFFF}};
  std::string out;
  std::uniform_int_distribution<size_t> pick(0, sizeof(kRanges) / sizeof(kRanges[0]) - 1);
  for (size_t i = 0; i < chars; ++i) {
    const auto& r = kRanges[pick(*rng)];
    AppendUtf8(std::uniform_int_distribution<uint32_t>(r.first, r.second)(*rng), &out);
  }
  return out;
}

TEST(TokenizerRandomTest, RandomUnicodeNeverFailsAndRoundTrips) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  std::mt19937 rng(1234);
  for (const char* name : kNames) {
    const Tokenizer& tok = Load(name);
    // qwen3 applies NFC, so decomposed input comes back composed; every other tokenizer round-trips text
    // without special-token spellings (byte-level or byte fallback covers every character).
    const bool round_trips = std::string(name) != "qwen3";
    for (int i = 0; i < 200; ++i) {
      const std::string text = RandomUnicode(&rng, 1 + rng() % 60);
      auto ids = tok.Encode(text, true);
      ASSERT_THAT(ids.status(), IsOk()) << name;
      for (int32_t id : *ids) ASSERT_TRUE(id >= 0 && id < tok.vocab_size()) << name << " id " << id;
      auto decoded = tok.Decode(*ids, true);
      ASSERT_THAT(decoded.status(), IsOk()) << name;
      EXPECT_EQ(FindInvalidUtf8(*decoded), std::string::npos) << name;
      if (round_trips) {
        auto plain = tok.Encode(text, false);
        ASSERT_THAT(plain.status(), IsOk());
        auto back = tok.Decode(*plain, false);
        ASSERT_THAT(back.status(), IsOk());
        EXPECT_EQ(*back, text) << name;
      }
    }
  }
}

TEST(TokenizerRandomTest, QwenRoundTripsNfcText) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  std::mt19937 rng(99);
  const Tokenizer& tok = Load("qwen3");
  for (int i = 0; i < 200; ++i) {
    // ASCII + CJK + emoji only: already NFC, so decode(encode(x)) must be x.
    std::string text;
    for (int k = 0; k < 30; ++k) {
      const uint32_t kind = rng() % 3;
      const uint32_t cp = kind == 0 ? 0x20 + rng() % 0x5F : kind == 1 ? 0x4E00 + rng() % 0x5000 : 0x1F300 + rng() % 0x300;
      AppendUtf8(cp, &text);
    }
    auto ids = tok.Encode(text, false);
    ASSERT_THAT(ids.status(), IsOk());
    auto back = tok.Decode(*ids, false);
    ASSERT_THAT(back.status(), IsOk());
    EXPECT_EQ(*back, text);
  }
}

TEST(TokenizerRandomTest, RandomBytesAreRejectedOrEncodedNeverCrash) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  std::mt19937 rng(42);
  for (const char* name : kNames) {
    const Tokenizer& tok = Load(name);
    int rejected = 0;
    for (int i = 0; i < 300; ++i) {
      std::string bytes(1 + rng() % 40, '\0');
      for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
      auto ids = tok.Encode(bytes, false);
      if (FindInvalidUtf8(bytes) != std::string::npos) {
        EXPECT_THAT(ids.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid UTF-8")));
        ++rejected;
      } else {
        ASSERT_THAT(ids.status(), IsOk());
      }
      // Random ids decode to valid UTF-8 (invalid byte sequences become U+FFFD).
      std::vector<int32_t> random_ids(1 + rng() % 20);
      for (int32_t& id : random_ids) id = static_cast<int32_t>(rng() % tok.vocab_size());
      auto text = tok.Decode(random_ids, false);
      ASSERT_THAT(text.status(), IsOk()) << name;
      EXPECT_EQ(FindInvalidUtf8(*text), std::string::npos) << name;
    }
    EXPECT_GT(rejected, 200) << name;
  }
}

TEST(TokenizerConcurrencyTest, EncodeFromManyThreadsMatchesSequential) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  const Tokenizer& tok = Load("qwen3");
  const std::vector<nlohmann::json> cases = CasesFor("qwen3");
  std::vector<std::vector<int32_t>> want;
  for (const nlohmann::json& c : cases) want.push_back(c.at("ids_no_special").get<std::vector<int32_t>>());
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t]() {
      for (int round = 0; round < 3; ++round) {
        for (size_t i = 0; i < cases.size(); ++i) {
          auto ids = tok.Encode(cases[(i + t * 37) % cases.size()].at("text").get<std::string>(), false);
          if (!ids.ok() || *ids != want[(i + t * 37) % cases.size()]) ++mismatches[t];
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_THAT(mismatches, ::testing::Each(0));
}

TEST(TokenizerErrorsTest, DecodeRejectsUnknownIds) {
  auto tok = Tokenizer::FromJson(R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},
                                     "added_tokens":[{"id":3,"content":"<s>","special":true}]})");
  ASSERT_THAT(tok.status(), IsOk());
  EXPECT_THAT((*tok)->Decode({1, -5}, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot decode id -5")));
  EXPECT_THAT((*tok)->Decode({(*tok)->vocab_size()}, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not in the vocabulary")));
}

TEST(TokenizerErrorsTest, UnsupportedPipelinePiecesFailAtLoad) {
  const std::string base = R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},)";
  EXPECT_THAT(Tokenizer::FromJson(base + R"("pre_tokenizer":{"type":"Whitespace"}})").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("pre_tokenizer type 'Whitespace' is not supported; supported: Sequence")));
  EXPECT_THAT(Tokenizer::FromJson(base + R"("normalizer":{"type":"BertNormalizer"}})").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("normalizer type 'BertNormalizer'")));
  EXPECT_THAT(Tokenizer::FromJson(base + R"("decoder":{"type":"WordPiece"}})").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("decoder type 'WordPiece'")));
  EXPECT_THAT(Tokenizer::FromJson(base + R"("post_processor":{"type":"BertProcessing"}})").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("post_processor type 'BertProcessing'")));
  EXPECT_THAT(Tokenizer::FromJson(R"({"model":{"type":"Unigram","vocab":[]}})").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model type 'Unigram' is not supported")));
  EXPECT_THAT(Tokenizer::FromJson("{not json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a valid tokenizer file")));
  EXPECT_THAT(Tokenizer::FromFile("no-such-dir/tokenizer.json").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot open")));
}

TEST(TokenizerErrorsTest, TinyModelMergesAndLookups) {
  auto tok = Tokenizer::FromJson(
      R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"c":3},"merges":["a b"]},
          "added_tokens":[{"id":4,"content":"<x>","special":true}]})");
  ASSERT_THAT(tok.status(), IsOk());
  auto ids = (*tok)->Encode("abc<x>ab", false);
  ASSERT_THAT(ids.status(), IsOk());
  EXPECT_EQ(*ids, (std::vector<int32_t>{2, 3, 4, 2}));
  EXPECT_EQ((*tok)->TokenToId("ab"), 2);
  EXPECT_EQ((*tok)->TokenToId("<x>"), 4);
  EXPECT_EQ((*tok)->IdToToken(4), "<x>");
  EXPECT_EQ((*tok)->vocab_size(), 5);
  EXPECT_TRUE((*tok)->IsSpecial(4));
  auto text = (*tok)->Decode({2, 4, 3}, true);
  ASSERT_THAT(text.status(), IsOk());
  EXPECT_EQ(*text, "ab c");
}

}  // namespace
}  // namespace tuneforge
