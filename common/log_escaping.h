// Log lines carry user input (names, paths, error messages that quote a request): control characters in it are
// escaped, so that a newline in a request cannot forge a log line and terminal escapes are not replayed.
#ifndef TUNEFORGE_COMMON_LOG_ESCAPING_H_
#define TUNEFORGE_COMMON_LOG_ESCAPING_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tuneforge {

// `text` with ASCII control characters and DEL written as \n, \r, \t or \xNN, C1 controls and the Unicode line and
// paragraph separators as \uNNNN, and bytes that are not UTF-8 as \xNN. Everything else is kept as it is.
std::string EscapeLogText(std::string_view text);

// How log lines look: kText is spdlog's default pattern; kJson is one JSON object per line for log pipelines.
enum class LogFormat { kText, kJson };

// "text" or "json" (--log-format); INVALID_ARGUMENT naming `flag` and the accepted values otherwise.
absl::StatusOr<LogFormat> ParseLogFormat(std::string_view text, std::string_view flag = "--log-format");

// {"time":"2026-01-02T03:04:05.678Z","level":"info","logger":"...","message":"..."} without a newline: time in UTC
// (RFC 3339, milliseconds), strings JSON-escaped (control characters as \n, \t or \u00XX; the Unicode line
// separators as \u2028 / \u2029; bytes that are not UTF-8 written as the text \xNN, as EscapeLogText does).
std::string JsonLogLine(absl::Time time, std::string_view level, std::string_view logger, std::string_view message);

// Makes every spdlog logger (those that exist and those created later) escape its messages: with kText by
// EscapeLogText in spdlog's default pattern, with kJson as JsonLogLine lines. The binaries call it once at start-up.
void EscapeControlCharactersInLogs(LogFormat format = LogFormat::kText);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_LOG_ESCAPING_H_
