// Field checks shared by every resource: names, ids, text, page sizes and page tokens.
#include "services/metadata/request_checks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/status_matchers.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;

TEST(RequestChecksTest, Names) {
  for (const std::string& ok :
       std::vector<std::string>{"a", "llama-3.1-8b", "org/name_v2", "0model", std::string(128, 'x')}) {
    EXPECT_THAT(CheckName(ok, "name"), IsOk()) << ok;
  }
  EXPECT_THAT(CheckName("", "name"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name is required")));
  EXPECT_THAT(CheckName(std::string(129, 'x'), "name"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("129 characters long; use at most 128")));
  EXPECT_THAT(CheckName("-lead", "name"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("start with a letter")));
  EXPECT_THAT(CheckName("a b", "name"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not allowed")));
  EXPECT_THAT(CheckName("x';--", "prompt.name"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompt.name 'x';--'")));
  EXPECT_THAT(CheckName("0B7D2C4E-1F0A-4C1E-9A53-2F1D7C9E8B10", "name"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("UUID")));
}

TEST(RequestChecksTest, IdsAndReferences) {
  EXPECT_TRUE(IsUuid("0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10"));
  EXPECT_FALSE(IsUuid("0b7d2c4e1f0a4c1e9a532f1d7c9e8b10"));
  EXPECT_FALSE(IsUuid("0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b1g"));
  EXPECT_THAT(CheckUuid("x", "revision_id"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("revision_id 'x' is not an id")));
  EXPECT_THAT(CheckReference("", "model"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("give an id or a name")));
  EXPECT_THAT(CheckReference("my model", "model"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("takes an id or a name")));
  EXPECT_THAT(CheckReference("0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10", "model"), IsOk());
}

TEST(RequestChecksTest, TextMustBeUtf8WithinItsLimit) {
  EXPECT_THAT(CheckText("ünïcödé \xF0\x9F\x98\x80", "description", 100), IsOk());
  EXPECT_THAT(CheckText("\xC3", "description", 100),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid UTF-8")));
  EXPECT_THAT(CheckText("\xE2\x82", "description", 100), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("UTF-8")));
  EXPECT_THAT(CheckText("\xFF", "description", 100), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("UTF-8")));
  EXPECT_THAT(CheckText(std::string("a\0b", 3), "description", 100),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
  EXPECT_THAT(CheckDescription(std::string(4097, 'd'), "description"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("4097 bytes long; the limit is 4096")));
}

TEST(RequestChecksTest, PagesAndTokens) {
  auto first = ParsePage(0, "", "models");
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->limit, kDefaultPageSize);
  EXPECT_TRUE(first->after.empty());
  auto next = ParsePage(10, MakePageToken("models", "llama|x"), "models");
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(next->limit, 10);
  EXPECT_EQ(next->after, "llama|x");
  EXPECT_THAT(ParsePage(10, MakePageToken("datasets", "a"), "models"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a token returned by this List call")));
  EXPECT_THAT(ParsePage(10, "%%%", "models"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
  EXPECT_THAT(ParsePage(1001, "", "models"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1 to 1000")));
  EXPECT_THAT(ParsePage(-5, "", "models"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_size -5")));
}

}  // namespace
}  // namespace tuneforge
