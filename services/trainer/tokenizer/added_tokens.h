// Added tokens of tokenizer.json ("added_tokens"): the strings matched whole in the input before
// normalization (special tokens such as <|eot_id|>, <s>, and non-special ones such as Qwen's <think>).
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_ADDED_TOKENS_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_ADDED_TOKENS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace tuneforge {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;       // the match also takes the whitespace before it
  bool rstrip = false;       // the match also takes the whitespace after it
  bool single_word = false;  // only matches when not inside a word
  bool normalized = false;   // matched in normalized text instead of the raw input
};

// A piece of input: either text to tokenize (id == -1) or one added token.
struct TextSegment {
  std::string_view text;
  int32_t id;
};

// Finds added tokens leftmost-longest, like the Rust library's Aho-Corasick split.
class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(const std::vector<AddedToken>& tokens);
  bool empty() const { return tokens_.empty(); }
  // Splits `text` into segments; text segments are never empty.
  std::vector<TextSegment> Split(std::string_view text) const;

 private:
  struct Node {
    int32_t token = -1;  // index into tokens_ of the token ending here
  };
  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  absl::flat_hash_map<uint64_t, int32_t> edges_;  // (node << 8 | byte) -> child node
  bool first_byte_[256] = {};                       // bytes some token starts with
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_ADDED_TOKENS_H_
