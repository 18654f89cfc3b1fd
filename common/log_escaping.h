// Log lines carry user input (names, paths, error messages that quote a request): control characters in it are
// escaped, so that a newline in a request cannot forge a log line and terminal escapes are not replayed.
#ifndef TUNEFORGE_COMMON_LOG_ESCAPING_H_
#define TUNEFORGE_COMMON_LOG_ESCAPING_H_

#include <string>
#include <string_view>

namespace tuneforge {

// `text` with ASCII control characters and DEL written as \n, \r, \t or \xNN, C1 controls and the Unicode line and
// paragraph separators as \uNNNN, and bytes that are not UTF-8 as \xNN. Everything else is kept as it is.
std::string EscapeLogText(std::string_view text);

// Makes every spdlog logger (those that exist and those created later) escape its messages with EscapeLogText,
// keeping spdlog's default pattern. The binaries call it once at start-up.
void EscapeControlCharactersInLogs();

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_LOG_ESCAPING_H_
