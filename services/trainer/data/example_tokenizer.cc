// Dataset rows -> examples with a model directory's tokenizer and a prompt.
#include "services/trainer/data/example_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace tuneforge {

namespace {

std::string Describe(std::string_view split, const ExampleSet& set, int64_t max_seq_len) {
  return absl::StrCat(std::string(split), ": ", set.examples.size(), " examples from ", set.rows, " rows (",
                      set.truncated, " truncated at max_seq_len ", max_seq_len, ", ", set.skipped_rows.size(),
                      " rows skipped), ", set.tokens, " tokens, ", set.label_tokens, " with a loss");
}

std::string RowList(const std::vector<size_t>& rows) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < rows.size() && i < 20; ++i) parts.push_back(absl::StrCat(rows[i] + 1));
  if (rows.size() > 20) parts.push_back(absl::StrCat("and ", rows.size() - 20, " more"));
  return absl::StrJoin(parts, ", ");
}

}  // namespace

absl::StatusOr<std::unique_ptr<ExampleTokenizer>> ExampleTokenizer::Load(const std::string& model_dir,
                                                                        const ModelArchitecture& arch,
                                                                        const PromptFormat& prompt,
                                                                        ExampleOptions options) {
  std::unique_ptr<ExampleTokenizer> out(new ExampleTokenizer());
  ASSIGN_OR_RETURN(out->tokenizer_, Tokenizer::FromFile(model_dir + "/tokenizer.json"));
  ChatTemplateConfig tokenizer_config;
  if (auto c = ReadTokenizerConfig(model_dir + "/tokenizer_config.json"); c.ok()) {
    tokenizer_config = *std::move(c);
  } else if (c.status().code() != absl::StatusCode::kNotFound) {
    return c.status();
  }
  if (prompt.mode == PromptFormat::Mode::kChat || (prompt.mode == PromptFormat::Mode::kAlpaca && prompt.alpaca_chat)) {
    ASSIGN_OR_RETURN(out->chat_, LoadChatFormat(model_dir));
  }
  options.eos_id = ResolveEosId(*out->tokenizer_, tokenizer_config.eos_token, arch.eos_token_ids);
  out->options_ = options;
  out->pad_id_ = ResolvePadId(*out->tokenizer_, tokenizer_config.pad_token, options.eos_id);
  if (out->pad_id_ < 0 || out->pad_id_ >= arch.vocab_size) out->pad_id_ = 0;  // masked out, any valid id does
  out->vocab_size_ = arch.vocab_size;
  ASSIGN_OR_RETURN(ExampleBuilder builder, ExampleBuilder::Create(out->tokenizer_.get(),
                                                                  out->chat_ ? &*out->chat_ : nullptr, prompt, options));
  out->builder_.emplace(std::move(builder));
  return out;
}

absl::StatusOr<ExampleSet> ExampleTokenizer::Build(
    const std::vector<nlohmann::json>& rows, std::string_view split, const std::vector<std::string>& labels,
    const std::function<void(std::string_view, const std::string&)>& on_event) const {
  auto event = [&](std::string_view level, const std::string& message) {
    if (on_event) on_event(level, message);
  };
  ASSIGN_OR_RETURN(ExampleSet set, builder_->BuildAll(rows, split, labels));
  event("info", Describe(split, set, options_.max_seq_len));
  if (set.truncated > 0) {
    event("warning", absl::StrCat(set.truncated, " ", std::string(split), " examples were cut at training.max_seq_len ",
                                  options_.max_seq_len, "; raise it to use whole examples"));
  }
  if (!set.skipped_rows.empty()) {
    event("warning", absl::StrCat(std::string(split), " rows skipped because no token would carry a loss: ",
                                  RowList(set.skipped_rows)));
  }
  for (const Example& ex : set.examples) {
    for (int32_t id : ex.input_ids) {
      if (id < 0 || id >= vocab_size_) {
        return absl::FailedPreconditionError(absl::StrCat("tokenizer.json gives token id ", id,
                                                          " but the model's vocab_size is ", vocab_size_,
                                                          "; the tokenizer does not belong to this model"));
      }
    }
  }
  return set;
}

}  // namespace tuneforge
