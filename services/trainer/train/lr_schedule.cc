// The arithmetic of transformers.optimization's *_with_warmup lr lambdas, in double as Python's float.
#include "services/trainer/train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tuneforge {

namespace {
constexpr double kPi = 3.14159265358979323846;  // math.pi
constexpr double kNumCycles = 0.5;              // HF's default: half a cosine, from 1 down to 0
}  // namespace

absl::StatusOr<LrScheduleKind> ParseLrScheduleKind(std::string_view name) {
  if (name == "constant") return LrScheduleKind::kConstant;
  if (name == "linear") return LrScheduleKind::kLinear;
  if (name == "cosine") return LrScheduleKind::kCosine;
  return absl::InvalidArgumentError(absl::StrCat("lr_scheduler '", std::string(name),
                                                 "' is not one we support; use constant, linear or cosine "
                                                 "(each with linear warmup over warmup_steps or warmup_ratio)"));
}

absl::StatusOr<int64_t> ResolveWarmupSteps(int64_t total_steps, int64_t warmup_steps, double warmup_ratio) {
  if (total_steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("total_steps is ", total_steps, "; a run needs at least 1 optimizer step"));
  }
  if (warmup_steps < 0) {
    return absl::InvalidArgumentError(absl::StrCat("warmup_steps is ", warmup_steps, "; use 0 or more"));
  }
  // Written so that NaN fails too.
  if (!(warmup_ratio >= 0.0 && warmup_ratio <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("warmup_ratio is ", warmup_ratio, "; use a fraction of total_steps in [0, 1]"));
  }
  const int64_t warmup = warmup_steps > 0
                             ? warmup_steps
                             : static_cast<int64_t>(std::ceil(static_cast<double>(total_steps) * warmup_ratio));
  if (warmup > total_steps) {
    return absl::InvalidArgumentError(absl::StrCat("warmup_steps is ", warmup, " but total_steps is only ",
                                                   total_steps, "; lower warmup_steps to at most total_steps"));
  }
  return warmup;
}

absl::StatusOr<LrSchedule> LrSchedule::Create(const LrScheduleSettings& settings) {
  ASSIGN_OR_RETURN(LrScheduleKind kind, ParseLrScheduleKind(settings.lr_scheduler));
  ASSIGN_OR_RETURN(int64_t warmup,
                   ResolveWarmupSteps(settings.total_steps, settings.warmup_steps, settings.warmup_ratio));
  return LrSchedule(kind, settings.total_steps, warmup);
}

absl::StatusOr<double> LrSchedule::Multiplier(int64_t step) const {
  if (step < 0) {
    return absl::InvalidArgumentError(absl::StrCat("lr schedule step is ", step, "; steps count from 0"));
  }
  const double current = static_cast<double>(step);
  if (step < warmup_steps_) {
    return current / static_cast<double>(std::max<int64_t>(1, warmup_steps_));
  }
  const double decay_steps = static_cast<double>(std::max<int64_t>(1, total_steps_ - warmup_steps_));
  switch (kind_) {
    case LrScheduleKind::kConstant:
      return 1.0;
    case LrScheduleKind::kLinear:
      return std::max(0.0, static_cast<double>(total_steps_ - step) / decay_steps);
    case LrScheduleKind::kCosine: {
      const double progress = static_cast<double>(step - warmup_steps_) / decay_steps;
      return std::max(0.0, 0.5 * (1.0 + std::cos(kPi * kNumCycles * 2.0 * progress)));
    }
  }
  return absl::InternalError("lr schedule: unknown kind");
}

absl::StatusOr<double> LrSchedule::LearningRate(double base_lr, int64_t step) const {
  ASSIGN_OR_RETURN(double multiplier, Multiplier(step));
  return base_lr * multiplier;
}

}  // namespace tuneforge
