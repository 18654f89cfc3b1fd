// Pre-tokenizers: Sequence, Split (String or PCRE2 Regex pattern, every delimiter behavior), ByteLevel,
// Metaspace.
#include "services/trainer/tokenizer/pre_tokenizers.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <functional>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/trainer/tokenizer/byte_level_alphabet.h"
#include "services/trainer/tokenizer/utf8.h"

namespace tuneforge {
namespace {

constexpr char kSupported[] = "Sequence, Split, ByteLevel, Metaspace";
constexpr char kGpt2Pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t start;
  size_t end;
  bool is_match;
};

// `pattern` with \s and \S spelled as the White_Space property. Oniguruma, the Rust library's regex engine,
// takes \s as exactly that property; PCRE2's \s also matches U+180E MONGOLIAN VOWEL SEPARATOR, which would
// split ".\u180e" where the Rust library keeps it whole. PCRE2 knows the property from 10.40 on.
std::string WithWhiteSpaceProperty(const std::string& pattern) {
#if PCRE2_MAJOR == 10 && PCRE2_MINOR < 40
  return pattern;
#else
  std::string out;
  out.reserve(pattern.size() + 16);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '\\' || i + 1 == pattern.size()) {
      out.push_back(pattern[i]);
      continue;
    }
    const char next = pattern[++i];
    if (next == 's') {
      out += "\\p{White_Space}";
    } else if (next == 'S') {
      out += "\\P{White_Space}";
    } else {
      out.push_back('\\');
      out.push_back(next);
    }
  }
  return out;
#endif
}

// A compiled PCRE2 pattern (UTF + UCP, JIT when available).
class Regex {
 public:
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(const std::string& source) {
    const std::string pattern = WithWhiteSpaceProperty(source);
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer.json: pre_tokenizer Split regex '", source, "' does not compile (as '", pattern,
          "') at offset ", offset, ": ", reinterpret_cast<const char*>(message)));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; matching works without it
    return std::unique_ptr<Regex>(new Regex(code));
  }
  ~Regex() { pcre2_code_free(code_); }

  // Non-overlapping, non-empty matches of `text` (valid UTF-8), left to right.
  std::vector<std::pair<size_t, size_t>> FindAll(const std::string& text) const {
    std::vector<std::pair<size_t, size_t>> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t start = 0;
    while (start < text.size()) {
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start,
                                 PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[1] > ov[0]) {
        out.emplace_back(ov[0], ov[1]);
        start = ov[1];
      } else {
        start = ov[0] + Utf8CharLength(static_cast<unsigned char>(text[ov[0]]));
      }
    }
    pcre2_match_data_free(md);
    return out;
  }

 private:
  explicit Regex(pcre2_code* code) : code_(code) {}
  pcre2_code* code_;
};

std::vector<Span> SpansOf(const std::string& text, const std::vector<std::pair<size_t, size_t>>& matches) {
  std::vector<Span> spans;
  size_t prev = 0;
  for (const auto& [s, e] : matches) {
    if (s > prev) spans.push_back(Span{prev, s, false});
    spans.push_back(Span{s, e, true});
    prev = e;
  }
  if (prev < text.size()) spans.push_back(Span{prev, text.size(), false});
  return spans;
}

// Applies a delimiter behavior to the match/gap spans of one piece, as the Rust library does.
std::vector<std::pair<size_t, size_t>> ApplyBehavior(std::vector<Span> spans, Behavior behavior) {
  std::vector<std::pair<size_t, size_t>> out;
  switch (behavior) {
    case Behavior::kIsolated:
      for (const Span& s : spans) out.emplace_back(s.start, s.end);
      break;
    case Behavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.emplace_back(s.start, s.end);
      }
      break;
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().first = it->start;
        } else {
          out.emplace_back(it->start, it->end);
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case Behavior::kContiguous: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
  }
  return out;
}

void SplitPieces(std::vector<std::string>* pieces,
                 const std::function<std::vector<std::pair<size_t, size_t>>(const std::string&)>& split) {
  std::vector<std::string> out;
  out.reserve(pieces->size());
  for (const std::string& piece : *pieces) {
    for (const auto& [s, e] : split(piece)) {
      if (e > s) out.push_back(piece.substr(s, e - s));
    }
  }
  *pieces = std::move(out);
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void Split(std::vector<std::string>* pieces, bool starts_input) const override {
    for (const auto& step : steps_) step->Split(pieces, starts_input);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> regex, std::string literal, Behavior behavior, bool invert)
      : regex_(std::move(regex)), literal_(std::move(literal)), behavior_(behavior), invert_(invert) {}
  void Split(std::vector<std::string>* pieces, bool starts_input) const override {
    SplitPieces(pieces, [this](const std::string& text) {
      std::vector<Span> spans = SpansOf(text, Matches(text));
      if (invert_) {
        for (Span& s : spans) s.is_match = !s.is_match;
      }
      return ApplyBehavior(std::move(spans), behavior_);
    });
  }

 private:
  std::vector<std::pair<size_t, size_t>> Matches(const std::string& text) const {
    if (regex_ != nullptr) return regex_->FindAll(text);
    std::vector<std::pair<size_t, size_t>> out;
    size_t pos = 0;
    while ((pos = text.find(literal_, pos)) != std::string::npos) {
      out.emplace_back(pos, pos + literal_.size());
      pos += literal_.size();
    }
    return out;
  }

  std::unique_ptr<Regex> regex_;
  std::string literal_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(std::unique_ptr<Regex> regex, bool add_prefix_space)
      : regex_(std::move(regex)), add_prefix_space_(add_prefix_space) {}
  void Split(std::vector<std::string>* pieces, bool starts_input) const override {
    if (add_prefix_space_) {
      for (std::string& piece : *pieces) {
        if (piece.empty() || piece[0] != ' ') piece.insert(0, " ");
      }
    }
    if (regex_ != nullptr) {
      SplitPieces(pieces, [this](const std::string& text) {
        return ApplyBehavior(SpansOf(text, regex_->FindAll(text)), Behavior::kIsolated);
      });
    }
    for (std::string& piece : *pieces) {
      std::string spelled;
      spelled.reserve(piece.size() * 2);
      AppendByteLevel(piece, &spelled);
      piece = std::move(spelled);
    }
  }

 private:
  std::unique_ptr<Regex> regex_;
  bool add_prefix_space_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void Split(std::vector<std::string>* pieces, bool starts_input) const override {
    std::vector<std::string> out;
    for (size_t i = 0; i < pieces->size(); ++i) {
      std::string text;
      const std::string& piece = (*pieces)[i];
      for (char c : piece) {
        if (c == ' ') {
          text += replacement_;
        } else {
          text.push_back(c);
        }
      }
      const bool prepend = scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && i == 0 && starts_input);
      if (prepend && text.compare(0, replacement_.size(), replacement_) != 0) text.insert(0, replacement_);
      if (!split_) {
        if (!text.empty()) out.push_back(std::move(text));
        continue;
      }
      std::vector<std::pair<size_t, size_t>> matches;
      for (size_t pos = text.find(replacement_); pos != std::string::npos;
           pos = text.find(replacement_, pos + replacement_.size())) {
        matches.emplace_back(pos, pos + replacement_.size());
      }
      for (const auto& [s, e] : ApplyBehavior(SpansOf(text, matches), Behavior::kMergedWithNext)) {
        out.push_back(text.substr(s, e - s));
      }
    }
    *pieces = std::move(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

absl::StatusOr<Behavior> ParseBehavior(const std::string& name) {
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat(
      "tokenizer.json: pre_tokenizer Split behavior '", name,
      "' is not supported; supported: Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const nlohmann::json& config) {
  try {
    const std::string type = config.at("type").get<std::string>();
    if (type == "Sequence") {
      std::vector<std::unique_ptr<PreTokenizer>> steps;
      for (const nlohmann::json& step : config.at("pretokenizers")) {
        ASSIGN_OR_RETURN(auto pre, PreTokenizerFromJson(step));
        steps.push_back(std::move(pre));
      }
      return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(steps)));
    }
    if (type == "Split") {
      ASSIGN_OR_RETURN(Behavior behavior, ParseBehavior(config.at("behavior").get<std::string>()));
      const bool invert = config.value("invert", false);
      const nlohmann::json& pattern = config.at("pattern");
      if (pattern.contains("Regex")) {
        ASSIGN_OR_RETURN(auto regex, Regex::Compile(pattern["Regex"].get<std::string>()));
        return std::unique_ptr<PreTokenizer>(new SplitPreTokenizer(std::move(regex), "", behavior, invert));
      }
      const std::string literal = pattern.at("String").get<std::string>();
      if (literal.empty()) {
        return absl::InvalidArgumentError("tokenizer.json: pre_tokenizer Split has an empty String pattern");
      }
      return std::unique_ptr<PreTokenizer>(new SplitPreTokenizer(nullptr, literal, behavior, invert));
    }
    if (type == "ByteLevel") {
      std::unique_ptr<Regex> regex;
      if (config.value("use_regex", true)) {
        ASSIGN_OR_RETURN(regex, Regex::Compile(kGpt2Pattern));
      }
      return std::unique_ptr<PreTokenizer>(
          new ByteLevelPreTokenizer(std::move(regex), config.value("add_prefix_space", true)));
    }
    if (type == "Metaspace") {
      const std::string scheme_name = config.value("prepend_scheme", std::string("always"));
      PrependScheme scheme;
      if (scheme_name == "always") {
        scheme = PrependScheme::kAlways;
      } else if (scheme_name == "first") {
        scheme = PrependScheme::kFirst;
      } else if (scheme_name == "never") {
        scheme = PrependScheme::kNever;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: pre_tokenizer Metaspace prepend_scheme '",
                                                       scheme_name, "' is not one of always, first, never"));
      }
      return std::unique_ptr<PreTokenizer>(new MetaspacePreTokenizer(
          config.value("replacement", std::string("\xE2\x96\x81")), scheme, config.value("split", true)));
    }
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: pre_tokenizer type '", type,
                                                   "' is not supported; supported: ", kSupported));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: malformed pre_tokenizer: ", e.what()));
  }
}

}  // namespace tuneforge
