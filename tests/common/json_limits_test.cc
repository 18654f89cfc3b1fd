// JSON limits: the depth scan (strings skipped, no recursion on any input) and the parsers that use it.
#include "common/json_limits.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "common/model_config.h"
#include "tests/support/status_matchers.h"

namespace tuneforge::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Nested(size_t depth) { return std::string(depth, '[') + "1" + std::string(depth, ']'); }

TEST(JsonNestingDepthTest, CountsArraysAndObjectsOutsideStrings) {
  EXPECT_EQ(JsonNestingDepth("1"), 0);
  EXPECT_EQ(JsonNestingDepth("{\"a\": [1, {\"b\": []}]}"), 4);
  EXPECT_EQ(JsonNestingDepth("{\"[[[[\": \"]]\\\"[[[\"}"), 1);
  EXPECT_EQ(JsonNestingDepth("[[]] [[[]]]"), 3);
  // It stops counting past the limit, whatever the input's size.
  EXPECT_EQ(JsonNestingDepth(Nested(1000000), 512), 513);
}

TEST(JsonNestingDepthTest, CheckJsonDepthNamesTheFieldAndTheLimit) {
  EXPECT_THAT(CheckJsonDepth(Nested(100000), kMaxJsonDepth, "content"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "content nests arrays and objects deeper than 512 levels (the limit is 512); flatten it"));
  EXPECT_THAT(CheckJsonDepth(Nested(10), 10, "content"), IsOk());
}

TEST(JsonNestingDepthTest, FilesFromUsersAreCheckedBeforeTheyAreParsed) {
  const std::string deep = "{\"model_type\": \"llama\", \"x\": " + Nested(100000) + "}";
  EXPECT_THAT(ParseModelConfig(deep, "", "/data/m/config.json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("/data/m/config.json nests arrays and objects deeper than 512 levels"))));
}

}  // namespace
}  // namespace tuneforge::testing
