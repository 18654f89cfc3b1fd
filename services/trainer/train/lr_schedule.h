// Learning-rate multipliers of Hugging Face transformers' schedules with linear warmup (constant, linear,
// cosine with num_cycles 0.5), step for step, so a run here follows the same lr curve as a Trainer run.
#ifndef TUNEFORGE_SERVICES_TRAINER_TRAIN_LR_SCHEDULE_H_
#define TUNEFORGE_SERVICES_TRAINER_TRAIN_LR_SCHEDULE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tuneforge {

enum class LrScheduleKind {
  kConstant,  // get_constant_schedule_with_warmup
  kLinear,    // get_linear_schedule_with_warmup
  kCosine,    // get_cosine_schedule_with_warmup, num_cycles = 0.5
};

// "constant" | "linear" | "cosine"; INVALID_ARGUMENT naming lr_scheduler and the accepted names otherwise.
absl::StatusOr<LrScheduleKind> ParseLrScheduleKind(std::string_view name);

struct LrScheduleSettings {
  std::string lr_scheduler = "linear";  // see ParseLrScheduleKind
  int64_t total_steps = 0;              // optimizer steps in the run (HF num_training_steps), >= 1
  int64_t warmup_steps = 0;             // optimizer steps; wins over warmup_ratio when > 0 (as HF)
  double warmup_ratio = 0.0;            // in [0, 1]; warmup = ceil(total_steps * ratio) when warmup_steps is 0
};

// HF's get_warmup_steps: warmup_steps if > 0, else ceil(total_steps * warmup_ratio) (the product in double,
// so 100 * 0.07 = 7.000000000000001 gives 8, as in Python). INVALID_ARGUMENT naming the field for negative
// counts, a ratio outside [0, 1], or a warmup longer than total_steps.
absl::StatusOr<int64_t> ResolveWarmupSteps(int64_t total_steps, int64_t warmup_steps, double warmup_ratio);

class LrSchedule {
 public:
  // Validates every field; INVALID_ARGUMENT names the one that is wrong.
  static absl::StatusOr<LrSchedule> Create(const LrScheduleSettings& settings);

  // Factor of the base learning rate at 0-based optimizer step `step` (LambdaLR's current_step: the first
  // update uses Multiplier(0), which is 0 when there is warmup). Steps past total_steps follow HF's formulas
  // (linear stays at 0; cosine rises again). INVALID_ARGUMENT for a negative step.
  absl::StatusOr<double> Multiplier(int64_t step) const;
  // base_lr * Multiplier(step).
  absl::StatusOr<double> LearningRate(double base_lr, int64_t step) const;

  LrScheduleKind kind() const { return kind_; }
  int64_t total_steps() const { return total_steps_; }
  int64_t warmup_steps() const { return warmup_steps_; }

 private:
  LrSchedule(LrScheduleKind kind, int64_t total_steps, int64_t warmup_steps)
      : kind_(kind), total_steps_(total_steps), warmup_steps_(warmup_steps) {}

  LrScheduleKind kind_;
  int64_t total_steps_;
  int64_t warmup_steps_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TRAIN_LR_SCHEDULE_H_
