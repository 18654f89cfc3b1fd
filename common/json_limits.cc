// The depth scan is a flat loop over the bytes (no recursion, no allocation), so it is safe on any input.
#include "common/json_limits.h"

#include "absl/strings/str_cat.h"

namespace tuneforge {

namespace {

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

int JsonNestingDepth(std::string_view text, int stop_after) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > stop_after) return deepest;
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

absl::Status CheckJsonDepth(std::string_view text, int max_depth, std::string_view field) {
  if (JsonNestingDepth(text, max_depth) <= max_depth) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(Av(field), " nests arrays and objects deeper than ", max_depth,
                                                 " levels (the limit is ", max_depth, "); flatten it"));
}

}  // namespace tuneforge
