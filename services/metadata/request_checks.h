// Checks shared by every resource: names, descriptions, ids, page sizes and page tokens.
// Each returns INVALID_ARGUMENT naming the request field and saying what a valid value looks like.
#ifndef TUNEFORGE_SERVICES_METADATA_REQUEST_CHECKS_H_
#define TUNEFORGE_SERVICES_METADATA_REQUEST_CHECKS_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tuneforge {

inline constexpr int kDefaultPageSize = 50;
inline constexpr int kMaxPageSize = 1000;

// 1-128 characters of [A-Za-z0-9._/-], starting with a letter or digit, and not shaped like a UUID
// (so that "id or name" lookups are never ambiguous).
absl::Status CheckName(absl::string_view name, absl::string_view field);
// At most 4096 bytes of valid UTF-8.
absl::Status CheckDescription(absl::string_view description, absl::string_view field);
// A canonical 8-4-4-4-12 hex UUID.
bool IsUuid(absl::string_view s);
absl::Status CheckUuid(absl::string_view id, absl::string_view field);
// An "id or name" reference: required, and either a UUID or a valid name.
absl::Status CheckReference(absl::string_view ref, absl::string_view field);
// Optional free text such as a template: at most `max_bytes` of valid UTF-8.
absl::Status CheckText(absl::string_view text, absl::string_view field, size_t max_bytes);

struct PageRequest {
  int limit = kDefaultPageSize;
  // Key of the last row of the previous page; empty for the first page.
  std::string after;
};

// `kind` binds a token to the List call that issued it ("models", "model_revisions:<id>", ...).
absl::StatusOr<PageRequest> ParsePage(int page_size, absl::string_view page_token, absl::string_view kind);
std::string MakePageToken(absl::string_view kind, absl::string_view last_key);

// The page key of List calls ordered by creation: "<create time in microseconds>,<id>". A key that does not read
// back (a page_token tampered with) is INVALID_ARGUMENT on page_token.
std::string TimeIdKey(absl::Time create_time, absl::string_view id);
absl::Status ParseTimeIdKey(absl::string_view key, int64_t* create_us, std::string* id);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_REQUEST_CHECKS_H_
