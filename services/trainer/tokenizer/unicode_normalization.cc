// NFD: full canonical decomposition (Hangul algorithmically) + canonical ordering; NFC: NFD followed by
// canonical composition with blocking, per Unicode Standard Annex #15.
#include "services/trainer/tokenizer/unicode_normalization.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "services/trainer/tokenizer/unicode_normalization_data.h"
#include "services/trainer/tokenizer/utf8.h"

namespace tuneforge {
namespace {

constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

uint8_t CombiningClass(uint32_t cp) {
  if (cp < 0x300) return 0;
  const CombiningClassEntry* end = kCombiningClasses + kCombiningClassCount;
  const CombiningClassEntry* it = std::lower_bound(
      kCombiningClasses, end, cp, [](const CombiningClassEntry& e, uint32_t v) { return e.code_point < v; });
  return it != end && it->code_point == cp ? it->combining_class : 0;
}

void Decompose(uint32_t cp, std::vector<uint32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const uint32_t s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  if (cp >= 0xC0) {
    const DecompositionEntry* end = kDecompositions + kDecompositionCount;
    const DecompositionEntry* it = std::lower_bound(
        kDecompositions, end, cp, [](const DecompositionEntry& e, uint32_t v) { return e.code_point < v; });
    if (it != end && it->code_point == cp) {
      out->insert(out->end(), kDecompositionChars + it->offset, kDecompositionChars + it->offset + it->length);
      return;
    }
  }
  out->push_back(cp);
}

// Composite of the pair, or 0.
uint32_t Compose(uint32_t first, uint32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount) {
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  }
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 && second > kTBase &&
      second < kTBase + kTCount) {
    return first + (second - kTBase);
  }
  const CompositionEntry* end = kCompositions + kCompositionCount;
  const CompositionEntry* it =
      std::lower_bound(kCompositions, end, std::make_pair(first, second), [](const CompositionEntry& e, auto v) {
        return e.first != v.first ? e.first < v.first : e.second < v.second;
      });
  return it != end && it->first == first && it->second == second ? it->composite : 0;
}

bool IsAscii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

std::vector<uint32_t> DecomposeOrdered(std::string_view text) {
  std::vector<uint32_t> cps;
  cps.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) Decompose(DecodeUtf8Char(text, &pos), &cps);
  // Canonical ordering: stable sort every run of non-starters by combining class.
  size_t i = 0;
  while (i < cps.size()) {
    if (CombiningClass(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && CombiningClass(cps[j]) != 0) ++j;
    if (j - i > 1) {
      std::stable_sort(cps.begin() + i, cps.begin() + j,
                       [](uint32_t a, uint32_t b) { return CombiningClass(a) < CombiningClass(b); });
    }
    i = j;
  }
  return cps;
}

std::string Encode(const std::vector<uint32_t>& cps) {
  std::string out;
  out.reserve(cps.size() * 2);
  for (uint32_t cp : cps) AppendUtf8(cp, &out);
  return out;
}

}  // namespace

std::string ToNfd(std::string_view text) {
  if (IsAscii(text)) return std::string(text);
  return Encode(DecomposeOrdered(text));
}

std::string ToNfc(std::string_view text) {
  if (IsAscii(text)) return std::string(text);
  std::vector<uint32_t> cps = DecomposeOrdered(text);
  if (cps.empty()) return std::string();
  std::vector<uint32_t> out;
  out.reserve(cps.size());
  int64_t starter = -1;  // index in `out` of the last starter
  int last_class = -1;   // combining class of the last character appended after the starter
  for (uint32_t cp : cps) {
    const int cls = CombiningClass(cp);
    if (starter >= 0) {
      const bool blocked = last_class != -1 && (last_class == 0 || last_class >= cls);
      if (!blocked) {
        const uint32_t composite = Compose(out[starter], cp);
        if (composite != 0) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (cls == 0) {
      starter = static_cast<int64_t>(out.size());
      last_class = -1;
    } else {
      last_class = cls;
    }
    out.push_back(cp);
  }
  return Encode(out);
}

}  // namespace tuneforge
