// An spdlog formatter that escapes each message's payload and then formats it with spdlog's default pattern, and
// one that writes each message as a JSON object line.
#include "common/log_escaping.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/utf8.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/spdlog.h"

namespace tuneforge {

namespace {

bool NeedsEscaping(std::string_view text) {
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F) return true;  // non-ASCII is checked in detail by EscapeLogText
  }
  return false;
}

void AppendHex(unsigned value, int digits, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out->push_back(kHex[(value >> shift) & 0xF]);
}

class EscapingFormatter final : public spdlog::formatter {
 public:
  EscapingFormatter() : pattern_(std::make_unique<spdlog::pattern_formatter>()) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    if (!NeedsEscaping(payload)) {
      pattern_->format(msg, dest);
      return;
    }
    const std::string escaped = EscapeLogText(payload);
    spdlog::details::log_msg copy = msg;
    copy.payload = spdlog::string_view_t(escaped.data(), escaped.size());
    pattern_->format(copy, dest);
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<EscapingFormatter>(); }

 private:
  std::unique_ptr<spdlog::formatter> pattern_;
};

// Strings as JSON: quote, backslash and controls escaped; UTF-8 kept; bytes that are not UTF-8 as the text \xNN.
void AppendJsonString(std::string_view text, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
      ++i;
    } else if (c == '\n') {
      *out += "\\n";
      ++i;
    } else if (c == '\r') {
      *out += "\\r";
      ++i;
    } else if (c == '\t') {
      *out += "\\t";
      ++i;
    } else if (c < 0x20 || c == 0x7F) {
      *out += "\\u00";
      AppendHex(c, 2, out);
      ++i;
    } else if (c < 0x80) {
      out->push_back(static_cast<char>(c));
      ++i;
    } else if (const size_t len = Utf8SequenceLength(text, i); len == 0) {
      *out += "\\\\x";
      AppendHex(c, 2, out);
      ++i;
    } else {
      unsigned code = c & (0xFF >> (len + 1));
      for (size_t k = 1; k < len; ++k) code = (code << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
      if ((code >= 0x80 && code <= 0x9F) || code == 0x2028 || code == 0x2029) {
        *out += "\\u";
        AppendHex(code, 4, out);
      } else {
        out->append(text.substr(i, len));
      }
      i += len;
    }
  }
  out->push_back('"');
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    std::string line = JsonLogLine(absl::FromChrono(msg.time), std::string_view(level.data(), level.size()),
                                   std::string_view(msg.logger_name.data(), msg.logger_name.size()),
                                   std::string_view(msg.payload.data(), msg.payload.size()));
    line += spdlog::details::os::default_eol;
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

}  // namespace

absl::StatusOr<LogFormat> ParseLogFormat(std::string_view text, std::string_view flag) {
  if (text == "text") return LogFormat::kText;
  if (text == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(absl::StrCat(std::string(flag), "='", std::string(text), "' is not one of text, json"));
}

std::string JsonLogLine(absl::Time time, std::string_view level, std::string_view logger, std::string_view message) {
  std::string out = "{\"time\":\"";
  out += absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
  out += "\",\"level\":";
  AppendJsonString(level, &out);
  out += ",\"logger\":";
  AppendJsonString(logger, &out);
  out += ",\"message\":";
  AppendJsonString(message, &out);
  out += "}";
  return out;
}

std::string EscapeLogText(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c == '\n') {
      out += "\\n";
      ++i;
    } else if (c == '\r') {
      out += "\\r";
      ++i;
    } else if (c == '\t') {
      out += "\\t";
      ++i;
    } else if (c < 0x80) {
      out += "\\x";
      AppendHex(c, 2, &out);
      ++i;
    } else if (const size_t len = Utf8SequenceLength(text, i); len == 0) {
      out += "\\x";
      AppendHex(c, 2, &out);
      ++i;
    } else {
      unsigned code = c & (0xFF >> (len + 1));
      for (size_t k = 1; k < len; ++k) code = (code << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
      if ((code >= 0x80 && code <= 0x9F) || code == 0x2028 || code == 0x2029) {
        out += "\\u";
        AppendHex(code, 4, &out);
      } else {
        out.append(text.substr(i, len));
      }
      i += len;
    }
  }
  return out;
}

void EscapeControlCharactersInLogs(LogFormat format) {
  if (format == LogFormat::kJson) {
    spdlog::set_formatter(std::make_unique<JsonFormatter>());
  } else {
    spdlog::set_formatter(std::make_unique<EscapingFormatter>());
  }
}

}  // namespace tuneforge
