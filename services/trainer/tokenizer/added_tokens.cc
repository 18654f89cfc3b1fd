// Byte trie over the added-token strings with leftmost-longest matching and the lstrip / rstrip /
// single_word options.
#include "services/trainer/tokenizer/added_tokens.h"

#include "services/trainer/tokenizer/utf8.h"

namespace tuneforge {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

bool IsWordByte(unsigned char c) {
  return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
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
  size_t text_start = 0;  // start of the pending text segment
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
      const bool word_before = start > 0 && IsWordByte(static_cast<unsigned char>(text[start - 1]));
      const bool word_after = end < text.size() && IsWordByte(static_cast<unsigned char>(text[end]));
      if (word_before || word_after) {
        pos = end;
        continue;
      }
    }
    if (token.lstrip) {
      while (start > text_start && IsSpace(text[start - 1])) --start;
    }
    if (token.rstrip) {
      while (end < text.size() && IsSpace(text[end])) ++end;
    }
    if (start > text_start) out.push_back(TextSegment{text.substr(text_start, start - text_start), -1});
    out.push_back(TextSegment{text.substr(start, end - start), token.id});
    text_start = pos = end;
  }
  if (text_start < text.size()) out.push_back(TextSegment{text.substr(text_start), -1});
  return out;
}

}  // namespace tuneforge
