// Field checks shared by all resources, and opaque page tokens.
#include "services/metadata/request_checks.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tuneforge {

namespace {

bool ValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int extra;
    if (c < 0x80) extra = 0;
    else if ((c >> 5) == 0x6) extra = 1;
    else if ((c >> 4) == 0xe) extra = 2;
    else if ((c >> 3) == 0x1e) extra = 3;
    else return false;
    for (int k = 1; k <= extra; ++k) {
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += extra + 1;
  }
  return true;
}

std::string Quote(absl::string_view s) {
  if (s.size() > 80) return absl::StrCat("'", s.substr(0, 80), "...'");
  return absl::StrCat("'", s, "'");
}

}  // namespace

absl::Status CheckName(absl::string_view name, absl::string_view field) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (name.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", name.size(), " characters long; use at most 128"));
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!alnum(name[0])) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", Quote(name), " must start with a letter or digit"));
  }
  for (char c : name) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-' && c != '/') {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " ", Quote(name), " contains a character that is not allowed; use letters, digits, '.', '_', '-' and '/'"));
    }
  }
  if (IsUuid(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", Quote(name), " looks like an id; choose a name that is not a UUID"));
  }
  return absl::OkStatus();
}

absl::Status CheckDescription(absl::string_view description, absl::string_view field) {
  return CheckText(description, field, 4096);
}

absl::Status CheckText(absl::string_view text, absl::string_view field, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", text.size(), " bytes long; the limit is ", max_bytes));
  }
  if (!ValidUtf8(text)) return absl::InvalidArgumentError(absl::StrCat(field, " is not valid UTF-8"));
  if (text.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, " contains a NUL character"));
  }
  return absl::OkStatus();
}

bool IsUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

absl::Status CheckUuid(absl::string_view id, absl::string_view field) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (!IsUuid(id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " ", Quote(id), " is not an id; ids are UUIDs such as 0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10"));
  }
  return absl::OkStatus();
}

absl::Status CheckReference(absl::string_view ref, absl::string_view field) {
  if (ref.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required: give an id or a name"));
  if (IsUuid(ref)) return absl::OkStatus();
  absl::Status s = CheckName(ref, field);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(s.message(), " (", field, " takes an id or a name)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<PageRequest> ParsePage(int page_size, absl::string_view page_token, absl::string_view kind) {
  PageRequest page;
  if (page_size < 0 || page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", page_size, " is out of range; use 1 to ", kMaxPageSize, " (0 means ", kDefaultPageSize, ")"));
  }
  if (page_size > 0) page.limit = page_size;
  if (page_token.empty()) return page;
  std::string decoded;
  const std::string prefix = absl::StrCat("tf1|", kind, "|");
  if (page_token.size() > 2048 || !absl::WebSafeBase64Unescape(page_token, &decoded) ||
      !absl::StartsWith(decoded, prefix)) {
    return absl::InvalidArgumentError(
        "page_token is not a token returned by this List call; pass the next_page_token of the previous "
        "response unchanged, or omit it to start from the first page");
  }
  page.after = decoded.substr(prefix.size());
  return page;
}

std::string MakePageToken(absl::string_view kind, absl::string_view last_key) {
  return absl::WebSafeBase64Escape(absl::StrCat("tf1|", kind, "|", last_key));
}

std::string TimeIdKey(absl::Time create_time, absl::string_view id) {
  return absl::StrCat(absl::ToUnixMicros(create_time), ",", id);
}

absl::Status ParseTimeIdKey(absl::string_view key, int64_t* create_us, std::string* id) {
  std::vector<absl::string_view> parts = absl::StrSplit(key, ',');
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], create_us) || !IsUuid(parts[1])) {
    return absl::InvalidArgumentError("page_token is damaged; omit it to start from the first page");
  }
  *id = std::string(parts[1]);
  return absl::OkStatus();
}

}  // namespace tuneforge
