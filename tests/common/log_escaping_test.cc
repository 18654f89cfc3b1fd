// Log escaping: control characters in user input cannot start a new log line or reach a terminal.
#include "common/log_escaping.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

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

}  // namespace
}  // namespace tuneforge
