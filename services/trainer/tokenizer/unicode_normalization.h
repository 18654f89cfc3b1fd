// Unicode canonical normalization (NFC / NFD) of valid UTF-8, for the NFC normalizer Qwen uses.
// The character tables are generated from the Unicode Character Database (unicode_normalization_data.cc).
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_UNICODE_NORMALIZATION_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_UNICODE_NORMALIZATION_H_

#include <string>
#include <string_view>

namespace tuneforge {

std::string ToNfd(std::string_view text);
std::string ToNfc(std::string_view text);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_UNICODE_NORMALIZATION_H_
