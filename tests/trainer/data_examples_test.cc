// The data pipeline's examples: template and chat prompts, label masks and EOS against the real tokenizers of
// ../shared/testdata (skipped when it is not beside the clone), and truncation, pad/EOS fallbacks and the errors
// naming the row and the column with a tiny tokenizer written here.
#include <algorithm>
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

// The tiny tokenizer has no decoder (Decode puts spaces between tokens): its text is its tokens one by one. With
// `labeled_only`, the tokens that carry a loss, runs separated by '|'.
std::string TinyText(const Tokenizer& tok, const Example& ex, bool labeled_only) {
  std::string out;
  bool in_run = false;
  for (size_t t = 0; t < ex.input_ids.size(); ++t) {
    if (labeled_only && ex.labels[t] == kIgnoreLabel) {
      in_run = false;
      continue;
    }
    if (labeled_only && !in_run && !out.empty()) out += "|";
    in_run = true;
    out += tok.Decode({ex.input_ids[t]}, false).value_or("<bad id>");
  }
  return out;
}

// The conversation of Conversation() as ShareGPT turns.
Json ShareGptConversation() {
  return Json::parse(R"([
    {"from": "system", "value": "You are terse."},
    {"from": "human", "value": "Capital of France?"},
    {"from": "gpt", "value": "Paris."},
    {"from": "human", "value": "And of Italy?"},
    {"from": "gpt", "value": "Rome."}])");
}

PromptFormat ShareGptPrompt() {
  PromptFormat f = ChatPrompt();
  f.messages_column = "conversations";
  f.message_format = PromptFormat::MessageFormat::kShareGpt;
  return f;
}

void ExpectShareGptMatchesOpenAi(const Tokenizer& tok, const ChatFormat& chat) {
  auto openai = ExampleBuilder::Create(&tok, &chat, ChatPrompt(), {});
  auto sharegpt = ExampleBuilder::Create(&tok, &chat, ShareGptPrompt(), {});
  ASSERT_THAT(openai.status(), IsOk());
  ASSERT_THAT(sharegpt.status(), IsOk());
  auto want = openai->Build(Json{{"messages", Conversation()}}, "row");
  auto got = sharegpt->Build(Json{{"conversations", ShareGptConversation()}, {"id", "x1"}}, "row");
  ASSERT_THAT(want.status(), IsOk());
  ASSERT_THAT(got.status(), IsOk());
  EXPECT_EQ(got->input_ids, want->input_ids);
  EXPECT_EQ(got->labels, want->labels);
  EXPECT_TRUE(std::any_of(got->labels.begin(), got->labels.end(), [](int32_t l) { return l != kIgnoreLabel; }));
}

TEST(DataExamplesTest, ShareGptTurnsGiveTheIdsAndLabelsOfOpenAiMessages) {
  ScratchDir dir;
  auto tok = LoadTinyTokenizer(dir);
  ASSERT_NE(tok, nullptr);
  auto chat = LoadChatFormat(dir.path());
  ASSERT_THAT(chat.status(), IsOk());
  ExpectShareGptMatchesOpenAi(*tok, *chat);
  if (!::tuneforge::testing::SharedTestdataMissing().empty()) return;  // the real templates need the data
  for (const std::string name : {"llama3_1", "qwen3"}) {
    SCOPED_TRACE(name);
    auto real = LoadTokenizer(name);
    ASSERT_NE(real, nullptr);
    auto real_chat = LoadChatFormat(TokenizerDir(name));
    ASSERT_THAT(real_chat.status(), IsOk());
    ExpectShareGptMatchesOpenAi(*real, *real_chat);
  }
}

TEST(DataExamplesTest, ShareGptErrorsNameTheFileRowAndTurn) {
  ScratchDir dir;
  auto tok = LoadTinyTokenizer(dir);
  ASSERT_NE(tok, nullptr);
  auto chat = LoadChatFormat(dir.path());
  ASSERT_THAT(chat.status(), IsOk());
  auto builder = ExampleBuilder::Create(tok.get(), &*chat, ShareGptPrompt(), {});
  ASSERT_THAT(builder.status(), IsOk());
  const std::vector<std::string> labels = {"train.jsonl row 1", "train.jsonl row 2"};
  auto with_second = [&](const char* turns) {
    return builder->BuildAll({Json{{"conversations", ShareGptConversation()}},
                              Json{{"conversations", Json::parse(turns)}}},
                             "train", labels);
  };
  EXPECT_THAT(with_second(R"([{"from": "human", "value": "hi"}, {"value": "hello"}])"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("train.jsonl row 2: column 'conversations' turn 2 has no string \"from\" "
                                 "(human, gpt or system)")));
  EXPECT_THAT(with_second(R"([{"from": "human", "value": "hi"}, {"from": "narrator", "value": "hello"}])"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("train.jsonl row 2: column 'conversations' turn 2 is from 'narrator'; ShareGPT turns "
                                 "must be from human, gpt or system")));
  EXPECT_THAT(with_second(R"([{"from": "human", "value": "hi"}, {"from": "function_call", "value": "{}"}])"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tool calls and their results cannot be trained")));
  EXPECT_THAT(with_second(R"([{"from": "human", "value": 3}])"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("train.jsonl row 2: column 'conversations' turn 1 has no string \"value\"")));
  EXPECT_THAT(with_second(R"([{"role": "user", "content": "hi"}])"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("it has \"role\": set the prompt's message format to openai")));
  // OpenAI-format prompt over ShareGPT rows says which format to set.
  PromptFormat openai = ChatPrompt();
  openai.messages_column = "conversations";
  auto openai_builder = ExampleBuilder::Create(tok.get(), &*chat, openai, {});
  ASSERT_THAT(openai_builder.status(), IsOk());
  EXPECT_THAT(openai_builder->BuildAll({Json{{"conversations", ShareGptConversation()}}}, "train", labels),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("train.jsonl row 1: column 'conversations' message 1 has no string \"role\" (system, "
                                 "user or assistant); it has \"from\": set the prompt's message format to sharegpt")));
}

PromptFormat AlpacaPrompt(bool chat) {
  PromptFormat f;
  f.mode = PromptFormat::Mode::kAlpaca;
  f.alpaca_chat = chat;
  return f;
}

// Stanford Alpaca's PROMPT_DICT, as written in its train.py.
constexpr char kAlpacaWithInput[] =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nTranslate to French.\n\n### Input:\nGood morning\n\n### Response:";
constexpr char kAlpacaNoInput[] =
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nName a primary color.\n\n### Response:";

TEST(DataExamplesTest, AlpacaRowsReadStanfordAlpacaPromptText) {
  EXPECT_EQ(AlpacaPromptText("Translate to French.", "Good morning"), kAlpacaWithInput);
  EXPECT_EQ(AlpacaPromptText("Name a primary color.", ""), kAlpacaNoInput);
  ScratchDir dir;
  auto tok = LoadTinyTokenizer(dir);
  ASSERT_NE(tok, nullptr);
  ExampleOptions opts;
  opts.eos_id = tok->TokenToId("</s>");
  auto builder = ExampleBuilder::Create(tok.get(), nullptr, AlpacaPrompt(false), opts);
  ASSERT_THAT(builder.status(), IsOk());
  const std::vector<std::pair<Json, std::string>> cases = {
      {Json{{"instruction", "Translate to French."}, {"input", "Good morning"}, {"output", "Bonjour"}},
       kAlpacaWithInput},
      {Json{{"instruction", "Name a primary color."}, {"input", ""}, {"output", "Red"}}, kAlpacaNoInput},
      {Json{{"instruction", "Name a primary color."}, {"input", nullptr}, {"output", "Red"}}, kAlpacaNoInput},
      {Json{{"instruction", "Name a primary color."}, {"output", "Red"}}, kAlpacaNoInput},
  };
  for (const auto& [row, prompt] : cases) {
    SCOPED_TRACE(row.dump());
    auto ex = builder->Build(row, "row");
    ASSERT_THAT(ex.status(), IsOk());
    const std::string output = row["output"].get<std::string>();
    std::vector<int32_t> want = tok->Encode(prompt + output, true).value_or(std::vector<int32_t>{});
    want.push_back(opts.eos_id);
    EXPECT_EQ(ex->input_ids, want);
    EXPECT_EQ(TinyText(*tok, *ex, true), output + "</s>");
  }
  // Other column names.
  PromptFormat renamed = AlpacaPrompt(false);
  renamed.instruction_column = "task";
  renamed.input_column = "context";
  renamed.output_column = "answer";
  auto renamed_builder = ExampleBuilder::Create(tok.get(), nullptr, renamed, opts);
  ASSERT_THAT(renamed_builder.status(), IsOk());
  auto ex = renamed_builder->Build(
      Json{{"task", "Translate to French."}, {"context", "Good morning"}, {"answer", "Bonjour"}}, "row");
  ASSERT_THAT(ex.status(), IsOk());
  EXPECT_EQ(TinyText(*tok, *ex, false), std::string(kAlpacaWithInput) + "Bonjour</s>");
}

TEST(DataExamplesTest, AlpacaRowsAsChatMessages) {
  ScratchDir dir;
  auto tok = LoadTinyTokenizer(dir);
  ASSERT_NE(tok, nullptr);
  auto chat = LoadChatFormat(dir.path());
  ASSERT_THAT(chat.status(), IsOk());
  EXPECT_THAT(ExampleBuilder::Create(tok.get(), nullptr, AlpacaPrompt(true), {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has no chat_template")));
  auto alpaca = ExampleBuilder::Create(tok.get(), &*chat, AlpacaPrompt(true), {});
  auto messages = ExampleBuilder::Create(tok.get(), &*chat, ChatPrompt(), {});
  ASSERT_THAT(alpaca.status(), IsOk());
  ASSERT_THAT(messages.status(), IsOk());
  auto ex = alpaca->Build(Json{{"instruction", "Translate."}, {"input", "Hi"}, {"output", "Salut"}}, "row");
  auto want = messages->Build(Json{{"messages", Json::parse(R"([{"role": "user", "content": "Translate.\n\nHi"},
                                                               {"role": "assistant", "content": "Salut"}])")}},
                              "row");
  ASSERT_THAT(ex.status(), IsOk());
  ASSERT_THAT(want.status(), IsOk());
  EXPECT_EQ(ex->input_ids, want->input_ids);
  EXPECT_EQ(ex->labels, want->labels);
  EXPECT_EQ(TinyText(*tok, *ex, false), "<user>\nTranslate.\n\nHi</s>\n<assistant>\nSalut</s>\n");
  EXPECT_EQ(TinyText(*tok, *ex, true), "Salut</s>\n");
  auto no_input = alpaca->Build(Json{{"instruction", "Wave."}, {"input", ""}, {"output", "Hi"}}, "row");
  ASSERT_THAT(no_input.status(), IsOk());
  EXPECT_EQ(TinyText(*tok, *no_input, false), "<user>\nWave.</s>\n<assistant>\nHi</s>\n");
}

TEST(DataExamplesTest, AlpacaErrorsNameTheFileRowAndColumn) {
  ScratchDir dir;
  auto tok = LoadTinyTokenizer(dir);
  ASSERT_NE(tok, nullptr);
  auto builder = ExampleBuilder::Create(tok.get(), nullptr, AlpacaPrompt(false), {});
  ASSERT_THAT(builder.status(), IsOk());
  const std::vector<std::string> labels = {"data/train-00000.parquet row 1", "data/train-00000.parquet row 2"};
  const Json good = {{"instruction", "a"}, {"output", "b"}};
  EXPECT_THAT(builder->BuildAll({good, Json{{"instruction", "a"}}}, "train", labels),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("data/train-00000.parquet row 2 has no column 'output', the prompt's "
                                 "alpaca.output_column")));
  EXPECT_THAT(builder->BuildAll({good, Json{{"instruction", 7}, {"output", "b"}}}, "train", labels),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("data/train-00000.parquet row 2: column 'instruction' (alpaca.instruction_column) "
                                 "must be a string, not 7")));
  EXPECT_THAT(builder->BuildAll({good, Json{{"instruction", "a"}, {"input", nullptr}, {"output", nullptr}}}, "train",
                                labels),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("data/train-00000.parquet row 2 has a null 'output'")));
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
