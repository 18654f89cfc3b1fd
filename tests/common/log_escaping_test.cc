// Log escaping: control characters in user input cannot start a new log line or reach a terminal.
#include "common/log_escaping.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace tuneforge {
namespace {

TEST(EscapeLogTextTest, ControlCharactersAreEscapedAndTextIsKept) {
  EXPECT_EQ(EscapeLogText("model 'a\nrpc forged code=OK'"), "model 'a\\nrpc forged code=OK'");
  EXPECT_EQ(EscapeLogText("a\r\tb\x1b[31m\x7f"), "a\\r\\tb\\x1b[31m\\x7f");
  EXPECT_EQ(EscapeLogText(std::string("nul\0x", 5)), "nul\\x00x");
  // UTF-8 text stays; bytes that are not UTF-8, C1 controls and the Unicode line separators are escaped.
  EXPECT_EQ(EscapeLogText("r\xc3\xa9ponse \xe6\x97\xa5"), "r\xc3\xa9ponse \xe6\x97\xa5");
  EXPECT_EQ(EscapeLogText("bad\xff\xc3"), "bad\\xff\\xc3");
  EXPECT_EQ(EscapeLogText("c1\xc2\x9b" "31m ls\xe2\x80\xa8x"), "c1\\u009b31m ls\\u2028x");
  EXPECT_EQ(EscapeLogText("plain path /data/x.jsonl"), "plain path /data/x.jsonl");
}

TEST(EscapeLogTextTest, EveryLoggerWritesOneLinePerMessage) {
  auto previous = spdlog::default_logger();
  std::ostringstream out;
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(out)));
  EscapeControlCharactersInLogs();
  spdlog::info("job {}: {}", "x", "started\n[2026-01-01 00:00:00.000] [info] forged line");
  spdlog::set_default_logger(previous);
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_THAT(text, ::testing::HasSubstr("[info] job x: started\\n[2026-01-01 00:00:00.000] [info] forged line"));
}

TEST(JsonLogTest, ParseLogFormatTakesTextOrJson) {
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  const absl::StatusOr<LogFormat> bad = ParseLogFormat("JSON");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "--log-format='JSON' is not one of text, json");
}

TEST(JsonLogTest, JsonLogLineEscapesEverythingJsonNeeds) {
  const absl::Time time =
      absl::FromCivil(absl::CivilSecond(2026, 1, 2, 3, 4, 5), absl::UTCTimeZone()) + absl::Milliseconds(678);
  EXPECT_EQ(JsonLogLine(time, "info", "tuneforge", "plain"),
            R"({"time":"2026-01-02T03:04:05.678Z","level":"info","logger":"tuneforge","message":"plain"})");
  EXPECT_EQ(JsonLogLine(time, "warning", "", "a \"q\" \\ b\n\t\x01\x7f"),
            R"({"time":"2026-01-02T03:04:05.678Z","level":"warning","logger":"","message":"a \"q\" \\ b\n\t\u0001\u007f"})");
  // UTF-8 stays; C1 controls and line separators become \u escapes; bytes that are not UTF-8 the text \xNN.
  EXPECT_EQ(JsonLogLine(time, "info", "", "r\xc3\xa9 \xc2\x9b \xe2\x80\xa8 bad\xff"),
            R"({"time":"2026-01-02T03:04:05.678Z","level":"info","logger":"","message":"r)" "\xc3\xa9"
            R"( \u009b \u2028 bad\\xff"})");
}

TEST(JsonLogTest, EveryLineParsesAsJsonWithTheMessageIntact) {
  auto previous = spdlog::default_logger();
  std::ostringstream out;
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("tuneforge", std::make_shared<spdlog::sinks::ostream_sink_mt>(out)));
  EscapeControlCharactersInLogs(LogFormat::kJson);
  const std::string forged = "started\n{\"time\":\"2026-01-01T00:00:00.000Z\",\"level\":\"error\"} \"x\" \\ \x1b[31m";
  spdlog::info("job {}: {}", "x", forged);
  spdlog::warn("rpc {} code={}", "/tuneforge.v1.Models/GetModel", "NOT_FOUND");
  spdlog::error("bytes {}", "\xff\xfe and \xe6\x97\xa5");
  EscapeControlCharactersInLogs();
  spdlog::set_default_logger(previous);

  const std::string text = out.str();
  const std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << text;
  const std::regex rfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  std::vector<nlohmann::json> records;
  for (const std::string& line : lines) {
    nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(record.is_object()) << line;
    EXPECT_EQ(record.size(), 4u) << line;
    EXPECT_TRUE(std::regex_match(record.value("time", ""), rfc3339)) << line;
    EXPECT_EQ(record.value("logger", ""), "tuneforge") << line;
    records.push_back(std::move(record));
  }
  EXPECT_EQ(records[0]["level"], "info");
  EXPECT_EQ(records[0]["message"], "job x: " + forged);
  EXPECT_EQ(records[1]["level"], "warning");
  EXPECT_EQ(records[1]["message"], "rpc /tuneforge.v1.Models/GetModel code=NOT_FOUND");
  EXPECT_EQ(records[2]["level"], "error");
  EXPECT_EQ(records[2]["message"], "bytes \\xff\\xfe and \xe6\x97\xa5");
}

}  // namespace
}  // namespace tuneforge
