// gtest helpers for absl::Status: EXPECT_THAT(s, IsOk()), EXPECT_THAT(s, StatusIs(code, HasSubstr("...")).
#ifndef TUNEFORGE_TESTS_SUPPORT_STATUS_MATCHERS_H_
#define TUNEFORGE_TESTS_SUPPORT_STATUS_MATCHERS_H_

#include <gmock/gmock.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tuneforge::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) { return s.status(); }

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s.ToString();
  return s.ok();
}

MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

}  // namespace tuneforge::testing

#endif  // TUNEFORGE_TESTS_SUPPORT_STATUS_MATCHERS_H_
