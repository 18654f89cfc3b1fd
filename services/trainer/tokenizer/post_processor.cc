// Post-processors: TemplateProcessing (single template), ByteLevel (no effect on ids), Sequence.
#include "services/trainer/tokenizer/post_processor.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tuneforge {
namespace {

constexpr char kSupported[] = "TemplateProcessing, ByteLevel, Sequence";

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void Process(std::vector<int32_t>* ids) const override {
    for (const auto& step : steps_) step->Process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// Offsets are all ByteLevel post-processing changes; ids stay as they are.
class IdentityProcessor : public PostProcessor {
 public:
  void Process(std::vector<int32_t>*) const override {}
};

// `pieces_` holds the single template: an empty vector stands for the sequence, otherwise the special ids.
class TemplateProcessor : public PostProcessor {
 public:
  explicit TemplateProcessor(std::vector<std::vector<int32_t>> pieces) : pieces_(std::move(pieces)) {}
  void Process(std::vector<int32_t>* ids) const override {
    std::vector<int32_t> out;
    out.reserve(ids->size() + 4);
    for (const auto& piece : pieces_) {
      if (piece.empty()) {
        out.insert(out.end(), ids->begin(), ids->end());
      } else {
        out.insert(out.end(), piece.begin(), piece.end());
      }
    }
    *ids = std::move(out);
  }

 private:
  std::vector<std::vector<int32_t>> pieces_;
};

absl::StatusOr<std::unique_ptr<PostProcessor>> TemplateFromJson(const nlohmann::json& config) {
  const nlohmann::json& specials = config.at("special_tokens");
  std::vector<std::vector<int32_t>> pieces;
  int sequences = 0;
  for (const nlohmann::json& piece : config.at("single")) {
    if (piece.contains("Sequence")) {
      const std::string id = piece["Sequence"].at("id").get<std::string>();
      if (id != "A") {
        return absl::InvalidArgumentError(absl::StrCat(
            "tokenizer.json: post_processor TemplateProcessing single template uses sequence '", id,
            "'; a single template may only use sequence A"));
      }
      pieces.emplace_back();
      ++sequences;
    } else if (piece.contains("SpecialToken")) {
      const std::string name = piece["SpecialToken"].at("id").get<std::string>();
      if (!specials.contains(name)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tokenizer.json: post_processor TemplateProcessing uses special token '", name,
            "' that is missing from its special_tokens"));
      }
      std::vector<int32_t> ids = specials[name].at("ids").get<std::vector<int32_t>>();
      if (ids.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tokenizer.json: post_processor TemplateProcessing special token '", name, "' has no ids"));
      }
      pieces.push_back(std::move(ids));
    } else {
      return absl::InvalidArgumentError(
          "tokenizer.json: post_processor TemplateProcessing single template piece must be Sequence or SpecialToken");
    }
  }
  if (sequences != 1) {
    return absl::InvalidArgumentError(
        "tokenizer.json: post_processor TemplateProcessing single template must use sequence A exactly once");
  }
  return std::unique_ptr<PostProcessor>(new TemplateProcessor(std::move(pieces)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostProcessor>> PostProcessorFromJson(const nlohmann::json& config) {
  try {
    const std::string type = config.at("type").get<std::string>();
    if (type == "Sequence") {
      std::vector<std::unique_ptr<PostProcessor>> steps;
      for (const nlohmann::json& step : config.at("processors")) {
        ASSIGN_OR_RETURN(auto processor, PostProcessorFromJson(step));
        steps.push_back(std::move(processor));
      }
      return std::unique_ptr<PostProcessor>(new SequenceProcessor(std::move(steps)));
    }
    if (type == "ByteLevel") return std::unique_ptr<PostProcessor>(new IdentityProcessor());
    if (type == "TemplateProcessing") return TemplateFromJson(config);
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: post_processor type '", type,
                                                   "' is not supported; supported: ", kSupported));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: malformed post_processor: ", e.what()));
  }
}

}  // namespace tuneforge
