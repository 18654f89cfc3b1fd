// The label of positions that carry no loss, shared by the data pipeline and the loss.
#ifndef TUNEFORGE_SERVICES_TRAINER_DATA_LABELS_H_
#define TUNEFORGE_SERVICES_TRAINER_DATA_LABELS_H_

#include <cstdint>

namespace tuneforge {

inline constexpr int32_t kIgnoreLabel = -100;  // as Hugging Face's ignore_index

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_DATA_LABELS_H_
