// UTF-8 helpers shared by the tokenizer stages: validation, code point iteration and Rust-compatible
// lossy decoding (one U+FFFD per maximal invalid subpart, as String::from_utf8_lossy does).
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_UTF8_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tuneforge {

// Byte offset of the first invalid sequence in `text`, or std::string_view::npos when it is valid UTF-8.
size_t FindInvalidUtf8(std::string_view text);

// Length of the character whose lead byte is `lead`; only meaningful on valid UTF-8.
inline size_t Utf8CharLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Decodes the character at text[*pos] (valid UTF-8 assumed) and advances *pos past it.
uint32_t DecodeUtf8Char(std::string_view text, size_t* pos);

void AppendUtf8(uint32_t code_point, std::string* out);

// `bytes` as UTF-8, each maximal invalid subpart replaced by U+FFFD.
std::string Utf8Lossy(std::string_view bytes);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_UTF8_H_
