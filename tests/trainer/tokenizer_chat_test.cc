// Checks chat-template rendering against reference renders (shared testdata tokenizers/chat_cases.jsonl,
// made with @huggingface/jinja and Jinja2; skipped when ../shared/testdata is not beside the clone) and the token ids
// of the rendered text, plus template features and error cases.
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "services/trainer/tokenizer/chat_template.h"
#include "services/trainer/tokenizer/tokenizer.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;
using OJson = nlohmann::ordered_json;

std::string TokenizerDir() { return ::tuneforge::testing::SharedTestdata() + "/tokenizers"; }

TEST(ChatTemplateTest, ReferenceCases) {
  TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA();
  std::ifstream in(TokenizerDir() + "/chat_cases.jsonl");
  ASSERT_TRUE(in.good());
  std::map<std::string, std::unique_ptr<Tokenizer>> toks;
  std::map<std::string, ChatFormat> formats;
  std::map<std::string, std::pair<int, int>> counts;  // passed, total
  std::string line;
  int total = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    OJson c = OJson::parse(line);
    const std::string name = c["tokenizer"].get<std::string>();
    const std::string label = name + "/" + c["conversation"].get<std::string>() +
                              (c["add_generation_prompt"].get<bool>() ? "+gen" : "");
    SCOPED_TRACE(label);
    ++total;
    ++counts[name].second;
    if (!formats.count(name)) {
      auto format = LoadChatFormat(TokenizerDir() + "/" + name);
      ASSERT_THAT(format.status(), IsOk());
      formats.emplace(name, *format);
      auto tok = Tokenizer::FromFile(TokenizerDir() + "/" + name + "/tokenizer.json");
      ASSERT_THAT(tok.status(), IsOk());
      toks[name] = std::move(tok).value();
      // The config's tokens are what the reference passed.
    }
    const ChatFormat& format = formats.at(name);
    for (const char* field : {"bos_token", "eos_token"}) {
      const std::optional<std::string>& have = std::string(field) == "bos_token" ? format.config.bos_token
                                                                                 : format.config.eos_token;
      if (c[field].is_null()) {
        EXPECT_FALSE(have.has_value()) << field;
      } else {
        EXPECT_EQ(have.value_or(""), c[field].get<std::string>()) << field;
      }
    }
    const OJson* tools = c.contains("tools") ? &c["tools"] : nullptr;
    auto r = RenderChat(format, c["messages"], c["add_generation_prompt"].get<bool>(), tools);
    bool ok = true;
    if (c["rendered"].is_null()) {
      EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::Eq(c["error"].get<std::string>())));
      ok = !r.ok() && r.status().message() == c["error"].get<std::string>();
    } else {
      EXPECT_THAT(r.status(), IsOk());
      if (!r.ok()) {
        ok = false;
      } else {
        EXPECT_EQ(*r, c["rendered"].get<std::string>());
        auto ids = toks[name]->Encode(*r, false);
        ASSERT_THAT(ids.status(), IsOk());
        std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
        EXPECT_EQ(*ids, want);
        ok = *r == c["rendered"].get<std::string>() && *ids == want;
      }
    }
    if (ok) ++counts[name].first;
  }
  EXPECT_GT(total, 0);
  for (const auto& [name, pc] : counts) std::printf("chat cases %-9s %d/%d passed\n", name.c_str(), pc.first, pc.second);
}

TEST(ChatTemplateTest, RaiseExceptionGivesTemplateMessage) {
  auto t = ChatTemplate::Parse("{% if messages|length == 0 %}{{ raise_exception('No messages given!') }}{% endif %}ok");
  ASSERT_THAT(t.status(), IsOk());
  EXPECT_THAT(t->Render(OJson{{"messages", OJson::array()}}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::Eq("No messages given!")));
  auto ok = t->Render(OJson{{"messages", OJson::array({1})}});
  ASSERT_THAT(ok.status(), IsOk());
  EXPECT_EQ(*ok, "ok");
}

TEST(ChatTemplateTest, UnsupportedConstructNamesItAndPosition) {
  EXPECT_THAT(ChatTemplate::Parse("hello\n  {% macro foo() %}x{% endmacro %}"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsupported template statement 'macro' at line 2 column 3")));
  EXPECT_THAT(ChatTemplate::Parse("{% if x %}never closed"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing {% endif %}")));
  EXPECT_THAT(ChatTemplate::Parse("{{ 'abc }}"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unclosed tag opened at line 1 column 1")));
  auto t = ChatTemplate::Parse("{{ x | wordwrap }}");
  ASSERT_THAT(t.status(), IsOk());
  EXPECT_THAT(t->Render(OJson{{"x", "a"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsupported filter 'wordwrap' at line 1 column 6")));
}

TEST(ChatTemplateTest, CoreFeatures) {
  const char* src =
      "{%- set ns = namespace(n=0) -%}\n"
      "{%- for m in messages[::-1] -%}\n"
      "  {%- set ns.n = ns.n + 1 -%}\n"
      "  {{ loop.index }}{{ m.role|upper }}{{ '!' if loop.last else ',' }}\n"
      "{%- endfor %}\n"
      "{{ ns.n ~ '|' ~ (tools | tojson) ~ '|' ~ ('a b' in 'xa by') ~ '|' ~ (undefined_var is defined) }}";
  auto t = ChatTemplate::Parse(src);
  ASSERT_THAT(t.status(), IsOk());
  OJson ctx = OJson::parse(R"({"messages":[{"role":"user"},{"role":"assistant"}],"tools":[{"b":1,"a":"é\n"}]})");
  auto r = t->Render(ctx);
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(*r, "1ASSISTANT,2USER!2|[{\"b\": 1, \"a\": \"é\\n\"}]|True|False");
}

TEST(ChatTemplateTest, ConfigWithNamedTemplatesAndTokenObjects) {
  ::tuneforge::testing::ScratchDir dir;
  std::string path = dir.path() + "/tokenizer_config.json";
  std::ofstream(path) << R"({"chat_template":[{"name":"tool_use","template":"T"},{"name":"default","template":"D"}],
    "bos_token":{"content":"<s>","lstrip":false},"eos_token":"</s>"})";
  auto cfg = ReadChatTemplateConfig(path);
  ASSERT_THAT(cfg.status(), IsOk());
  EXPECT_EQ(cfg->chat_template, "D");
  EXPECT_EQ(cfg->bos_token.value_or("?"), "<s>");
  EXPECT_EQ(cfg->eos_token.value_or("?"), "</s>");
  // Llama 2's config, for one, names its tokens but has no template.
  std::ofstream(path) << R"({"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})";
  EXPECT_THAT(ReadChatTemplateConfig(path), StatusIs(absl::StatusCode::kNotFound, HasSubstr("has no chat_template")));
}

}  // namespace
}  // namespace tuneforge
