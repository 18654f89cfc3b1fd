// The GPT-2 byte-to-unicode alphabet used by byte-level BPE (Llama 3, Qwen): every byte is spelled as one
// printable character, e.g. a space as U+0120 'Ġ'.
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_BYTE_LEVEL_ALPHABET_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_BYTE_LEVEL_ALPHABET_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace tuneforge {

// UTF-8 spelling of the character that stands for `byte`.
const std::string& ByteLevelChar(unsigned char byte);

// Appends the byte-level spelling of every byte of `bytes` to *out.
void AppendByteLevel(std::string_view bytes, std::string* out);

// The byte a byte-level character stands for, or -1 when `code_point` is not in the alphabet.
int ByteLevelByte(uint32_t code_point);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_BYTE_LEVEL_ALPHABET_H_
