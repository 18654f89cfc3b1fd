// An spdlog formatter that escapes each message's payload and then formats it with spdlog's default pattern.
#include "common/log_escaping.h"

#include <memory>

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

}  // namespace

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

void EscapeControlCharactersInLogs() { spdlog::set_formatter(std::make_unique<EscapingFormatter>()); }

}  // namespace tuneforge
