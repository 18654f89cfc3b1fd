// Decoders: Sequence, ByteLevel, Replace (String pattern), ByteFallback, Fuse, Strip, Metaspace.
#include "services/trainer/tokenizer/decoders.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status_macros.h"
#include "services/trainer/tokenizer/byte_level_alphabet.h"
#include "services/trainer/tokenizer/utf8.h"

namespace tuneforge {
namespace {

constexpr char kSupported[] = "Sequence, ByteLevel, Replace (String pattern), ByteFallback, Fuse, Strip, Metaspace";

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

// Maps every token's characters back to bytes; a token with a character outside the alphabet (an added
// token such as "<|eot_id|>" spelled in plain text) contributes its own bytes. Invalid UTF-8 becomes U+FFFD.
class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& token : *tokens) {
      const size_t mark = bytes.size();
      bool ok = true;
      size_t pos = 0;
      while (pos < token.size()) {
        const int b = ByteLevelByte(DecodeUtf8Char(token, &pos));
        if (b < 0) {
          ok = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!ok) {
        bytes.resize(mark);
        bytes.append(token);
      }
    }
    tokens->assign(1, Utf8Lossy(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) {
      if (token.find(pattern_) != std::string::npos) token = absl::StrReplaceAll(token, {{pattern_, content_}});
    }
  }

 private:
  std::string pattern_;
  std::string content_;
};

// Runs of "<0xNN>" tokens become the text they spell, or one U+FFFD per token when not valid UTF-8.
class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens->size());
    std::string pending;
    auto flush = [&]() {
      if (pending.empty()) return;
      if (FindInvalidUtf8(pending) == std::string_view::npos) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& token : *tokens) {
      int byte = -1;
      if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') byte = ParseHexByte(token);
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    *tokens = std::move(out);
  }

 private:
  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static int ParseHexByte(const std::string& token) {
    const int hi = HexDigit(token[3]), lo = HexDigit(token[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const std::string& token : *tokens) all += token;
    tokens->assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of the character `content` from every token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) {
      size_t begin = 0;
      for (size_t i = 0; i < start_ && token.compare(begin, content_.size(), content_) == 0; ++i) {
        begin += content_.size();
      }
      size_t end = token.size();
      for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++i) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_;
  size_t stop_;
};

// Replaces the metaspace character by a space; when prepending was on, the first token loses every metaspace
// character instead (the Rust library drops them all there, not only a leading one: "▁▁" decodes to "").
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first) : replacement_(std::move(replacement)),
                                                                strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& token = (*tokens)[i];
      token = absl::StrReplaceAll(token, {{replacement_, i == 0 && strip_first_ ? "" : " "}});
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const nlohmann::json& config) {
  try {
    const std::string type = config.at("type").get<std::string>();
    if (type == "Sequence") {
      std::vector<std::unique_ptr<Decoder>> steps;
      for (const nlohmann::json& step : config.at("decoders")) {
        ASSIGN_OR_RETURN(auto decoder, DecoderFromJson(step));
        steps.push_back(std::move(decoder));
      }
      return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(steps)));
    }
    if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder());
    if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
    if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
    if (type == "Replace") {
      const nlohmann::json& pattern = config.at("pattern");
      if (!pattern.contains("String") || pattern["String"].get<std::string>().empty()) {
        return absl::InvalidArgumentError(
            "tokenizer.json: decoder Replace needs a non-empty {\"String\": ...} pattern; Regex is not supported");
      }
      return std::unique_ptr<Decoder>(
          new ReplaceDecoder(pattern["String"].get<std::string>(), config.at("content").get<std::string>()));
    }
    if (type == "Strip") {
      return std::unique_ptr<Decoder>(new StripDecoder(config.at("content").get<std::string>(),
                                                       config.at("start").get<size_t>(),
                                                       config.at("stop").get<size_t>()));
    }
    if (type == "Metaspace") {
      const std::string scheme = config.value("prepend_scheme", std::string("always"));
      return std::unique_ptr<Decoder>(new MetaspaceDecoder(
          config.value("replacement", std::string("\xE2\x96\x81")), scheme != "never"));
    }
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: decoder type '", type,
                                                   "' is not supported; supported: ", kSupported));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: malformed decoder: ", e.what()));
  }
}

}  // namespace tuneforge
