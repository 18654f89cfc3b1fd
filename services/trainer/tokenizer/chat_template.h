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
  std::optional<std::string> pad_token;
};

// Reads tokenizer_config.json; chat_template is empty when it has none. Missing file -> NOT_FOUND.
absl::StatusOr<ChatTemplateConfig> ReadTokenizerConfig(const std::string& path);
// The same, but NOT_FOUND when it has no chat_template.
absl::StatusOr<ChatTemplateConfig> ReadChatTemplateConfig(const std::string& path);

// A tokenizer's chat template with the bos/eos tokens of its tokenizer_config.json.
struct ChatFormat {
  ChatTemplateConfig config;
  ChatTemplate chat_template;
};

// From the tokenizer_config.json in `tokenizer_dir`. Missing file or no chat_template -> NOT_FOUND saying so; a
// template we cannot parse -> INVALID_ARGUMENT naming the construct.
absl::StatusOr<ChatFormat> LoadChatFormat(const std::string& tokenizer_dir);

// Renders `messages` (plus `tools` when not null) with the template and the config's bos/eos tokens, as
// transformers' apply_chat_template does. raise_exception in the template gives INVALID_ARGUMENT with exactly the
// template's message.
absl::StatusOr<std::string> RenderChat(const ChatFormat& chat, const nlohmann::ordered_json& messages,
                                       bool add_generation_prompt, const nlohmann::ordered_json* tools = nullptr);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_CHAT_TEMPLATE_H_
