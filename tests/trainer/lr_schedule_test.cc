// LrSchedule against values worked out by hand from transformers' *_with_warmup formulas, the warmup
// resolution of get_warmup_steps, and the errors a user sees for bad settings.
#include "services/trainer/train/lr_schedule.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/support/status_matchers.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;

LrSchedule MakeSchedule(const std::string& name, int64_t total, int64_t warmup, double ratio = 0.0) {
  LrScheduleSettings settings;
  settings.lr_scheduler = name;
  settings.total_steps = total;
  settings.warmup_steps = warmup;
  settings.warmup_ratio = ratio;
  absl::StatusOr<LrSchedule> schedule = LrSchedule::Create(settings);
  EXPECT_THAT(schedule.status(), IsOk());
  return *schedule;
}

double At(const LrSchedule& schedule, int64_t step) {
  absl::StatusOr<double> m = schedule.Multiplier(step);
  EXPECT_THAT(m.status(), IsOk());
  return m.ok() ? *m : std::numeric_limits<double>::quiet_NaN();
}

TEST(LrScheduleTest, ConstantWithWarmup) {
  LrSchedule s = MakeSchedule("constant", 10, 4);
  EXPECT_EQ(s.kind(), LrScheduleKind::kConstant);
  EXPECT_EQ(At(s, 0), 0.0);   // 0 / 4
  EXPECT_EQ(At(s, 1), 0.25);  // 1 / 4
  EXPECT_EQ(At(s, 3), 0.75);  // 3 / 4
  EXPECT_EQ(At(s, 4), 1.0);   // warmup over
  EXPECT_EQ(At(s, 9), 1.0);
  EXPECT_EQ(At(s, 10), 1.0);
}

TEST(LrScheduleTest, LinearWithWarmup) {
  LrSchedule s = MakeSchedule("linear", 10, 2);
  EXPECT_EQ(At(s, 0), 0.0);     // 0 / max(1, 2)
  EXPECT_EQ(At(s, 1), 0.5);     // 1 / 2
  EXPECT_EQ(At(s, 2), 1.0);     // (10 - 2) / max(1, 10 - 2) = 8 / 8
  EXPECT_EQ(At(s, 3), 0.875);   // (10 - 3) / 8 = 7 / 8
  EXPECT_EQ(At(s, 6), 0.5);     // (10 - 6) / 8
  EXPECT_EQ(At(s, 9), 0.125);   // (10 - 9) / 8
  EXPECT_EQ(At(s, 10), 0.0);    // (10 - 10) / 8
  EXPECT_EQ(At(s, 12), 0.0);    // max(0, (10 - 12) / 8)
  absl::StatusOr<double> lr = s.LearningRate(2e-4, 6);
  ASSERT_THAT(lr.status(), IsOk());
  EXPECT_DOUBLE_EQ(*lr, 1e-4);  // 2e-4 * 0.5
}

TEST(LrScheduleTest, LinearWithoutWarmupStartsAtOne) {
  LrSchedule s = MakeSchedule("linear", 4, 0);
  EXPECT_EQ(At(s, 0), 1.0);   // (4 - 0) / max(1, 4 - 0)
  EXPECT_EQ(At(s, 1), 0.75);  // (4 - 1) / 4
  EXPECT_EQ(At(s, 4), 0.0);
}

TEST(LrScheduleTest, WarmupAsLongAsTheRunUsesDenominatorOne) {
  // total == warmup: the decay divides by max(1, 0) = 1.
  LrSchedule s = MakeSchedule("linear", 3, 3);
  EXPECT_EQ(At(s, 2), 2.0 / 3.0);  // 2 / 3, still warming up
  EXPECT_EQ(At(s, 3), 0.0);        // (3 - 3) / 1
}

TEST(LrScheduleTest, CosineWithWarmup) {
  LrSchedule s = MakeSchedule("cosine", 10, 2);
  EXPECT_EQ(At(s, 1), 0.5);  // 1 / 2
  EXPECT_EQ(At(s, 2), 1.0);  // progress (2-2)/8 = 0: 0.5 * (1 + cos(0))
  // progress (4-2)/8 = 0.25: 0.5 * (1 + cos(pi * 0.5 * 2 * 0.25)) = 0.5 * (1 + 0.7071067811865476)
  EXPECT_DOUBLE_EQ(At(s, 4), 0.8535533905932737);
  // progress (6-2)/8 = 0.5: 0.5 * (1 + cos(pi/2)) = 0.5 * (1 + 6.1e-17) rounds to 0.5
  EXPECT_DOUBLE_EQ(At(s, 6), 0.5);
  // progress (8-2)/8 = 0.75: 0.5 * (1 + cos(3pi/4)) = 0.5 * (1 - 0.7071067811865476)
  EXPECT_DOUBLE_EQ(At(s, 8), 0.14644660940672627);
  EXPECT_EQ(At(s, 10), 0.0);  // progress 1: 0.5 * (1 + cos(pi)) = 0.5 * (1 - 1)
}

TEST(LrScheduleTest, WarmupRatioRoundsUpAsGetWarmupSteps) {
  EXPECT_EQ(MakeSchedule("linear", 10, 0, 0.15).warmup_steps(), 2);  // ceil(10 * 0.15) = ceil(1.5)
  EXPECT_EQ(MakeSchedule("linear", 10, 0, 0.1).warmup_steps(), 1);   // ceil(10 * 0.1) = ceil(1.0)
  // 100 * 0.07 is 7.000000000000001 in double, so Python's math.ceil gives 8, and so do we.
  EXPECT_EQ(MakeSchedule("linear", 100, 0, 0.07).warmup_steps(), 8);
  // warmup_steps wins over warmup_ratio when both are set.
  EXPECT_EQ(MakeSchedule("linear", 10, 3, 0.5).warmup_steps(), 3);
  EXPECT_EQ(MakeSchedule("cosine", 10, 0, 0.0).warmup_steps(), 0);
  EXPECT_EQ(MakeSchedule("cosine", 10, 0, 1.0).warmup_steps(), 10);

  absl::StatusOr<int64_t> direct = ResolveWarmupSteps(20, 0, 0.25);
  ASSERT_THAT(direct.status(), IsOk());
  EXPECT_EQ(*direct, 5);  // ceil(20 * 0.25)
}

TEST(LrScheduleTest, WarmupRisesThenDecayFalls) {
  for (const char* name : {"constant", "linear", "cosine"}) {
    SCOPED_TRACE(name);
    LrSchedule s = MakeSchedule(name, 50, 7);
    double previous = At(s, 0);
    for (int64_t step = 1; step <= 7; ++step) {
      const double m = At(s, step);
      EXPECT_GT(m, previous) << "step " << step;
      previous = m;
    }
    EXPECT_EQ(previous, 1.0);
    for (int64_t step = 8; step <= 50; ++step) {
      const double m = At(s, step);
      if (std::string(name) == "constant") {
        EXPECT_EQ(m, 1.0) << "step " << step;
      } else {
        EXPECT_LT(m, previous) << "step " << step;
      }
      EXPECT_GE(m, 0.0);
      previous = m;
    }
  }
}

TEST(LrScheduleTest, RejectsUnknownScheduler) {
  EXPECT_THAT(ParseLrScheduleKind("cosine_with_restarts").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("lr_scheduler 'cosine_with_restarts' is not one we support; use constant, "
                                 "linear or cosine")));
  LrScheduleSettings settings;
  settings.lr_scheduler = "Linear";
  settings.total_steps = 10;
  EXPECT_THAT(LrSchedule::Create(settings).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lr_scheduler 'Linear'")));
}

TEST(LrScheduleTest, RejectsBadStepCounts) {
  EXPECT_THAT(ResolveWarmupSteps(0, 0, 0.0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("total_steps is 0; a run needs at least 1")));
  EXPECT_THAT(ResolveWarmupSteps(-5, 0, 0.0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("total_steps is -5")));
  EXPECT_THAT(ResolveWarmupSteps(10, -1, 0.0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("warmup_steps is -1; use 0 or more")));
  EXPECT_THAT(ResolveWarmupSteps(10, 11, 0.0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("warmup_steps is 11 but total_steps is only 10")));
  EXPECT_THAT(ResolveWarmupSteps(10, 0, 1.5),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("warmup_ratio is 1.5; use a fraction")));
  EXPECT_THAT(ResolveWarmupSteps(10, 0, -0.1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("warmup_ratio is -0.1")));
  EXPECT_THAT(ResolveWarmupSteps(10, 0, std::nan("")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("warmup_ratio is nan")));
}

TEST(LrScheduleTest, RejectsNegativeStep) {
  LrSchedule s = MakeSchedule("linear", 10, 2);
  EXPECT_THAT(s.Multiplier(-1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lr schedule step is -1; steps count from 0")));
  EXPECT_THAT(s.LearningRate(1e-3, -3).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("step is -3")));
}

}  // namespace
}  // namespace tuneforge
