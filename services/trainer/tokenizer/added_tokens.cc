// Byte trie over the added-token strings with leftmost-longest matching and the lstrip / rstrip /
// single_word options.
#include "services/trainer/tokenizer/added_tokens.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "services/trainer/tokenizer/utf8.h"

namespace tuneforge {
namespace {

// The Rust library decides lstrip / rstrip / single_word with Unicode-aware regexes (the regex crate): \s is
// the White_Space property, \w is Alphabetic, marks, decimal digits, connector punctuation and the two joiners.
bool IsWhiteSpace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool IsWordChar(uint32_t c) {
  if (c < 0x80) return std::isalnum(static_cast<int>(c)) || c == '_';
  static pcre2_code* const word = [] {
#if PCRE2_MAJOR == 10 && PCRE2_MINOR < 40  // no Alphabetic property: letters and letter numbers come closest
    static constexpr char kWord[] = "[\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]";
#else
    static constexpr char kWord[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]";
#endif
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kWord), PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &error, &offset, nullptr);
    if (code == nullptr) std::abort();  // a constant pattern: cannot fail with a working PCRE2
    return code;
  }();
  std::string ch;
  AppendUtf8(c, &ch);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(word, nullptr);
  const int rc = pcre2_match(word, reinterpret_cast<PCRE2_SPTR>(ch.data()), ch.size(), 0, 0, md, nullptr);
  pcre2_match_data_free(md);
  return rc >= 0;
}

// The character that ends text[0, end) (valid UTF-8, end > 0), and where it starts.
uint32_t CharBefore(std::string_view text, size_t end, size_t* start) {
  size_t b = end - 1;
  while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
  *start = b;
  size_t pos = b;
  return DecodeUtf8Char(text, &pos);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens) : tokens_(tokens) {
  nodes_.emplace_back();
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const std::string& content = tokens_[t].content;
    if (content.empty()) continue;
    first_byte_[static_cast<unsigned char>(content[0])] = true;
    int32_t node = 0;
    for (char c : content) {
      const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(c);
      auto it = edges_.find(key);
      if (it == edges_.end()) {
        nodes_.emplace_back();
        it = edges_.emplace(key, static_cast<int32_t>(nodes_.size() - 1)).first;
      }
      node = it->second;
    }
    if (nodes_[node].token < 0) nodes_[node].token = static_cast<int32_t>(t);
  }
}

std::vector<TextSegment> AddedTokenMatcher::Split(std::string_view text) const {
  std::vector<TextSegment> out;
  size_t text_start = 0;  // start of the pending text segment (end of the last match)
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      pos += Utf8CharLength(static_cast<unsigned char>(text[pos]));
      continue;
    }
    // Longest token starting at pos.
    int32_t node = 0, best = -1;
    size_t best_end = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      auto it = edges_.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(text[i]));
      if (it == edges_.end()) break;
      node = it->second;
      if (nodes_[node].token >= 0) {
        best = nodes_[node].token;
        best_end = i + 1;
      }
    }
    if (best < 0) {
      pos += Utf8CharLength(static_cast<unsigned char>(text[pos]));
      continue;
    }
    const AddedToken& token = tokens_[best];
    size_t start = pos, end = best_end;
    if (token.single_word) {
      size_t before = 0, after = end;
      const bool word_before = start > 0 && IsWordChar(CharBefore(text, start, &before));
      const bool word_after = end < text.size() && IsWordChar(DecodeUtf8Char(text, &after));
      if (word_before || word_after) {
        pos = end;
        continue;
      }
    }
    if (token.lstrip) {
      // Whitespace already taken by the previous match stays with it.
      size_t before = 0;
      while (start > 0 && IsWhiteSpace(CharBefore(text, start, &before))) start = before;
      start = std::max(start, text_start);
    }
    if (token.rstrip) {
      for (size_t next = end; end < text.size() && IsWhiteSpace(DecodeUtf8Char(text, &next));) end = next;
    }
    if (start > text_start) out.push_back(TextSegment{text.substr(text_start, start - text_start), -1});
    out.push_back(TextSegment{text.substr(start, std::max(end, start) - start), token.id});
    text_start = std::max(end, start);
    // The search goes on after the token itself, not after the whitespace rstrip took: an added token made of
    // whitespace right after it matches again there, as in the Rust library (its Aho-Corasick iterator does
    // not know about rstrip).
    pos = best_end;
  }
  if (text_start < text.size()) out.push_back(TextSegment{text.substr(text_start), -1});
  return out;
}

}  // namespace tuneforge
