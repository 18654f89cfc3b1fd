// Unit tests of the tokenizer stages that the reference cases do not exercise: every Split behavior,
// Metaspace, NFC/NFD, added-token options, decoders on malformed input, and UTF-8 helpers.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "services/trainer/tokenizer/added_tokens.h"
#include "services/trainer/tokenizer/decoders.h"
#include "services/trainer/tokenizer/pre_tokenizers.h"
#include "services/trainer/tokenizer/tokenizer.h"
#include "services/trainer/tokenizer/unicode_normalization.h"
#include "services/trainer/tokenizer/utf8.h"
#include "tests/support/status_matchers.h"

namespace tuneforge {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;

std::vector<std::string> PreTokenize(const std::string& config, const std::string& text,
                                     bool starts_input = true) {
  auto pre = PreTokenizerFromJson(nlohmann::json::parse(config));
  EXPECT_THAT(pre.status(), IsOk());
  if (!pre.ok()) return {};
  std::vector<std::string> pieces{text};
  (*pre)->Split(&pieces, starts_input);
  return pieces;
}

std::string SplitDash(const std::string& behavior) {
  return R"({"type":"Split","pattern":{"String":"-"},"invert":false,"behavior":")" + behavior + "\"}";
}

TEST(SplitPreTokenizerTest, EveryBehaviorMatchesUpstreamDocs) {
  const std::string text = "the-final--countdown";
  EXPECT_THAT(PreTokenize(SplitDash("Removed"), text), ElementsAre("the", "final", "countdown"));
  EXPECT_THAT(PreTokenize(SplitDash("Isolated"), text), ElementsAre("the", "-", "final", "-", "-", "countdown"));
  EXPECT_THAT(PreTokenize(SplitDash("MergedWithPrevious"), text),
              ElementsAre("the-", "final-", "-", "countdown"));
  EXPECT_THAT(PreTokenize(SplitDash("MergedWithNext"), text), ElementsAre("the", "-final", "-", "-countdown"));
  EXPECT_THAT(PreTokenize(SplitDash("Contiguous"), text), ElementsAre("the", "-", "final", "--", "countdown"));
}

TEST(SplitPreTokenizerTest, RegexInvertAndErrors) {
  EXPECT_THAT(PreTokenize(R"({"type":"Split","pattern":{"Regex":"\\p{N}+"},"behavior":"Removed","invert":true})",
                          "ab12cd345"),
              ElementsAre("12", "345"));
  EXPECT_THAT(PreTokenizerFromJson(nlohmann::json::parse(
                                       R"({"type":"Split","pattern":{"Regex":"(["},"behavior":"Isolated"})"))
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not compile")));
  EXPECT_THAT(PreTokenizerFromJson(nlohmann::json::parse(
                                       R"({"type":"Split","pattern":{"String":"x"},"behavior":"Sideways"})"))
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("behavior 'Sideways' is not supported")));
}

TEST(ByteLevelPreTokenizerTest, Gpt2RegexAndPrefixSpace) {
  EXPECT_THAT(PreTokenize(R"({"type":"ByteLevel","add_prefix_space":true,"use_regex":true})", "Hello world's"),
              ElementsAre("\xC4\xA0Hello", "\xC4\xA0world", "'s"));
}

TEST(MetaspacePreTokenizerTest, ReplacesSpacesAndSplitsBeforeMetaspace) {
  const std::string config = R"({"type":"Metaspace","replacement":"\u2581","prepend_scheme":"always","split":true})";
  EXPECT_THAT(PreTokenize(config, "Hey  friend!"), ElementsAre("\xE2\x96\x81Hey", "\xE2\x96\x81", "\xE2\x96\x81" "friend!"));
  EXPECT_THAT(PreTokenize(R"({"type":"Metaspace","replacement":"\u2581","prepend_scheme":"never","split":false})",
                          "a b"),
              ElementsAre("a\xE2\x96\x81" "b"));
  // prepend_scheme "first": only text at the very start of the input gets the leading metaspace.
  const std::string first = R"({"type":"Metaspace","replacement":"\u2581","prepend_scheme":"first","split":false})";
  EXPECT_THAT(PreTokenize(first, "hi", true), ElementsAre("\xE2\x96\x81hi"));
  EXPECT_THAT(PreTokenize(first, "hi", false), ElementsAre("hi"));
}

TEST(UnicodeNormalizationTest, ComposesAndDecomposes) {
  EXPECT_EQ(ToNfc("cafe\xCC\x81"), "caf\xC3\xA9");                      // e + U+0301 -> é
  EXPECT_EQ(ToNfd("caf\xC3\xA9"), "cafe\xCC\x81");
  EXPECT_EQ(ToNfc("\xE2\x84\xAB"), "\xC3\x85");                          // U+212B ANGSTROM SIGN -> Å
  EXPECT_EQ(ToNfc("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), "\xED\x95\x9C");  // Hangul jamo -> 한
  EXPECT_EQ(ToNfd("\xED\x95\x9C"), "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB");
  // Canonical ordering: dot below (ccc 220) sorts before dot above (ccc 230); q has no composite.
  EXPECT_EQ(ToNfc("q\xCC\x87\xCC\xA3"), "q\xCC\xA3\xCC\x87");
  // s + dot below + dot above composes fully to U+1E69.
  EXPECT_EQ(ToNfc("s\xCC\x87\xCC\xA3"), "\xE1\xB9\xA9");
  EXPECT_EQ(ToNfc("plain ascii"), "plain ascii");
}

std::vector<TextSegment> SplitAdded(const AddedToken& token, std::string_view text) {
  static std::vector<std::unique_ptr<AddedTokenMatcher>> keep;
  keep.push_back(std::make_unique<AddedTokenMatcher>(std::vector<AddedToken>{token}));
  return keep.back()->Split(text);
}

TEST(AddedTokensTest, LeftmostLongestAndStripOptions) {
  AddedTokenMatcher matcher({AddedToken{7, "<a>", true}, AddedToken{8, "<a><b>", true}});
  auto segments = matcher.Split("x<a><b>y<a>");
  ASSERT_EQ(segments.size(), 4u);
  EXPECT_EQ(segments[0].text, "x");
  EXPECT_EQ(segments[1].id, 8);
  EXPECT_EQ(segments[2].text, "y");
  EXPECT_EQ(segments[3].id, 7);

  AddedToken strip{5, "<m>", true, /*lstrip=*/true, /*rstrip=*/true};
  auto stripped = SplitAdded(strip, "a  <m>  b");
  ASSERT_EQ(stripped.size(), 3u);
  EXPECT_EQ(stripped[0].text, "a");
  EXPECT_EQ(stripped[1].text, "  <m>  ");
  EXPECT_EQ(stripped[2].text, "b");

  AddedToken word{6, "ab", false, false, false, /*single_word=*/true};
  EXPECT_EQ(SplitAdded(word, "cab").size(), 1u);  // inside a word: not matched
  auto alone = SplitAdded(word, "c ab");
  ASSERT_EQ(alone.size(), 2u);
  EXPECT_EQ(alone[1].id, 6);
}

std::vector<std::string> RunDecoder(const std::string& config, std::vector<std::string> tokens) {
  auto decoder = DecoderFromJson(nlohmann::json::parse(config));
  EXPECT_THAT(decoder.status(), IsOk());
  if (decoder.ok()) (*decoder)->DecodeChain(&tokens);
  return tokens;
}

TEST(DecodersTest, ByteFallbackStripAndByteLevel) {
  // A valid run becomes its text; an invalid run becomes one U+FFFD per byte token.
  EXPECT_THAT(RunDecoder(R"({"type":"ByteFallback"})", {"<0xE3>", "<0x81>", "<0x82>", "a", "<0xE3>", "<0x81>", "b"}),
              ElementsAre("\xE3\x81\x82", "a", "\xEF\xBF\xBD", "\xEF\xBF\xBD", "b"));
  EXPECT_THAT(RunDecoder(R"({"type":"Strip","content":" ","start":1,"stop":1})", {"  a  ", "b"}),
              ElementsAre(" a ", "b"));
  // "Ġ" is a space; a truncated UTF-8 sequence becomes U+FFFD.
  EXPECT_THAT(RunDecoder(R"({"type":"ByteLevel"})", {"\xC4\xA0hi", "\xC3\xA3"}), ElementsAre(" hi\xEF\xBF\xBD"));
  EXPECT_THAT(RunDecoder(R"({"type":"Metaspace","replacement":"\u2581","prepend_scheme":"always"})",
                         {"\xE2\x96\x81Hey", "\xE2\x96\x81" "friend"}),
              ElementsAre("Hey", " friend"));
}

TEST(Utf8Test, LossyReplacesMaximalSubparts) {
  EXPECT_EQ(Utf8Lossy("a\xF0\x9F\x98"), "a\xEF\xBF\xBD");           // truncated 4-byte sequence: one U+FFFD
  EXPECT_EQ(Utf8Lossy("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");     // overlong: each byte invalid
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(FindInvalidUtf8("ok\xFF"), 2u);
  EXPECT_EQ(FindInvalidUtf8("\xE2\x96\x81"), std::string::npos);
}

TEST(TokenizerLoadTest, RejectsTruncationAndBadMerges) {
  EXPECT_THAT(Tokenizer::FromJson(R"({"truncation":{"max_length":5},"model":{"type":"BPE","vocab":{},"merges":[]}})")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("truncation is not supported")));
  EXPECT_THAT(Tokenizer::FromJson(R"({"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}})").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing from model.vocab")));
  EXPECT_THAT(Tokenizer::FromJson(R"({"model":{"type":"BPE","vocab":{"a":0},"merges":[],"unk_token":"<unk>"}})")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unk_token '<unk>' is not in model.vocab")));
}

TEST(TokenizerLoadTest, UnknownCharactersFuseIntoOneUnk) {
  auto tok = Tokenizer::FromJson(
      R"({"model":{"type":"BPE","vocab":{"<unk>":0,"a":1},"merges":[],"unk_token":"<unk>","fuse_unk":true}})");
  ASSERT_THAT(tok.status(), IsOk());
  auto ids = (*tok)->Encode("a\xE2\x98\x83\xE2\x98\x83" "a", false);
  ASSERT_THAT(ids.status(), IsOk());
  EXPECT_THAT(*ids, ElementsAre(1, 0, 1));
}

}  // namespace
}  // namespace tuneforge
