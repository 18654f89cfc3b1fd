// Reading a Prometheus /metrics endpoint in tests.
#include "tests/metadata/support/metrics_scrape.h"

#include <httplib.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace tuneforge::testing {

std::string ScrapeMetrics(int port) {
  httplib::Client client("127.0.0.1", port);
  httplib::Result response = client.Get("/metrics");
  EXPECT_TRUE(response) << "no answer from /metrics on port " << port;
  if (!response) return "";
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  return response->body;
}

double MetricValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::strtod(std::string(line.substr(series.size() + 1)).c_str(), nullptr);
    }
  }
  return NAN;
}

void ExpectMetricValues(const std::string& text, const std::vector<std::pair<std::string, double>>& expected) {
  for (const auto& [series, value] : expected) {
    EXPECT_EQ(MetricValue(text, series), value) << series << "\n" << text;
  }
}

}  // namespace tuneforge::testing
