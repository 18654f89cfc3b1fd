// The data pipeline's examples: template and chat prompts, label masks and EOS against the real tokenizers of
// ../shared/testdata (skipped when it is not beside the clone), and truncation, pad/EOS fallbacks and the errors
// naming the row and the column with a tiny tokenizer written here.
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "services/trainer/data/examples.h"
#include "services/trainer/tokenizer/chat_template.h"
#include "services/trainer/tokenizer/tokenizer.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::ScratchDir;
using ::tuneforge::testing::StatusIs;
using Json = nlohmann::json;

std::string TokenizerDir(const std::string& name) {
  return ::tuneforge::testing::SharedTestdata() + "/tokenizers/" + name;
}

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& name) {
  auto tok = Tokenizer::FromFile(TokenizerDir(name) + "/tokenizer.json");
  EXPECT_THAT(tok.status(), IsOk());
  return tok.ok() ? std::move(tok).value() : nullptr;
}

// A character-level BPE tokenizer (<unk> <s> </s>, printable ASCII, newline) with a chat template, like the quick
// start's demo model, written to `dir`: for the tests whose subject is the example builder, not a vocabulary.
// Returns the folder.
std::string WriteTinyTokenizer(const ScratchDir& dir) {
  const char* const special[] = {"<unk>", "<s>", "</s>"};
  Json vocab = Json::object();
  Json added = Json::array();
  for (int id = 0; id < 3; ++id) {
    vocab[special[id]] = id;
    added.push_back({{"id", id}, {"content", special[id]}, {"special", true}});
  }
  for (char c = 32; c < 127; ++c) vocab[std::string(1, c)] = static_cast<int>(vocab.size());
  vocab["\n"] = static_cast<int>(vocab.size());
  dir.WriteFile("tokenizer.json", Json{{"added_tokens", added},
                                       {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()},
                                                  {"unk_token", "<unk>"}}}}
                                      .dump());
  dir.WriteFile("tokenizer_config.json",
                Json{{"bos_token", "<s>"},
                     {"eos_token", "</s>"},
                     {"chat_template", "{% for m in messages %}<{{ m['role'] }}>\n{{ m['content'] }}</s>\n{% endfor %}"
                                       "{% if add_generation_prompt %}<assistant>\n{% endif %}"}}
                    .dump());
  return dir.path();
}

std::unique_ptr<Tokenizer> LoadTinyTokenizer(const ScratchDir& dir) {
  auto tok = Tokenizer::FromFile(WriteTinyTokenizer(dir) + "/tokenizer.json");
  EXPECT_THAT(tok.status(), IsOk());
  return tok.ok() ? std::move(tok).value() : nullptr;
}

// The text of the tokens that carry a loss, runs separated by '|'.
std::string LabeledText(const Tokenizer& tok, const Example& ex) {
  std::string out;
  std::vector<int32_t> run;
  auto flush = [&] {
    if (run.empty()) return;
    if (!out.empty()) out += "|";
    out += tok.Decode(run, false).value_or("<bad ids>");
    run.clear();
  };
  for (size_t t = 0; t < ex.labels.size(); ++t) {
    if (ex.labels[t] == kIgnoreLabel) {
      flush();
    } else {
      EXPECT_EQ(ex.labels[t], ex.input_ids[t]) << "position " << t;
      run.push_back(ex.labels[t]);
    }
  }
  flush();
  return out;
}

PromptFormat QaTemplate() {
  PromptFormat f;
  f.mode = PromptFormat::Mode::kTemplate;
  f.input_template = "### Question:\n{question}\n### Answer:\n";
  f.completion_template = "{answer}";
  return f;
}

TEST(DataExamplesTest, TemplateMasksThePromptAndAppendsEos) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  auto tok = LoadTokenizer("llama3");
  ASSERT_NE(tok, nullptr);
  auto config = ReadTokenizerConfig(TokenizerDir("llama3") + "/tokenizer_config.json");
  ASSERT_THAT(config.status(), IsOk());
  ExampleOptions opts;
  opts.eos_id = ResolveEosId(*tok, config->eos_token, {});
  EXPECT_EQ(opts.eos_id, tok->TokenToId("<|end_of_text|>"));
  auto builder = ExampleBuilder::Create(tok.get(), nullptr, QaTemplate(), opts);
  ASSERT_THAT(builder.status(), IsOk());
  auto ex = builder->Build(Json{{"question", "What is 2+2?"}, {"answer", "Four, as {everyone} knows."}}, "row");
  ASSERT_THAT(ex.status(), IsOk());
  auto whole = tok->Encode("### Question:\nWhat is 2+2?\n### Answer:\nFour, as {everyone} knows.", true);
  ASSERT_THAT(whole.status(), IsOk());
  std::vector<int32_t> want = *whole;
  want.push_back(opts.eos_id);
  EXPECT_EQ(ex->input_ids, want);
  EXPECT_EQ(LabeledText(*tok, *ex), "Four, as {everyone} knows.<|end_of_text|>");

  ExampleOptions all = opts;
  all.train_on_input = true;
  auto everything = ExampleBuilder::Create(tok.get(), nullptr, QaTemplate(), all);
  ASSERT_THAT(everything.status(), IsOk());
  auto ex2 = everything->Build(Json{{"question", "Q"}, {"answer", "A"}}, "row");
  ASSERT_THAT(ex2.status(), IsOk());
  EXPECT_EQ(ex2->labels, ex2->input_ids);
}

TEST(DataExamplesTest, SentencePieceTemplateAndScalarSlots) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  auto tok = LoadTokenizer("llama2");
  ASSERT_NE(tok, nullptr);
  ExampleOptions opts;
  opts.eos_id = ResolveEosId(*tok, std::nullopt, {2});
  EXPECT_EQ(opts.eos_id, 2);
  PromptFormat f;
  f.input_template = "{n} times {x} is";
  f.completion_template = " {y} ({ok})";
  auto builder = ExampleBuilder::Create(tok.get(), nullptr, f, opts);
  ASSERT_THAT(builder.status(), IsOk());
  auto ex = builder->Build(Json{{"n", 3}, {"x", 0.5}, {"y", 1.5}, {"ok", true}}, "row");
  ASSERT_THAT(ex.status(), IsOk());
  EXPECT_EQ(ex->input_ids.front(), 1);  // <s>
  EXPECT_EQ(ex->input_ids.back(), 2);   // </s>
  EXPECT_EQ(tok->Decode(ex->input_ids, true).value_or(""), "3 times 0.5 is 1.5 (True)");
  EXPECT_EQ(LabeledText(*tok, *ex), "1.5 (True)</s>");
}

TEST(DataExamplesTest, RowErrorsNameTheRowAndColumn) {
  ScratchDir dir;
  auto tok = LoadTinyTokenizer(dir);
  ASSERT_NE(tok, nullptr);
  auto builder = ExampleBuilder::Create(tok.get(), nullptr, QaTemplate(), {});
  ASSERT_THAT(builder.status(), IsOk());
  std::vector<Json> rows = {Json{{"question", "a"}, {"answer", "b"}}, Json{{"question", "c"}, {"answer", "d"}},
                            Json{{"question", "e"}}};
  EXPECT_THAT(builder->BuildAll(rows, "train"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("train row 3 has no column 'answer', which completion_template uses as {answer}")));
  rows[2]["answer"] = nullptr;
  EXPECT_THAT(builder->BuildAll(rows, "test"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("test row 3 has a null value in column 'answer'")));
  rows[2] = Json::array({1, 2});
  EXPECT_THAT(builder->BuildAll(rows, "train"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("train row 3 is not a JSON object")));

  PromptFormat bad = QaTemplate();
  bad.input_template = "{question";
  EXPECT_THAT(ExampleBuilder::Create(tok.get(), nullptr, bad, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("input_template: unbalanced '{' at byte offset 0")));
  ExampleOptions tiny;
  tiny.max_seq_len = 1;
  EXPECT_THAT(ExampleBuilder::Create(tok.get(), nullptr, QaTemplate(), tiny),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_seq_len is 1")));
}

TEST(DataExamplesTest, TruncationIsCountedAndPromptOnlyRowsAreSkipped) {
  ScratchDir dir;
  auto tok = LoadTinyTokenizer(dir);
  ASSERT_NE(tok, nullptr);
  ExampleOptions opts;
  opts.max_seq_len = 48;  // one token a character: the short row's 32-character prompt and answer fit
  opts.eos_id = tok->TokenToId("</s>");
  auto builder = ExampleBuilder::Create(tok.get(), nullptr, QaTemplate(), opts);
  ASSERT_THAT(builder.status(), IsOk());
  std::string long_answer, long_question;
  for (int i = 0; i < 40; ++i) long_answer += " word";
  for (int i = 0; i < 40; ++i) long_question += " why";
  std::vector<Json> rows = {Json{{"question", "short"}, {"answer", "yes"}},
                            Json{{"question", "short"}, {"answer", long_answer}},
                            Json{{"question", long_question}, {"answer", "no"}}};
  auto set = builder->BuildAll(rows, "train");
  ASSERT_THAT(set.status(), IsOk());
  EXPECT_EQ(set->rows, 3);
  ASSERT_EQ(set->examples.size(), 2u);
  EXPECT_EQ(set->truncated, 1);
  EXPECT_THAT(set->skipped_rows, ElementsAre(2u));
  EXPECT_FALSE(set->examples[0].truncated);
  EXPECT_TRUE(set->examples[1].truncated);
  EXPECT_EQ(set->examples[1].row, 1u);
  EXPECT_EQ(set->examples[1].input_ids.size(), 48u);
  EXPECT_NE(set->examples[1].input_ids.back(), opts.eos_id);  // cut before the end
  int64_t tokens = 0, label_tokens = 0;
  for (const Example& ex : set->examples) {
    tokens += static_cast<int64_t>(ex.input_ids.size());
    for (size_t t = 1; t < ex.labels.size(); ++t) label_tokens += ex.labels[t] != kIgnoreLabel;
  }
  EXPECT_EQ(set->tokens, tokens);
  EXPECT_EQ(set->label_tokens, label_tokens);
}

PromptFormat ChatPrompt() {
  PromptFormat f;
  f.mode = PromptFormat::Mode::kChat;
  f.messages_column = "messages";
  return f;
}

Json Conversation() {
  return Json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome."}])");
}

TEST(DataExamplesTest, ChatLabelsOnlyAssistantTurnsWithTheirEndOfTurn) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  const std::map<std::string, std::string> want = {
      {"llama3_1", "Paris.<|eot_id|>|Rome.<|eot_id|>"},
      // Qwen3 renders the last turn with an empty reasoning block and earlier ones without.
      {"qwen3", "Paris.<|im_end|>|<think>\n\n</think>\n\nRome.<|im_end|>\n"},
  };
  for (const auto& [name, labeled] : want) {
    SCOPED_TRACE(name);
    auto tok = LoadTokenizer(name);
    ASSERT_NE(tok, nullptr);
    auto chat = LoadChatFormat(TokenizerDir(name));
    ASSERT_THAT(chat.status(), IsOk());
    auto builder = ExampleBuilder::Create(tok.get(), &*chat, ChatPrompt(), {});
    ASSERT_THAT(builder.status(), IsOk());
    auto ex = builder->Build(Json{{"messages", Conversation()}}, "row");
    ASSERT_THAT(ex.status(), IsOk());
    auto rendered = RenderChat(*chat, nlohmann::ordered_json::parse(Conversation().dump()), false);
    ASSERT_THAT(rendered.status(), IsOk());
    EXPECT_EQ(ex->input_ids, tok->Encode(*rendered, false).value_or(std::vector<int32_t>{}));
    EXPECT_EQ(LabeledText(*tok, *ex), labeled);
  }
}

// Over every conversation of the reference chat cases and every tokenizer with a template: the example's ids are
// the reference ids of the rendered conversation, and each assistant turn's text is inside a labeled run.
TEST(DataExamplesTest, ChatReferenceConversations) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  std::ifstream in(::tuneforge::testing::SharedTestdata() + "/tokenizers/chat_cases.jsonl");
  ASSERT_TRUE(in.good());
  std::map<std::string, std::unique_ptr<Tokenizer>> toks;
  std::map<std::string, ChatFormat> chats;
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Json c = Json::parse(line);
    if (c["add_generation_prompt"].get<bool>() || c["rendered"].is_null() || c.contains("tools")) continue;
    const std::string name = c["tokenizer"].get<std::string>();
    SCOPED_TRACE(name + "/" + c["conversation"].get<std::string>());
    if (!toks.count(name)) {
      toks[name] = LoadTokenizer(name);
      auto chat = LoadChatFormat(TokenizerDir(name));
      ASSERT_THAT(chat.status(), IsOk());
      chats.emplace(name, *chat);
    }
    auto builder = ExampleBuilder::Create(toks[name].get(), &chats.at(name), ChatPrompt(), {});
    ASSERT_THAT(builder.status(), IsOk());
    auto ex = builder->Build(Json{{"messages", c["messages"]}}, "row");
    ASSERT_THAT(ex.status(), IsOk());
    EXPECT_EQ(ex->input_ids, c["ids"].get<std::vector<int32_t>>());
    const std::string labeled = LabeledText(*toks[name], *ex);
    bool any_assistant = false;
    for (const Json& m : c["messages"]) {
      if (m["role"] != "assistant") continue;
      any_assistant = true;
      std::string content = m["content"].get<std::string>();
      // Reasoning templates drop the reasoning block of earlier turns.
      if (size_t think_end = content.rfind("</think>"); think_end != std::string::npos) {
        content = content.substr(think_end + 8);
      }
      while (!content.empty() && (content.back() == ' ' || content.back() == '\n')) content.pop_back();
      while (!content.empty() && (content.front() == ' ' || content.front() == '\n')) content.erase(0, 1);
      EXPECT_THAT(labeled, HasSubstr(content));
    }
    if (!any_assistant) {
      EXPECT_EQ(labeled, "");
    }
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

TEST(DataExamplesTest, ChatRowErrorsAndSkippedConversations) {
  ScratchDir dir;
  auto tok = LoadTinyTokenizer(dir);
  ASSERT_NE(tok, nullptr);
  auto chat = LoadChatFormat(dir.path());
  ASSERT_THAT(chat.status(), IsOk());
  EXPECT_THAT(ExampleBuilder::Create(tok.get(), nullptr, ChatPrompt(), {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has no chat_template")));
  auto builder = ExampleBuilder::Create(tok.get(), &*chat, ChatPrompt(), {});
  ASSERT_THAT(builder.status(), IsOk());
  EXPECT_THAT(builder->Build(Json{{"conversation", Conversation()}}, "train row 4"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("train row 4 has no column 'messages', the prompt's messages column")));
  EXPECT_THAT(builder->Build(Json{{"messages", "hello"}}, "train row 5"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("train row 5: column 'messages' must be a non-empty list")));
  EXPECT_THAT(builder->Build(Json{{"messages", Json::parse(R"([{"role": "user"}])")}}, "train row 6"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("train row 6: column 'messages' message 1 has no string \"content\"")));
  auto set = builder->BuildAll({Json{{"messages", Conversation()}},
                                Json{{"messages", Json::parse(R"([{"role": "user", "content": "hi"}])")}}},
                               "train");
  ASSERT_THAT(set.status(), IsOk());
  EXPECT_EQ(set->examples.size(), 1u);
  EXPECT_THAT(set->skipped_rows, ElementsAre(1u));
}

TEST(DataExamplesTest, PadIdFallsBackToEos) {
  ScratchDir dir;
  auto tok = LoadTinyTokenizer(dir);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(ResolvePadId(*tok, std::string("</s>"), 5), 2);
  EXPECT_EQ(ResolvePadId(*tok, std::string("<no such token>"), 5), 5);
  EXPECT_EQ(ResolvePadId(*tok, std::nullopt, -1), 0);
  EXPECT_EQ(ResolveEosId(*tok, std::string("<no such token>"), {2, 1}), 2);
  EXPECT_EQ(ResolveEosId(*tok, std::string("<no such token>"), {tok->vocab_size()}), -1);  // not in the vocabulary
  EXPECT_EQ(ResolveEosId(*tok, std::nullopt, {}), -1);
}

}  // namespace
}  // namespace tuneforge
