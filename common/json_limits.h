// Limits for JSON that comes from users (requests, uploaded documents, files under the allowed roots): a nesting
// depth checked by a flat scan before any parser or PostgreSQL's jsonb sees the text, and a size.
#ifndef TUNEFORGE_COMMON_JSON_LIMITS_H_
#define TUNEFORGE_COMMON_JSON_LIMITS_H_

#include <string_view>

#include "absl/status/status.h"

namespace tuneforge {

// The deepest JSON any tuneforge input may nest (arrays and objects). Dataset rows, configs, config.json and
// adapter_config.json need a few levels; PostgreSQL's jsonb and recursive code (printing, comparing) need the
// depth to stay far below what overflows a stack.
inline constexpr int kMaxJsonDepth = 512;

// The nesting depth of `text` (0 for a scalar), found by one pass that skips strings; it stops counting once it
// passes `stop_after`. Malformed text gets a best-effort depth (the parser then names the syntax error).
int JsonNestingDepth(std::string_view text, int stop_after = kMaxJsonDepth);

// INVALID_ARGUMENT "<field> nests deeper than <max_depth> levels (the limit is <max_depth>)..." when `text`
// nests deeper than max_depth.
absl::Status CheckJsonDepth(std::string_view text, int max_depth, std::string_view field);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_JSON_LIMITS_H_
