// Prompts end to end: templates checked against dataset features, revisions of named prompts, over real gRPC and
// a real PostgreSQL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/metadata/support/metadata_test_env.h"

namespace tuneforge::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string QaRows(int count) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    out += nlohmann::ordered_json{{"question", "q" + std::to_string(i)}, {"context", "c"}, {"answer", "a"}}.dump() +
           "\n";
  }
  return out;
}

std::string ChatRows(int count) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    nlohmann::json messages = nlohmann::json::array({{{"role", "user"}, {"content", "hi " + std::to_string(i)}},
                                                     {{"role", "assistant"}, {"content", "hello"}}});
    out += nlohmann::ordered_json{{"messages", messages}, {"text", "plain"}}.dump() + "\n";
  }
  return out;
}

class PromptsTest : public ::testing::Test {
 protected:
  v1::AddDatasetResponse AddDataset(const std::string& name, const std::string& file, const std::string& content) {
    v1::AddDatasetRequest request;
    request.set_name(name);
    request.mutable_local()->set_train_path(env_.WriteFile(file, content));
    v1::AddDatasetResponse response;
    grpc::Status status = env_.datasets()->AddDataset(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  v1::AddPromptRequest Template(const std::string& name, const std::string& dataset, const std::string& input,
                                const std::string& completion) {
    v1::AddPromptRequest r;
    r.set_name(name);
    r.set_dataset(dataset);
    r.mutable_template_()->set_input_template(input);
    r.mutable_template_()->set_completion_template(completion);
    return r;
  }
  v1::AddPromptRequest Chat(const std::string& name, const std::string& dataset, const std::string& column) {
    v1::AddPromptRequest r;
    r.set_name(name);
    r.set_dataset(dataset);
    r.mutable_chat()->set_messages_column(column);
    return r;
  }
  grpc::Status Add(const v1::AddPromptRequest& request, v1::AddPromptResponse* response) {
    return env_.prompts()->AddPrompt(Context().get(), request, response);
  }
  v1::AddPromptResponse MustAdd(const v1::AddPromptRequest& request) {
    v1::AddPromptResponse response;
    grpc::Status status = Add(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  void ExpectError(const v1::AddPromptRequest& request, grpc::StatusCode code, const std::string& fragment) {
    v1::AddPromptResponse response;
    grpc::Status status = Add(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(fragment));
  }
  grpc::Status Get(const std::string& ref, v1::GetPromptResponse* response) {
    v1::GetPromptRequest request;
    request.set_prompt(ref);
    return env_.prompts()->GetPrompt(Context().get(), request, response);
  }
  int Count(const std::string& table) {
    pqxx::connection conn(env_.database_url());
    pqxx::work tx(conn);
    return tx.exec("SELECT count(*) FROM " + table)[0][0].as<int>();
  }

  MetadataTestEnv env_;
};

TEST_F(PromptsTest, TemplatePromptRecordsItsSlotsAndTheLatestDatasetRevision) {
  v1::AddDatasetResponse dataset = AddDataset("qa", "qa.jsonl", QaRows(10));
  v1::AddPromptRequest request =
      Template("qa-prompt", "qa", "### Context: {context}\n### Question: {question} {{not a slot}}\n### Answer:\n",
               "{answer}");
  request.set_description("question answering");
  v1::AddPromptResponse added = MustAdd(request);
  EXPECT_EQ(added.outcome(), v1::ADD_OUTCOME_CREATED);
  const v1::Prompt& p = added.prompt();
  EXPECT_EQ(p.id().size(), 36u);
  EXPECT_EQ(p.name(), "qa-prompt");
  EXPECT_EQ(p.description(), "question answering");
  EXPECT_EQ(p.revision_number(), 1);
  EXPECT_EQ(p.mode(), v1::PROMPT_MODE_TEMPLATE);
  EXPECT_EQ(p.dataset_id(), dataset.dataset().id());
  EXPECT_EQ(p.dataset_revision_id(), dataset.revision().id());
  EXPECT_EQ(p.input_template(), request.template_().input_template());
  EXPECT_EQ(p.completion_template(), "{answer}");
  EXPECT_EQ(p.messages_column(), "");
  EXPECT_THAT(p.slots(), ElementsAre("context", "question", "answer"));
  EXPECT_EQ(p.fingerprint().size(), 64u);
  EXPECT_GT(p.create_time().seconds(), 1700000000);

  // By id of the dataset works as well as by name, and gives the same prompt.
  v1::AddPromptResponse again = MustAdd(Template("qa-prompt", dataset.dataset().id(),
                                                 request.template_().input_template(), "{answer}"));
  EXPECT_EQ(again.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(again.prompt().id(), p.id());
  EXPECT_EQ(Count("prompts"), 1);
}

TEST_F(PromptsTest, ChangedContentGivesRevisionsAndGetReturnsTheLatestByNameOrARevisionById) {
  AddDataset("qa", "qa.jsonl", QaRows(10));
  v1::AddPromptResponse first = MustAdd(Template("p", "qa", "Q: {question}\n", "{answer}"));
  v1::AddPromptResponse second = MustAdd(Template("p", "qa", "Question: {question}\nAnswer: ", "{answer}"));
  EXPECT_EQ(second.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_EQ(second.prompt().revision_number(), 2);
  EXPECT_NE(second.prompt().id(), first.prompt().id());
  EXPECT_NE(second.prompt().fingerprint(), first.prompt().fingerprint());

  // Moving text between the two templates is other content.
  v1::AddPromptResponse third_ok = MustAdd(Template("p", "qa", "Q: ", "{question}\n{answer}"));
  EXPECT_EQ(third_ok.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_EQ(third_ok.prompt().revision_number(), 3);

  v1::AddPromptResponse back = MustAdd(Template("p", "qa", "Q: {question}\n", "{answer}"));
  EXPECT_EQ(back.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(back.prompt().id(), first.prompt().id());
  EXPECT_EQ(back.prompt().revision_number(), 1);

  v1::GetPromptResponse got;
  ASSERT_TRUE(Get("p", &got).ok());
  EXPECT_EQ(got.prompt().id(), third_ok.prompt().id());
  EXPECT_EQ(got.prompt().revision_number(), 3);
  ASSERT_TRUE(Get(first.prompt().id(), &got).ok());
  EXPECT_EQ(got.prompt().revision_number(), 1);
  EXPECT_EQ(got.prompt().input_template(), "Q: {question}\n");

  struct Case {
    std::string ref;
    grpc::StatusCode code;
    std::string fragment;
  };
  for (const Case& c : {Case{"", grpc::StatusCode::INVALID_ARGUMENT, "prompt is required"},
                        Case{"00000000-0000-0000-0000-000000000000", grpc::StatusCode::NOT_FOUND, "ListPrompts"},
                        Case{"nope", grpc::StatusCode::NOT_FOUND, "prompt 'nope' not found"},
                        Case{"bad ref!", grpc::StatusCode::INVALID_ARGUMENT, "takes an id or a name"}}) {
    grpc::Status status = Get(c.ref, &got);
    EXPECT_EQ(status.error_code(), c.code) << c.ref;
    EXPECT_THAT(status.error_message(), HasSubstr(c.fragment)) << c.ref;
  }
}

TEST_F(PromptsTest, DatasetRevisionIdPicksAnOlderRevisionAndMustBelongToTheDataset) {
  v1::AddDatasetResponse r1 = AddDataset("qa", "qa.jsonl", QaRows(10));
  // Revision 2 drops the context column.
  std::string rows;
  for (int i = 0; i < 10; ++i) rows += nlohmann::ordered_json{{"question", "q"}, {"answer", "a"}}.dump() + "\n";
  v1::AddDatasetResponse r2 = AddDataset("qa", "qa.jsonl", rows);
  ASSERT_EQ(r2.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  v1::AddDatasetResponse other = AddDataset("other", "other.jsonl", QaRows(5));

  ExpectError(Template("p", "qa", "{context}", "{answer}"), grpc::StatusCode::INVALID_ARGUMENT,
              "slot {context} is not a column of dataset 'qa' (revision 2); available columns: question, answer");
  v1::AddPromptRequest pinned = Template("p", "qa", "{context}", "{answer}");
  pinned.set_dataset_revision_id(r1.revision().id());
  v1::AddPromptResponse added = MustAdd(pinned);
  EXPECT_EQ(added.prompt().dataset_revision_id(), r1.revision().id());
  EXPECT_EQ(added.prompt().dataset_id(), r1.dataset().id());

  // The same templates over another revision are another revision of the prompt.
  v1::AddPromptRequest latest = Template("p", "qa", "{question}", "{answer}");
  v1::AddPromptResponse over_r2 = MustAdd(latest);
  latest.set_dataset_revision_id(r1.revision().id());
  v1::AddPromptResponse over_r1 = MustAdd(latest);
  EXPECT_EQ(over_r1.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_NE(over_r1.prompt().fingerprint(), over_r2.prompt().fingerprint());

  v1::AddPromptRequest foreign = Template("p", "qa", "{question}", "{answer}");
  foreign.set_dataset_revision_id(other.revision().id());
  ExpectError(foreign, grpc::StatusCode::NOT_FOUND, "is not a revision of dataset 'qa'");
  foreign.set_dataset_revision_id("00000000-0000-0000-0000-000000000000");
  ExpectError(foreign, grpc::StatusCode::NOT_FOUND, "ListDatasetRevisions");
  foreign.set_dataset_revision_id("revision-2");
  ExpectError(foreign, grpc::StatusCode::INVALID_ARGUMENT, "dataset_revision_id");
}

TEST_F(PromptsTest, TemplateErrorsNameTheFieldTheOffsetAndTheColumns) {
  AddDataset("qa", "qa.jsonl", QaRows(10));
  ExpectError(Template("p", "qa", "Q: {question", "{answer}"), grpc::StatusCode::INVALID_ARGUMENT,
              "template.input_template: unbalanced '{' at byte offset 3");
  ExpectError(Template("p", "qa", "Q: {question}", "{answer}}"), grpc::StatusCode::INVALID_ARGUMENT,
              "template.completion_template: unbalanced '}' at byte offset 8");
  ExpectError(Template("p", "qa", "a } b", "{answer}"), grpc::StatusCode::INVALID_ARGUMENT, "byte offset 2");
  ExpectError(Template("p", "qa", "{ques{tion}", "{answer}"), grpc::StatusCode::INVALID_ARGUMENT,
              "unbalanced '{' at byte offset 0");
  ExpectError(Template("p", "qa", "Q: {}", "{answer}"), grpc::StatusCode::INVALID_ARGUMENT,
              "empty slot '{}' at byte offset 3");
  ExpectError(Template("p", "qa", "Q: {questoin}", "{answer}"), grpc::StatusCode::INVALID_ARGUMENT,
              "template.input_template: slot {questoin} is not a column of dataset 'qa' (revision 1); available "
              "columns: question, context, answer");
  ExpectError(Template("p", "qa", "Q: {question}", "{solution}"), grpc::StatusCode::INVALID_ARGUMENT,
              "template.completion_template: slot {solution}");
  ExpectError(Template("p", "qa", "Q: {question}", ""), grpc::StatusCode::INVALID_ARGUMENT,
              "template.completion_template is required");
  ExpectError(Template("p", "qa", std::string(64 * 1024 + 1, 'x'), "{answer}"), grpc::StatusCode::INVALID_ARGUMENT,
              "template.input_template is 65537 bytes long; the limit is 65536");
  ExpectError(Template("p", "qa", "ok", std::string("{answer}\0", 9)), grpc::StatusCode::INVALID_ARGUMENT,
              "template.completion_template contains a NUL character");
  v1::AddPromptRequest no_format;
  no_format.set_name("p");
  no_format.set_dataset("qa");
  ExpectError(no_format, grpc::StatusCode::INVALID_ARGUMENT, "format is required");
  ExpectError(Template("p", "missing", "{question}", "{answer}"), grpc::StatusCode::NOT_FOUND,
              "dataset 'missing' not found");
  ExpectError(Template("p", "", "{question}", "{answer}"), grpc::StatusCode::INVALID_ARGUMENT, "dataset is required");
  ExpectError(Template("p", "bad name!", "{question}", "{answer}"), grpc::StatusCode::INVALID_ARGUMENT,
              "takes an id or a name");
  ExpectError(Template("", "qa", "{question}", "{answer}"), grpc::StatusCode::INVALID_ARGUMENT, "name is required");
  ExpectError(Template("x'; DROP TABLE prompts;--", "qa", "{question}", "{answer}"),
              grpc::StatusCode::INVALID_ARGUMENT, "not allowed");
  v1::AddPromptRequest long_description = Template("p", "qa", "{question}", "{answer}");
  long_description.set_description(std::string(5000, 'd'));
  ExpectError(long_description, grpc::StatusCode::INVALID_ARGUMENT, "description");
  EXPECT_EQ(Count("prompts"), 0) << "a failed add must leave nothing behind";

  // The largest template allowed, and SQL metacharacters, are stored and returned verbatim.
  const std::string tricky = "it's \"{question}\"; DROP TABLE prompts; -- \\ %_ ünïcödé {{x}}";
  v1::AddPromptResponse added = MustAdd(Template("tricky", "qa", tricky, "{answer}"));
  EXPECT_THAT(added.prompt().slots(), ElementsAre("question", "answer"));
  v1::GetPromptResponse got;
  ASSERT_TRUE(Get("tricky", &got).ok());
  EXPECT_EQ(got.prompt().input_template(), tricky);
  const std::string largest = std::string(64 * 1024 - 8, 'x') + "{answer}";
  EXPECT_EQ(MustAdd(Template("largest", "qa", largest, "{answer}")).prompt().input_template().size(), 64u * 1024);
}

TEST_F(PromptsTest, ChatPromptNeedsAListColumn) {
  v1::AddDatasetResponse chat = AddDataset("chat", "chat.jsonl", ChatRows(10));
  v1::AddPromptResponse added = MustAdd(Chat("chat-prompt", "chat", "messages"));
  EXPECT_EQ(added.outcome(), v1::ADD_OUTCOME_CREATED);
  EXPECT_EQ(added.prompt().mode(), v1::PROMPT_MODE_CHAT);
  EXPECT_EQ(added.prompt().messages_column(), "messages");
  EXPECT_EQ(added.prompt().input_template(), "");
  EXPECT_THAT(added.prompt().slots(), ElementsAre("messages"));
  EXPECT_EQ(added.prompt().dataset_revision_id(), chat.revision().id());
  EXPECT_EQ(MustAdd(Chat("chat-prompt", "chat", "messages")).outcome(), v1::ADD_OUTCOME_EXISTING);

  // A column whose values are sometimes lists (mixed) may hold messages too.
  std::string mixed_rows = ChatRows(3) + "{\"messages\": \"oops\", \"text\": \"plain\"}\n";
  AddDataset("mixed", "mixed.jsonl", mixed_rows);
  EXPECT_EQ(MustAdd(Chat("mixed-prompt", "mixed", "messages")).outcome(), v1::ADD_OUTCOME_CREATED);

  ExpectError(Chat("p", "chat", "text"), grpc::StatusCode::INVALID_ARGUMENT,
              "chat.messages_column: column 'text' of dataset 'chat' (revision 1) holds string values");
  ExpectError(Chat("p", "chat", "msgs"), grpc::StatusCode::INVALID_ARGUMENT,
              "chat.messages_column: 'msgs' is not a column of dataset 'chat' (revision 1); available columns: "
              "messages, text");
  ExpectError(Chat("p", "chat", ""), grpc::StatusCode::INVALID_ARGUMENT, "chat.messages_column is required");

  // Switching a name from template to chat is a new revision of it.
  AddDataset("qa", "qa.jsonl", QaRows(4));
  MustAdd(Template("switch", "qa", "{question}", "{answer}"));
  v1::AddPromptResponse switched = MustAdd(Chat("switch", "chat", "messages"));
  EXPECT_EQ(switched.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_EQ(switched.prompt().revision_number(), 2);
  EXPECT_EQ(switched.prompt().dataset_id(), chat.dataset().id());
}

TEST_F(PromptsTest, ChatPromptMessageFormats) {
  std::string rows;
  for (int i = 0; i < 4; ++i) {
    nlohmann::json turns = nlohmann::json::array({{{"from", "human"}, {"value", "hi " + std::to_string(i)}},
                                                  {{"from", "gpt"}, {"value", "hello"}}});
    rows += nlohmann::ordered_json{{"conversations", turns}, {"id", i}}.dump() + "\n";
  }
  AddDataset("sharegpt", "sharegpt.jsonl", rows);
  v1::AddPromptResponse openai = MustAdd(Chat("sg", "sharegpt", "conversations"));
  EXPECT_EQ(openai.prompt().message_format(), "openai");
  v1::AddPromptRequest request = Chat("sg", "sharegpt", "conversations");
  request.mutable_chat()->set_message_format("sharegpt");
  v1::AddPromptResponse sharegpt = MustAdd(request);
  // The format is part of the prompt's content: changing it is a new revision.
  EXPECT_EQ(sharegpt.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_EQ(sharegpt.prompt().message_format(), "sharegpt");
  EXPECT_NE(sharegpt.prompt().fingerprint(), openai.prompt().fingerprint());
  EXPECT_EQ(MustAdd(request).outcome(), v1::ADD_OUTCOME_EXISTING);
  v1::GetPromptResponse got;
  ASSERT_TRUE(Get("sg", &got).ok());
  EXPECT_EQ(got.prompt().message_format(), "sharegpt");
  request.mutable_chat()->set_message_format("xml");
  ExpectError(request, grpc::StatusCode::INVALID_ARGUMENT,
              "chat.message_format is 'xml'; set \"openai\" ({\"role\", \"content\"} messages) or \"sharegpt\"");
}

v1::AddPromptRequest Alpaca(const std::string& name, const std::string& dataset) {
  v1::AddPromptRequest r;
  r.set_name(name);
  r.set_dataset(dataset);
  r.mutable_alpaca();
  return r;
}

TEST_F(PromptsTest, AlpacaPromptChecksItsColumns) {
  std::string rows, no_input_rows;
  for (int i = 0; i < 4; ++i) {
    rows += nlohmann::ordered_json{{"instruction", "do " + std::to_string(i)}, {"input", i % 2 ? "x" : ""},
                                   {"output", "done"}, {"n", i}}
                .dump() +
            "\n";
    no_input_rows += nlohmann::ordered_json{{"instruction", "do"}, {"output", "done"}}.dump() + "\n";
  }
  AddDataset("alpaca", "alpaca.jsonl", rows);
  AddDataset("no-input", "no_input.jsonl", no_input_rows);

  v1::AddPromptResponse added = MustAdd(Alpaca("al", "alpaca"));
  EXPECT_EQ(added.outcome(), v1::ADD_OUTCOME_CREATED);
  EXPECT_EQ(added.prompt().mode(), v1::PROMPT_MODE_ALPACA);
  EXPECT_EQ(added.prompt().instruction_column(), "instruction");
  EXPECT_EQ(added.prompt().input_column(), "input");
  EXPECT_EQ(added.prompt().output_column(), "output");
  EXPECT_FALSE(added.prompt().use_chat_template());
  EXPECT_THAT(added.prompt().slots(), ElementsAre("instruction", "input", "output"));
  EXPECT_EQ(MustAdd(Alpaca("al", "alpaca")).outcome(), v1::ADD_OUTCOME_EXISTING);
  v1::AddPromptRequest chat = Alpaca("al", "alpaca");
  chat.mutable_alpaca()->set_use_chat_template(true);
  v1::AddPromptResponse as_chat = MustAdd(chat);
  EXPECT_EQ(as_chat.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_TRUE(as_chat.prompt().use_chat_template());
  v1::GetPromptResponse got;
  ASSERT_TRUE(Get("al", &got).ok());
  EXPECT_EQ(got.prompt().mode(), v1::PROMPT_MODE_ALPACA);
  EXPECT_TRUE(got.prompt().use_chat_template());

  // Without an input column every row has no input, unless the prompt names one.
  v1::AddPromptResponse no_input = MustAdd(Alpaca("al-no-input", "no-input"));
  EXPECT_THAT(no_input.prompt().slots(), ElementsAre("instruction", "output"));
  v1::AddPromptRequest named = Alpaca("p", "no-input");
  named.mutable_alpaca()->set_input_column("context");
  ExpectError(named, grpc::StatusCode::INVALID_ARGUMENT,
              "alpaca.input_column: 'context' is not a column of dataset 'no-input' (revision 1); available columns: "
              "instruction, output. Set alpaca.input_column (--alpaca-input) to the column to use");
  v1::AddPromptRequest numbers = Alpaca("p", "alpaca");
  numbers.mutable_alpaca()->set_output_column("n");
  ExpectError(numbers, grpc::StatusCode::INVALID_ARGUMENT,
              "alpaca.output_column: column 'n' of dataset 'alpaca' (revision 1) holds int values; an alpaca column "
              "holds text. Set alpaca.output_column (--alpaca-output) to a text column");
  v1::AddPromptRequest same = Alpaca("p", "alpaca");
  same.mutable_alpaca()->set_output_column("instruction");
  ExpectError(same, grpc::StatusCode::INVALID_ARGUMENT,
              "alpaca.output_column 'instruction' is also the instruction or input column");
}

TEST_F(PromptsTest, HubDatasetsWithUnknownFeaturesAcceptAnySlot) {
  env_.hub().AddCommit(RepoKind::kDataset, "org/qa", {{"data/train.jsonl", QaRows(4)}});
  v1::AddDatasetRequest request;
  request.set_name("hub-qa");
  request.mutable_huggingface()->set_repo_id("org/qa");
  v1::AddDatasetResponse dataset;
  ASSERT_TRUE(env_.datasets()->AddDataset(Context().get(), request, &dataset).ok());
  ASSERT_EQ(dataset.revision().features_size(), 0);

  v1::AddPromptResponse added = MustAdd(Template("hub-prompt", "hub-qa", "{anything}", "{goes}"));
  EXPECT_THAT(added.prompt().slots(), ElementsAre("anything", "goes"));
  EXPECT_EQ(MustAdd(Chat("hub-chat", "hub-qa", "conversations")).outcome(), v1::ADD_OUTCOME_CREATED);
  // Template syntax is still checked.
  ExpectError(Template("hub-bad", "hub-qa", "{open", "{goes}"), grpc::StatusCode::INVALID_ARGUMENT,
              "unbalanced '{' at byte offset 0");
}

TEST_F(PromptsTest, ListShowsTheLatestRevisionOfEachNamePagedWithFilters) {
  v1::AddDatasetResponse qa = AddDataset("qa", "qa.jsonl", QaRows(10));
  AddDataset("chat", "chat.jsonl", ChatRows(10));
  for (int i = 0; i < 7; ++i) MustAdd(Template("prompt-" + std::to_string(i), "qa", "{question}", "{answer}"));
  MustAdd(Template("prompt-3", "qa", "Q: {question}", "{answer}"));  // revision 2
  MustAdd(Chat("chat-1", "chat", "messages"));
  // prompt-5's latest revision moves to the chat dataset.
  MustAdd(Chat("prompt-5", "chat", "messages"));

  std::vector<std::string> names;
  std::string token;
  int pages = 0;
  do {
    v1::ListPromptsRequest request;
    request.set_page_size(3);
    request.set_page_token(token);
    request.set_name_prefix("prompt-");
    v1::ListPromptsResponse response;
    grpc::Status status = env_.prompts()->ListPrompts(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(response.prompts_size(), 3);
    for (const auto& p : response.prompts()) {
      names.push_back(p.name() + "@" + std::to_string(p.revision_number()));
      if (p.name() == "prompt-3") {
        EXPECT_EQ(p.input_template(), "Q: {question}");
      }
    }
    token = response.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(names, ElementsAre("prompt-0@1", "prompt-1@1", "prompt-2@1", "prompt-3@2", "prompt-4@1", "prompt-5@2",
                                 "prompt-6@1"));

  auto list_names = [&](const v1::ListPromptsRequest& request) {
    v1::ListPromptsResponse response;
    grpc::Status status = env_.prompts()->ListPrompts(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> out;
    for (const auto& p : response.prompts()) out.push_back(p.name());
    return out;
  };
  v1::ListPromptsRequest by_chat;
  by_chat.set_dataset("chat");
  EXPECT_THAT(list_names(by_chat), ElementsAre("chat-1", "prompt-5"));
  v1::ListPromptsRequest by_qa_id;
  by_qa_id.set_dataset(qa.dataset().id());
  by_qa_id.set_name_prefix("prompt-");
  by_qa_id.set_page_size(4);
  EXPECT_THAT(list_names(by_qa_id), ElementsAre("prompt-0", "prompt-1", "prompt-2", "prompt-3"));
  EXPECT_EQ(list_names(v1::ListPromptsRequest()).size(), 8u);

  struct Bad {
    v1::ListPromptsRequest request;
    grpc::StatusCode code;
    std::string fragment;
  };
  std::vector<Bad> bad(4);
  bad[0].request.set_page_size(1001);
  bad[0].code = grpc::StatusCode::INVALID_ARGUMENT;
  bad[0].fragment = "page_size";
  bad[1].request.set_page_token("garbage!");
  bad[1].code = grpc::StatusCode::INVALID_ARGUMENT;
  bad[1].fragment = "page_token";
  bad[2].request.set_dataset("missing");
  bad[2].code = grpc::StatusCode::NOT_FOUND;
  bad[2].fragment = "dataset 'missing' not found";
  bad[3].request.set_dataset("no such!");
  bad[3].code = grpc::StatusCode::INVALID_ARGUMENT;
  bad[3].fragment = "dataset";
  for (const Bad& b : bad) {
    v1::ListPromptsResponse response;
    grpc::Status status = env_.prompts()->ListPrompts(Context().get(), b.request, &response);
    EXPECT_EQ(status.error_code(), b.code) << b.fragment;
    EXPECT_THAT(status.error_message(), HasSubstr(b.fragment));
  }
}

TEST_F(PromptsTest, RemoveDeletesEveryRevisionByNameOrByAnyRevisionId) {
  AddDataset("qa", "qa.jsonl", QaRows(10));
  v1::AddPromptResponse first = MustAdd(Template("p", "qa", "{question}", "{answer}"));
  MustAdd(Template("p", "qa", "Q: {question}", "{answer}"));
  MustAdd(Template("keep", "qa", "{question}", "{answer}"));
  ASSERT_EQ(Count("prompts"), 3);

  v1::RemovePromptRequest remove;
  remove.set_prompt(first.prompt().id());  // the older revision's id removes the whole prompt
  v1::RemovePromptResponse removed;
  grpc::Status status = env_.prompts()->RemovePrompt(Context().get(), remove, &removed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(removed.removed_dependents_size(), 0);
  EXPECT_EQ(Count("prompts"), 1);
  v1::GetPromptResponse got;
  EXPECT_EQ(Get("p", &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(env_.prompts()->RemovePrompt(Context().get(), remove, &removed).error_code(), grpc::StatusCode::NOT_FOUND);

  remove.set_prompt("keep");
  remove.set_force(true);
  ASSERT_TRUE(env_.prompts()->RemovePrompt(Context().get(), remove, &removed).ok());
  EXPECT_EQ(Count("prompts"), 0);
  remove.set_prompt("");
  status = env_.prompts()->RemovePrompt(Context().get(), remove, &removed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("prompt is required"));

  // A removed name starts again at revision 1.
  EXPECT_EQ(MustAdd(Template("p", "qa", "{question}", "{answer}")).prompt().revision_number(), 1);
}

}  // namespace
}  // namespace tuneforge::testing
