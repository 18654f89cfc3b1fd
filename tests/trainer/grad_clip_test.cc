// ClipGradNorm on grads whose norms are worked out by hand: what it returns, how it scales the grads,
// what it leaves alone (params without grad, non-finite norms) and the error for a bad max_grad_norm.
#include "services/trainer/train/grad_clip.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tests/support/status_matchers.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;

at::Tensor ParamWithGrad(std::vector<float> grad, at::ScalarType dtype = at::kFloat) {
  at::Tensor g = at::tensor(grad, at::TensorOptions().dtype(at::kFloat)).to(dtype);
  at::Tensor p = at::zeros_like(g).requires_grad_(true);
  p.mutable_grad() = g;
  return p;
}

std::vector<double> Values(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

TEST(GradClipTest, ScalesToMaxNormAndReturnsNormBeforeClipping) {
  // sqrt(3^2 + 4^2 + 12^2) = sqrt(9 + 16 + 144) = sqrt(169) = 13
  at::Tensor a = ParamWithGrad({3.f, 4.f});
  at::Tensor b = ParamWithGrad({12.f});
  absl::StatusOr<double> norm = ClipGradNorm({a, b}, 6.5);
  ASSERT_THAT(norm.status(), IsOk());
  EXPECT_DOUBLE_EQ(*norm, 13.0);
  // coefficient 6.5 / (13 + 1e-6) = 0.49999996..., so each grad is very nearly halved.
  const double coef = 6.5 / (13.0 + 1e-6);
  EXPECT_THAT(Values(a.grad()),
              ::testing::ElementsAre(::testing::DoubleNear(3 * coef, 1e-5), ::testing::DoubleNear(4 * coef, 1e-5)));
  EXPECT_THAT(Values(b.grad()), ::testing::ElementsAre(::testing::DoubleNear(12 * coef, 1e-5)));
  // The clipped grads now have norm 6.5 (up to the 1e-6 guard).
  absl::StatusOr<double> after = ClipGradNorm({a, b}, 100.0);
  ASSERT_THAT(after.status(), IsOk());
  EXPECT_NEAR(*after, 6.5, 1e-5);
}

TEST(GradClipTest, MaxNormAboveTheNormLeavesGradsUnchanged) {
  at::Tensor a = ParamWithGrad({3.f, 4.f});
  at::Tensor b = ParamWithGrad({12.f});
  absl::StatusOr<double> norm = ClipGradNorm({a, b}, 13.5);
  ASSERT_THAT(norm.status(), IsOk());
  EXPECT_DOUBLE_EQ(*norm, 13.0);
  EXPECT_THAT(Values(a.grad()), ::testing::ElementsAre(3.0, 4.0));  // coefficient clamped to 1
  EXPECT_THAT(Values(b.grad()), ::testing::ElementsAre(12.0));
}

TEST(GradClipTest, SkipsParametersWithoutGrad) {
  at::Tensor frozen = at::ones({4});  // base weight, no grad
  at::Tensor untouched = at::ones({2}).requires_grad_(true);  // requires grad but has none yet
  at::Tensor a = ParamWithGrad({0.f, 2.f, 0.f});  // norm 2
  absl::StatusOr<double> norm = ClipGradNorm({frozen, untouched, a}, 1.0);
  ASSERT_THAT(norm.status(), IsOk());
  EXPECT_DOUBLE_EQ(*norm, 2.0);
  EXPECT_THAT(Values(a.grad()), ::testing::ElementsAre(0.0, ::testing::DoubleNear(2.0 / (2.0 + 1e-6), 1e-5), 0.0));
  EXPECT_FALSE(untouched.grad().defined());
  EXPECT_THAT(Values(frozen), ::testing::ElementsAre(1.0, 1.0, 1.0, 1.0));
}

TEST(GradClipTest, NoGradsGiveZero) {
  absl::StatusOr<double> norm = ClipGradNorm({at::ones({3})}, 1.0);
  ASSERT_THAT(norm.status(), IsOk());
  EXPECT_EQ(*norm, 0.0);
  absl::StatusOr<double> empty = ClipGradNorm({}, 1.0);
  ASSERT_THAT(empty.status(), IsOk());
  EXPECT_EQ(*empty, 0.0);
}

TEST(GradClipTest, Bfloat16GradsAreNormedInFloat) {
  // 1024 grads of 0.25: norm sqrt(1024 * 0.0625) = sqrt(64) = 8; a bf16 sum of squares could not hold this.
  at::Tensor a = ParamWithGrad(std::vector<float>(1024, 0.25f), at::kBFloat16);
  absl::StatusOr<double> norm = ClipGradNorm({a}, 4.0);
  ASSERT_THAT(norm.status(), IsOk());
  EXPECT_DOUBLE_EQ(*norm, 8.0);
  EXPECT_EQ(a.grad().scalar_type(), at::kBFloat16);
  EXPECT_NEAR(Values(a.grad())[0], 0.125, 1e-3);  // 0.25 * 4 / 8
}

TEST(GradClipTest, NonFiniteNormIsReturnedAndGradsLeftAlone) {
  at::Tensor a = ParamWithGrad({3.f, 4.f});
  at::Tensor b = ParamWithGrad({std::numeric_limits<float>::infinity()});
  absl::StatusOr<double> norm = ClipGradNorm({a, b}, 1.0);
  ASSERT_THAT(norm.status(), IsOk());
  EXPECT_TRUE(std::isinf(*norm));
  EXPECT_THAT(Values(a.grad()), ::testing::ElementsAre(3.0, 4.0));

  at::Tensor c = ParamWithGrad({std::nanf(""), 1.f});
  absl::StatusOr<double> nan_norm = ClipGradNorm({a, c}, 1.0);
  ASSERT_THAT(nan_norm.status(), IsOk());
  EXPECT_TRUE(std::isnan(*nan_norm));
  EXPECT_THAT(Values(a.grad()), ::testing::ElementsAre(3.0, 4.0));
  EXPECT_EQ(Values(c.grad())[1], 1.0);
}

TEST(GradClipTest, RejectsBadMaxNorm) {
  at::Tensor a = ParamWithGrad({3.f, 4.f});
  EXPECT_THAT(ClipGradNorm({a}, 0.0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_grad_norm is 0; use a finite value above 0")));
  EXPECT_THAT(ClipGradNorm({a}, -1.0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_grad_norm is -1")));
  EXPECT_THAT(ClipGradNorm({a}, std::numeric_limits<double>::infinity()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_grad_norm is inf")));
  EXPECT_THAT(Values(a.grad()), ::testing::ElementsAre(3.0, 4.0));
}

}  // namespace
}  // namespace tuneforge
