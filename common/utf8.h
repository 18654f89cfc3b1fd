// UTF-8 well-formedness (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
#ifndef TUNEFORGE_COMMON_UTF8_H_
#define TUNEFORGE_COMMON_UTF8_H_

#include <cstddef>
#include <string_view>

namespace tuneforge {

// Length of the well-formed UTF-8 sequence that starts at s[i] (1 for ASCII, 2-4 otherwise), or 0 when the bytes
// there do not form one.
size_t Utf8SequenceLength(std::string_view s, size_t i);

// Offset of the first byte that does not start or continue a well-formed sequence, or npos.
size_t FirstInvalidUtf8(std::string_view text);

// The longest prefix of `text` of at most `max_bytes` that does not end inside a character: text.size() when it
// fits, else the offset to cut at.
size_t Utf8PrefixLength(std::string_view text, size_t max_bytes);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_UTF8_H_
