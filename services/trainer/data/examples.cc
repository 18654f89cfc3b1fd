// Rows -> tokenized examples with loss masks (see examples.h).
#include "services/trainer/data/examples.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tuneforge {

namespace {

// Tokens `prefix_ids` shares with `ids` from the start: where text cut at a boundary lands in the full encoding.
size_t CommonPrefix(const std::vector<int32_t>& prefix_ids, const std::vector<int32_t>& ids) {
  size_t n = 0;
  while (n < prefix_ids.size() && n < ids.size() && prefix_ids[n] == ids[n]) ++n;
  return n;
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// What a template shows of an assistant message in the history: the text after a reasoning block ("<think>...
// </think>", which reasoning models' templates drop from earlier turns), without surrounding whitespace (which
// most templates trim).
std::string VisibleContent(const std::string& content) {
  std::string_view v = content;
  if (size_t think_end = v.rfind("</think>"); think_end != std::string_view::npos) v.remove_prefix(think_end + 8);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
  return std::string(v);
}

// ShareGPT speaker names as chat roles. Tool turns (function_call, observation, tool) are refused: they need the
// template's tool-call rendering, which a text-only conversation cannot give them.
std::optional<std::string> ShareGptRole(const std::string& from) {
  if (from == "human" || from == "user") return "user";
  if (from == "gpt" || from == "assistant" || from == "chatgpt") return "assistant";
  if (from == "system") return "system";
  return std::nullopt;
}

// A string-valued Alpaca column, or an error naming the row, the column and the prompt field that chose it.
absl::StatusOr<std::string> AlpacaText(const nlohmann::json& row, const std::string& column, const char* field,
                                       bool optional, const std::string& label) {
  auto it = row.find(column);
  if (it == row.end() || it->is_null()) {
    if (optional) return std::string();
    return absl::InvalidArgumentError(absl::StrCat(label, (it == row.end() ? " has no column '" : " has a null '"),
                                                   column, "', the prompt's alpaca.", field,
                                                   "; fill it or remove the row"));
  }
  if (!it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": column '", column, "' (alpaca.", field,
                                                   ") must be a string, not ", it->dump().substr(0, 80)));
  }
  return it->get<std::string>();
}

}  // namespace

std::string AlpacaPromptText(const std::string& instruction, const std::string& input) {
  if (input.empty()) {
    return absl::StrCat(
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\n",
        instruction, "\n\n### Response:");
  }
  return absl::StrCat(
      "Below is an instruction that describes a task, paired with an input that provides further context. "
      "Write a response that appropriately completes the request.\n\n### Instruction:\n",
      instruction, "\n\n### Input:\n", input, "\n\n### Response:");
}

absl::StatusOr<nlohmann::ordered_json> RowMessages(const nlohmann::json& row, const std::string& column,
                                                   PromptFormat::MessageFormat format, const std::string& label) {
  const bool sharegpt = format == PromptFormat::MessageFormat::kShareGpt;
  const char* const shape = sharegpt ? "{\"from\", \"value\"} turns" : "{\"role\", \"content\"} messages";
  const char* const role_key = sharegpt ? "from" : "role";
  const char* const content_key = sharegpt ? "value" : "content";
  const char* const item = sharegpt ? "turn" : "message";
  if (!row.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(label, " is not a JSON object; fix or remove that row"));
  }
  auto it = row.find(column);
  if (it == row.end() || it->is_null()) {
    return absl::InvalidArgumentError(absl::StrCat(label, (it == row.end() ? " has no column '" : " has a null '"),
                                                   column, "', the prompt's messages column; fill it with a list of ",
                                                   shape, " or remove the row"));
  }
  if (!it->is_array() || it->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": column '", column, "' must be a non-empty list of ",
                                                   shape, ", not ", it->dump().substr(0, 80)));
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const nlohmann::json& m = (*it)[i];
    const std::string where = absl::StrCat(label, ": column '", column, "' ", item, " ", i + 1);
    if (!m.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, " is not an object"));
    auto role = m.find(role_key);
    if (role == m.end() || !role->is_string()) {
      std::string hint = sharegpt ? " (human, gpt or system)" : " (system, user or assistant)";
      if (!sharegpt && m.contains("from")) hint += "; it has \"from\": set the prompt's message format to sharegpt";
      if (sharegpt && m.contains("role")) hint += "; it has \"role\": set the prompt's message format to openai";
      return absl::InvalidArgumentError(absl::StrCat(where, " has no string \"", role_key, "\"", hint));
    }
    auto content = m.find(content_key);
    if (content == m.end() || !content->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, " has no string \"", content_key,
                                                     "\"; only text messages can be trained on"));
    }
    if (!sharegpt) {
      out.push_back(nlohmann::ordered_json::parse(m.dump()));
      continue;
    }
    const std::string& from = role->get_ref<const std::string&>();
    std::optional<std::string> mapped = ShareGptRole(from);
    if (!mapped) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, " is from '", from, "'; ShareGPT turns must be from human, gpt or system",
          (from == "function_call" || from == "observation" || from == "tool"
               ? " (tool calls and their results cannot be trained on yet; remove those rows)"
               : "")));
    }
    out.push_back({{"role", *mapped}, {"content", content->get<std::string>()}});
  }
  return out;
}

absl::StatusOr<ExampleBuilder> ExampleBuilder::Create(const Tokenizer* tokenizer, const ChatFormat* chat,
                                                      const PromptFormat& format, const ExampleOptions& options) {
  if (tokenizer == nullptr) return absl::InvalidArgumentError("ExampleBuilder needs a tokenizer");
  if (options.max_seq_len < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_seq_len is ", options.max_seq_len, "; it must be at least 2 tokens"));
  }
  ExampleBuilder b;
  b.tokenizer_ = tokenizer;
  b.format_ = format;
  b.options_ = options;
  if (format.mode == PromptFormat::Mode::kAlpaca) {
    if (format.instruction_column.empty() || format.input_column.empty() || format.output_column.empty()) {
      return absl::InvalidArgumentError(
          "alpaca prompt: instruction_column, input_column and output_column must be set");
    }
  }
  if (format.mode == PromptFormat::Mode::kChat || (format.mode == PromptFormat::Mode::kAlpaca && format.alpaca_chat)) {
    if (chat == nullptr) {
      return absl::FailedPreconditionError(
          "the prompt renders chat messages, but the model's tokenizer has no chat_template in "
          "tokenizer_config.json; use a template prompt (input_template / completion_template) instead");
    }
    if (format.mode == PromptFormat::Mode::kChat && format.messages_column.empty()) {
      return absl::InvalidArgumentError("chat prompt: messages_column is empty");
    }
    b.chat_ = chat;
    return b;
  }
  if (format.mode == PromptFormat::Mode::kAlpaca) return b;
  ASSIGN_OR_RETURN(PromptTemplate input, PromptTemplate::Parse(format.input_template, "input_template"));
  ASSIGN_OR_RETURN(PromptTemplate completion, PromptTemplate::Parse(format.completion_template, "completion_template"));
  b.input_ = std::move(input);
  b.completion_ = std::move(completion);
  return b;
}

absl::StatusOr<Example> ExampleBuilder::Build(const nlohmann::json& row, std::string_view row_label) const {
  switch (format_.mode) {
    case PromptFormat::Mode::kChat:
      return BuildChat(row, row_label);
    case PromptFormat::Mode::kAlpaca:
      return BuildAlpaca(row, row_label);
    case PromptFormat::Mode::kTemplate:
      break;
  }
  return BuildTemplate(row, row_label);
}

absl::StatusOr<Example> ExampleBuilder::BuildTemplate(const nlohmann::json& row, std::string_view row_label) const {
  ASSIGN_OR_RETURN(std::string input, input_->Render(row, row_label));
  ASSIGN_OR_RETURN(std::string completion, completion_->Render(row, row_label));
  return BuildText(input, completion);
}

absl::StatusOr<Example> ExampleBuilder::BuildAlpaca(const nlohmann::json& row, std::string_view row_label) const {
  const std::string label(row_label);
  if (!row.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(label, " is not a JSON object; fix or remove that row"));
  }
  ASSIGN_OR_RETURN(std::string instruction,
                   AlpacaText(row, format_.instruction_column, "instruction_column", false, label));
  ASSIGN_OR_RETURN(std::string input, AlpacaText(row, format_.input_column, "input_column", true, label));
  ASSIGN_OR_RETURN(std::string output, AlpacaText(row, format_.output_column, "output_column", false, label));
  if (!format_.alpaca_chat) return BuildText(AlpacaPromptText(instruction, input), output);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", input.empty() ? instruction : instruction + "\n\n" + input}});
  messages.push_back({{"role", "assistant"}, {"content", output}});
  return BuildMessages(messages, label, "the alpaca columns");
}

absl::StatusOr<Example> ExampleBuilder::BuildText(const std::string& input, const std::string& completion) const {
  Example ex;
  ASSIGN_OR_RETURN(ex.input_ids, tokenizer_->Encode(input + completion, /*add_special_tokens=*/true));
  if (options_.train_on_input) {
    ex.labels = ex.input_ids;
  } else {
    ASSIGN_OR_RETURN(std::vector<int32_t> prompt_ids, tokenizer_->Encode(input, /*add_special_tokens=*/true));
    const size_t n = CommonPrefix(prompt_ids, ex.input_ids);
    ex.labels.assign(ex.input_ids.size(), kIgnoreLabel);
    std::copy(ex.input_ids.begin() + static_cast<std::ptrdiff_t>(n), ex.input_ids.end(),
              ex.labels.begin() + static_cast<std::ptrdiff_t>(n));
  }
  if (options_.eos_id >= 0 && (ex.input_ids.empty() || ex.input_ids.back() != options_.eos_id)) {
    ex.input_ids.push_back(options_.eos_id);
    ex.labels.push_back(options_.eos_id);
  }
  return ex;
}

absl::StatusOr<Example> ExampleBuilder::BuildChat(const nlohmann::json& row, std::string_view row_label) const {
  const std::string label(row_label);
  ASSIGN_OR_RETURN(nlohmann::ordered_json messages,
                   RowMessages(row, format_.messages_column, format_.message_format, label));
  return BuildMessages(messages, label, absl::StrCat("column '", format_.messages_column, "'"));
}

absl::StatusOr<Example> ExampleBuilder::BuildMessages(const nlohmann::ordered_json& messages, const std::string& label,
                                                      const std::string& source) const {
  auto render = [&](size_t count, bool add_generation_prompt) -> absl::StatusOr<std::string> {
    nlohmann::ordered_json part = nlohmann::ordered_json::array();
    for (size_t i = 0; i < count; ++i) part.push_back(messages[i]);
    return RenderChat(*chat_, part, add_generation_prompt);
  };
  auto full = render(messages.size(), false);
  if (!full.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": the model's chat template refused ", source, ": ", full.status().message()));
  }
  Example ex;
  ASSIGN_OR_RETURN(ex.input_ids, tokenizer_->Encode(*full, /*add_special_tokens=*/false));
  if (options_.train_on_input) {
    ex.labels = ex.input_ids;
    return ex;
  }
  ex.labels.assign(ex.input_ids.size(), kIgnoreLabel);
  // Each assistant turn spans from the end of the conversation before it (rendered with the generation prompt)
  // to the end of the conversation through it, so the end-of-turn tokens the template writes are learned too.
  // Templates that render earlier turns differently once later ones exist fall back to the turn's content.
  size_t search_from = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i]["role"] != "assistant") continue;
    const std::string& content = messages[i]["content"].get_ref<const std::string&>();
    size_t start = std::string::npos, end = std::string::npos;
    const std::string shown = VisibleContent(content);
    if (auto before = render(i, true); before.ok() && StartsWith(*full, *before) && before->size() >= search_from) {
      start = before->size();
    } else if (size_t pos = full->find(shown, search_from); !shown.empty() && pos != std::string::npos) {
      start = pos;
    }
    if (start == std::string::npos) continue;  // the template dropped this turn: nothing to learn from it
    if (auto through = render(i + 1, false); through.ok() && StartsWith(*full, *through) && through->size() > start) {
      end = through->size();
    } else if (size_t pos = full->find(shown, start); !shown.empty() && pos != std::string::npos) {
      end = pos + shown.size();
      // The end-of-turn token the template writes after the content is learned too.
      const std::optional<std::string>& eos = chat_->config.eos_token;
      if (eos && !eos->empty() && full->compare(end, eos->size(), *eos) == 0) end += eos->size();
    } else {
      continue;
    }
    ASSIGN_OR_RETURN(std::vector<int32_t> start_ids, tokenizer_->Encode(full->substr(0, start), false));
    ASSIGN_OR_RETURN(std::vector<int32_t> end_ids, tokenizer_->Encode(full->substr(0, end), false));
    const size_t a = CommonPrefix(start_ids, ex.input_ids), b = CommonPrefix(end_ids, ex.input_ids);
    for (size_t t = a; t < b; ++t) ex.labels[t] = ex.input_ids[t];
    search_from = end;
  }
  return ex;
}

absl::StatusOr<ExampleSet> ExampleBuilder::BuildAll(const std::vector<nlohmann::json>& rows, std::string_view split,
                                                    const std::vector<std::string>& row_labels) const {
  ExampleSet set;
  set.rows = static_cast<int64_t>(rows.size());
  const size_t max_len = static_cast<size_t>(options_.max_seq_len);
  for (size_t r = 0; r < rows.size(); ++r) {
    ASSIGN_OR_RETURN(Example ex, Build(rows[r], r < row_labels.size()
                                                    ? row_labels[r]
                                                    : absl::StrCat(std::string(split), " row ", r + 1)));
    ex.row = r;
    if (ex.input_ids.size() > max_len) {
      ex.input_ids.resize(max_len);
      ex.labels.resize(max_len);
      ex.truncated = true;
    }
    // labels[0] never carries a loss: the first token is not predicted.
    const bool has_loss =
        std::any_of(ex.labels.begin() + (ex.labels.empty() ? 0 : 1), ex.labels.end(), [](int32_t l) {
          return l != kIgnoreLabel;
        });
    if (!has_loss) {
      set.skipped_rows.push_back(r);
      continue;
    }
    if (ex.truncated) ++set.truncated;
    set.tokens += static_cast<int64_t>(ex.input_ids.size());
    for (size_t t = 1; t < ex.labels.size(); ++t) set.label_tokens += ex.labels[t] != kIgnoreLabel ? 1 : 0;
    set.examples.push_back(std::move(ex));
  }
  return set;
}

int32_t ResolveEosId(const Tokenizer& tokenizer, const std::optional<std::string>& eos_token,
                     const std::vector<int64_t>& model_eos_ids) {
  if (eos_token) {
    const int32_t id = tokenizer.TokenToId(*eos_token);
    if (id >= 0) return id;
  }
  if (!model_eos_ids.empty() && model_eos_ids.front() >= 0 && model_eos_ids.front() < tokenizer.vocab_size()) {
    return static_cast<int32_t>(model_eos_ids.front());
  }
  return -1;
}

int32_t ResolvePadId(const Tokenizer& tokenizer, const std::optional<std::string>& pad_token, int32_t eos_id) {
  if (pad_token) {
    const int32_t id = tokenizer.TokenToId(*pad_token);
    if (id >= 0) return id;
  }
  return eos_id >= 0 ? eos_id : 0;
}

}  // namespace tuneforge
