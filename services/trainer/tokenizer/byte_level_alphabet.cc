// Tables of the GPT-2 byte-to-unicode alphabet.
#include "services/trainer/tokenizer/byte_level_alphabet.h"

#include <array>

#include "services/trainer/tokenizer/utf8.h"

namespace tuneforge {
namespace {

struct Alphabet {
  std::array<std::string, 256> spelling;
  std::array<int16_t, 512> byte_of;  // indexed by code point; all alphabet code points are < 324
  Alphabet() {
    byte_of.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
      AppendUtf8(cp, &spelling[b]);
      byte_of[cp] = static_cast<int16_t>(b);
    }
  }
};

const Alphabet& GetAlphabet() {
  static const Alphabet* alphabet = new Alphabet();
  return *alphabet;
}

}  // namespace

const std::string& ByteLevelChar(unsigned char byte) { return GetAlphabet().spelling[byte]; }

void AppendByteLevel(std::string_view bytes, std::string* out) {
  const Alphabet& a = GetAlphabet();
  for (char c : bytes) out->append(a.spelling[static_cast<unsigned char>(c)]);
}

int ByteLevelByte(uint32_t code_point) {
  if (code_point >= 512) return -1;
  return GetAlphabet().byte_of[code_point];
}

}  // namespace tuneforge
