// Sorted Unicode tables behind unicode_normalization.cc (generated data in unicode_normalization_data.cc).
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_UNICODE_NORMALIZATION_DATA_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_UNICODE_NORMALIZATION_DATA_H_

#include <cstddef>
#include <cstdint>

namespace tuneforge {

struct CombiningClassEntry {
  uint32_t code_point;
  uint8_t combining_class;
};
struct DecompositionEntry {
  uint32_t code_point;
  uint32_t offset;  // into kDecompositionChars
  uint32_t length;
};
struct CompositionEntry {
  uint32_t first;
  uint32_t second;
  uint32_t composite;
};

extern const CombiningClassEntry kCombiningClasses[];  // sorted by code_point, class != 0 only
extern const size_t kCombiningClassCount;
extern const DecompositionEntry kDecompositions[];  // sorted by code_point, full canonical (NFD) expansion
extern const size_t kDecompositionCount;
extern const uint32_t kDecompositionChars[];
extern const CompositionEntry kCompositions[];  // sorted by (first, second), primary composites only
extern const size_t kCompositionCount;

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_UNICODE_NORMALIZATION_DATA_H_
