// Renders Hugging Face chat templates (the Jinja subset used by tokenizer_config.json "chat_template")
// with the environment transformers uses: trim_blocks, lstrip_blocks, raise_exception, Python-style tojson.
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_CHAT_TEMPLATE_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_CHAT_TEMPLATE_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace tuneforge {

namespace jinja {
struct Node;
}  // namespace jinja

class ChatTemplate {
 public:
  // Parses a template. An unsupported construct gives INVALID_ARGUMENT naming it and its line/column.
  static absl::StatusOr<ChatTemplate> Parse(std::string_view source);

  // Renders with the given variables (messages, bos_token, add_generation_prompt, tools, ...).
  // Object key order of `context` is kept (matters for tojson). raise_exception(msg) in the template
  // gives INVALID_ARGUMENT whose message is exactly msg.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context) const;
  absl::StatusOr<std::string> Render(const nlohmann::json& context) const;

 private:
  std::shared_ptr<const std::string> source_;  // kept for error positions
  std::shared_ptr<const jinja::Node> root_;
};

// What a tokenizer_config.json says about chat formatting.
struct ChatTemplateConfig {
  std::string chat_template;             // the "default" one when the config lists named templates
  std::optional<std::string> bos_token;  // absent when the config has none (or null)
  std::optional<std::string> eos_token;
};

// Reads tokenizer_config.json. NOT_FOUND when it has no chat_template.
absl::StatusOr<ChatTemplateConfig> ReadChatTemplateConfig(const std::string& path);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_CHAT_TEMPLATE_H_
