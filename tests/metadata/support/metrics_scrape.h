// Reading a Prometheus /metrics endpoint in tests: fetch it over HTTP, and pick one series' value out of the text.
#ifndef TUNEFORGE_TESTS_METADATA_SUPPORT_METRICS_SCRAPE_H_
#define TUNEFORGE_TESTS_METADATA_SUPPORT_METRICS_SCRAPE_H_

#include <string>
#include <utility>
#include <vector>

namespace tuneforge::testing {

// GET http://127.0.0.1:<port>/metrics. Expects 200 and the Prometheus text content type (a test failure
// otherwise); returns the body, or "" when nothing answered.
std::string ScrapeMetrics(int port);

// The value of the series written exactly as `series` (name and labels), or NaN when `text` has no such line.
double MetricValue(const std::string& text, const std::string& series);

// Expects each series in `expected` (written as for MetricValue) at exactly its value in `text`; a miss names the
// series and shows the text.
void ExpectMetricValues(const std::string& text, const std::vector<std::pair<std::string, double>>& expected);

}  // namespace tuneforge::testing

#endif  // TUNEFORGE_TESTS_METADATA_SUPPORT_METRICS_SCRAPE_H_
