// Normalizers: Sequence, Prepend, Replace (string pattern), NFC, NFD.
#include "services/trainer/tokenizer/normalizers.h"

#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status_macros.h"
#include "services/trainer/tokenizer/unicode_normalization.h"

namespace tuneforge {
namespace {

constexpr char kSupported[] = "Sequence, Prepend, Replace (String pattern), NFC, NFD";

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void Normalize(std::string* text) const override {
    for (const auto& step : steps_) step->Normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void Normalize(std::string* text) const override {
    if (!text->empty()) text->insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void Normalize(std::string* text) const override {
    if (text->find(pattern_) == std::string::npos) return;
    *text = absl::StrReplaceAll(*text, {{pattern_, content_}});
  }

 private:
  std::string pattern_;
  std::string content_;
};

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(bool compose) : compose_(compose) {}
  void Normalize(std::string* text) const override {
    *text = compose_ ? ToNfc(*text) : ToNfd(*text);
  }

 private:
  bool compose_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const nlohmann::json& config) {
  try {
    const std::string type = config.at("type").get<std::string>();
    if (type == "Sequence") {
      std::vector<std::unique_ptr<Normalizer>> steps;
      for (const nlohmann::json& step : config.at("normalizers")) {
        ASSIGN_OR_RETURN(auto normalizer, NormalizerFromJson(step));
        steps.push_back(std::move(normalizer));
      }
      return std::unique_ptr<Normalizer>(new SequenceNormalizer(std::move(steps)));
    }
    if (type == "Prepend") {
      return std::unique_ptr<Normalizer>(new PrependNormalizer(config.at("prepend").get<std::string>()));
    }
    if (type == "Replace") {
      const nlohmann::json& pattern = config.at("pattern");
      if (!pattern.contains("String")) {
        return absl::InvalidArgumentError(
            "tokenizer.json: normalizer Replace with a Regex pattern is not supported; only {\"String\": ...} is");
      }
      const std::string from = pattern["String"].get<std::string>();
      if (from.empty()) {
        return absl::InvalidArgumentError("tokenizer.json: normalizer Replace has an empty pattern");
      }
      return std::unique_ptr<Normalizer>(new ReplaceNormalizer(from, config.at("content").get<std::string>()));
    }
    if (type == "NFC" || type == "NFD") {
      return std::unique_ptr<Normalizer>(new UnicodeNormalizer(type == "NFC"));
    }
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: normalizer type '", type,
                                                   "' is not supported; supported: ", kSupported));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: malformed normalizer: ", e.what()));
  }
}

}  // namespace tuneforge
