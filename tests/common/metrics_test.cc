// The metrics registry read back as Prometheus would read it (names, escaped labels, cumulative buckets ending at
// +Inf, _sum and _count), and the /metrics server answered over a real socket.
#include "common/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> help, type;
  std::vector<Sample> samples;
};

// Reads the text format line by line, failing the test on any line that is not HELP, TYPE or a sample.
Exposition Parse(const std::string& text) {
  Exposition out;
  EXPECT_TRUE(text.empty() || text.back() == '\n');
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "# HELP ")) {
      const size_t space = line.find(' ');
      out.help[std::string(line.substr(0, space))] = std::string(line.substr(space + 1));
      continue;
    }
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      const size_t space = line.find(' ');
      const std::string name(line.substr(0, space));
      EXPECT_EQ(out.type.count(name), 0u) << "TYPE twice for " << name;
      out.type[name] = std::string(line.substr(space + 1));
      continue;
    }
    Sample s;
    size_t i = 0;
    while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == ':')) {
      ++i;
    }
    s.name = std::string(line.substr(0, i));
    EXPECT_FALSE(s.name.empty()) << line;
    EXPECT_FALSE(std::isdigit(static_cast<unsigned char>(s.name[0]))) << line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find("=\"", i);
        EXPECT_NE(eq, absl::string_view::npos) << line;
        if (eq == absl::string_view::npos) return out;
        const std::string label(line.substr(i, eq - i));
        std::string value;
        for (i = eq + 2; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            EXPECT_TRUE(line[i] == '\\' || line[i] == '"' || line[i] == 'n') << "bad escape in " << line;
            value.push_back(line[i] == 'n' ? '\n' : line[i]);
          } else {
            value.push_back(line[i]);
          }
        }
        ++i;  // closing quote
        if (i < line.size() && line[i] == ',') ++i;
        s.labels[label] = value;
      }
      ++i;  // '}'
    }
    EXPECT_TRUE(i < line.size() && line[i] == ' ') << line;
    const std::string value(line.substr(i + 1));
    char* end = nullptr;
    s.value = std::strtod(value.c_str(), &end);
    EXPECT_TRUE(end != nullptr && *end == '\0') << "value '" << value << "' in " << line;
    // Every sample belongs to a family whose TYPE came before it.
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (out.type.count(family) == 0 && absl::EndsWith(family, suffix)) {
        family = family.substr(0, family.size() - std::strlen(suffix));
      }
    }
    EXPECT_EQ(out.type.count(family), 1u) << "no TYPE before " << line;
    out.samples.push_back(std::move(s));
  }
  return out;
}

std::vector<Sample> Find(const Exposition& e, const std::string& name,
                         const std::map<std::string, std::string>& labels = {}) {
  std::vector<Sample> out;
  for (const Sample& s : e.samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) match = match && s.labels.count(k) && s.labels.at(k) == v;
    if (match) out.push_back(s);
  }
  return out;
}

double Value(const Exposition& e, const std::string& name, const std::map<std::string, std::string>& labels = {}) {
  const std::vector<Sample> found = Find(e, name, labels);
  EXPECT_EQ(found.size(), 1u) << name;
  return found.empty() ? NAN : found[0].value;
}

TEST(MetricsRegistryTest, RendersCountersGaugesAndHistogramsThatParseBack) {
  MetricsRegistry registry;
  CounterFamily& requests = registry.AddCounter("test_requests_total", "Requests by method\nand code \\ all.",
                                                {"method", "code"});
  GaugeFamily& temperature = registry.AddGauge("test_temperature", "A gauge without labels.");
  HistogramFamily& latency =
      registry.AddHistogram("test_latency_seconds", "Latency.", {0.01, 0.1, 1}, {"method"});
  registry.AddSampledGauge("test_sampled", "Read at scrape time.", {"state"}, [] {
    return std::vector<MetricSample>{{{"QUEUED"}, 3}, {{"RUNNING"}, 0}};
  });

  const std::string odd = "a \"quoted\" \\ back\nslash";
  requests.WithLabels({"/x.Y/Get", "OK"}).Increment();
  requests.WithLabels({"/x.Y/Get", "OK"}).Increment(2);
  requests.WithLabels({"/x.Y/Get", "NOT_FOUND"}).Increment();
  requests.WithLabels({odd, "OK"}).Increment();
  requests.WithLabels({"/x.Y/Get", "OK"}).Increment(-5);  // ignored: counters only go up
  temperature.WithLabels({}).Set(-1.5);
  Histogram& get = latency.WithLabels({"get"});
  for (double v : {0.005, 0.01, 0.05, 0.5, 0.5, 2.0, 100.0}) get.Observe(v);
  latency.WithLabels({"put"});  // created, never observed

  const std::string text = registry.Render();
  const Exposition e = Parse(text);
  EXPECT_EQ(e.type.at("test_requests_total"), "counter");
  EXPECT_EQ(e.type.at("test_temperature"), "gauge");
  EXPECT_EQ(e.type.at("test_latency_seconds"), "histogram");
  EXPECT_EQ(e.type.at("test_sampled"), "gauge");
  EXPECT_EQ(e.help.at("test_requests_total"), "Requests by method\\nand code \\\\ all.");
  EXPECT_EQ(Value(e, "test_requests_total", {{"method", "/x.Y/Get"}, {"code", "OK"}}), 3);
  EXPECT_EQ(Value(e, "test_requests_total", {{"method", "/x.Y/Get"}, {"code", "NOT_FOUND"}}), 1);
  EXPECT_EQ(Value(e, "test_requests_total", {{"method", odd}}), 1);
  EXPECT_THAT(text, HasSubstr("method=\"a \\\"quoted\\\" \\\\ back\\nslash\""));
  EXPECT_EQ(Value(e, "test_temperature"), -1.5);
  EXPECT_THAT(text, HasSubstr("\ntest_temperature -1.5\n"));
  EXPECT_EQ(Value(e, "test_sampled", {{"state", "QUEUED"}}), 3);
  EXPECT_EQ(Value(e, "test_sampled", {{"state", "RUNNING"}}), 0);

  // Buckets: ascending le ending at +Inf, cumulative counts that never fall, +Inf equal to _count.
  for (const std::string method : {"get", "put"}) {
    const std::vector<Sample> buckets = Find(e, "test_latency_seconds_bucket", {{"method", method}});
    ASSERT_EQ(buckets.size(), 4u) << method;
    EXPECT_EQ(buckets.back().labels.at("le"), "+Inf");
    for (size_t i = 1; i < buckets.size(); ++i) {
      EXPECT_LT(std::strtod(buckets[i - 1].labels.at("le").c_str(), nullptr),
                std::strtod(buckets[i].labels.at("le").c_str(), nullptr));
      EXPECT_LE(buckets[i - 1].value, buckets[i].value);
    }
    EXPECT_EQ(buckets.back().value, Value(e, "test_latency_seconds_count", {{"method", method}}));
  }
  const std::vector<Sample> get_buckets = Find(e, "test_latency_seconds_bucket", {{"method", "get"}});
  EXPECT_EQ(get_buckets[0].labels.at("le"), "0.01");
  EXPECT_EQ(get_buckets[0].value, 2);  // 0.005 and 0.01 (le is inclusive)
  EXPECT_EQ(get_buckets[1].value, 3);
  EXPECT_EQ(get_buckets[2].value, 5);
  EXPECT_EQ(get_buckets[3].value, 7);
  EXPECT_DOUBLE_EQ(Value(e, "test_latency_seconds_sum", {{"method", "get"}}), 103.065);
  EXPECT_EQ(Value(e, "test_latency_seconds_count", {{"method", "put"}}), 0);
}

TEST(MetricsRegistryTest, ASamplerThatFailsLeavesItsFamilyEmptyAndTheRestRendered) {
  MetricsRegistry registry;
  registry.AddSampledGauge("test_jobs", "From the database.", {"state"},
                           []() -> absl::StatusOr<std::vector<MetricSample>> {
                             return absl::UnavailableError("database away");
                           });
  registry.AddSampledCounter("test_expiries_total", "Kept elsewhere.", {}, [] {
    return std::vector<MetricSample>{{{}, 7}};
  });
  const Exposition e = Parse(registry.Render());
  EXPECT_EQ(e.type.at("test_jobs"), "gauge");
  EXPECT_TRUE(Find(e, "test_jobs").empty());
  EXPECT_EQ(e.type.at("test_expiries_total"), "counter");
  EXPECT_EQ(Value(e, "test_expiries_total"), 7);
}

TEST(MetricsRegistryTest, ConcurrentUpdatesAreAllCounted) {
  MetricsRegistry registry;
  CounterFamily& counter = registry.AddCounter("test_total", "Counted from many threads.", {"thread"});
  HistogramFamily& histogram = registry.AddHistogram("test_seconds", "Observed from many threads.", {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        counter.WithLabels({t % 2 == 0 ? "even" : "odd"}).Increment();
        histogram.WithLabels({}).Observe(i % 2 == 0 ? 0.5 : 2);
        if (i % 1000 == 0) (void)registry.Render();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const Exposition e = Parse(registry.Render());
  EXPECT_EQ(Value(e, "test_total", {{"thread", "even"}}), 40000);
  EXPECT_EQ(Value(e, "test_total", {{"thread", "odd"}}), 40000);
  EXPECT_EQ(Value(e, "test_seconds_bucket", {{"le", "1"}}), 40000);
  EXPECT_EQ(Value(e, "test_seconds_count"), 80000);
  EXPECT_EQ(Value(e, "test_seconds_sum"), 100000);
}

TEST(MetricsRegistryTest, ListenHostIsTheAddressWithoutItsPort) {
  EXPECT_EQ(ListenHost("127.0.0.1:50051"), "127.0.0.1");
  EXPECT_EQ(ListenHost("0.0.0.0:0"), "0.0.0.0");
  EXPECT_EQ(ListenHost("[::1]:50051"), "[::1]");
  EXPECT_EQ(ListenHost("[::]"), "[::]");
  EXPECT_EQ(ListenHost("localhost"), "localhost");
}

// Sends `request` to 127.0.0.1:port and returns everything the server wrote before closing.
std::string Exchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect failed";
  }
  (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) response.append(buf, static_cast<size_t>(n));
  close(fd);
  return response;
}

TEST(MetricsHttpServerTest, ServesMetricsAndRefusesEverythingElse) {
  MetricsRegistry registry;
  registry.AddCounter("test_scrapes_total", "A counter.", {"path"}).WithLabels({"/metrics"}).Increment(4);
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server = MetricsHttpServer::Start("127.0.0.1", 0, registry);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  std::string response = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(response, HasSubstr("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  const std::string body = registry.Render();
  EXPECT_THAT(response, HasSubstr(absl::StrCat("\r\nContent-Length: ", body.size(), "\r\n")));
  ASSERT_NE(response.find("\r\n\r\n"), std::string::npos);
  EXPECT_EQ(response.substr(response.find("\r\n\r\n") + 4), body);
  EXPECT_EQ(Value(Parse(body), "test_scrapes_total", {{"path", "/metrics"}}), 4);

  // A query string is ignored; HEAD has the headers only; HTTP/1.0 and bare newlines are fine.
  EXPECT_THAT(Exchange(port, "GET /metrics?name[]=x HTTP/1.0\n\n"), StartsWith("HTTP/1.1 200 OK\r\n"));
  response = Exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(response.substr(response.find("\r\n\r\n") + 4), "");

  EXPECT_THAT(Exchange(port, "GET / HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(Exchange(port, "GET /metrics/x HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
  response = Exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(response, HasSubstr("\r\nAllow: GET, HEAD\r\n"));
  for (const std::string bad : {"hello\r\n\r\n", "GET /metrics\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
                                "GET /metrics SPDY/3\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n"}) {
    EXPECT_THAT(Exchange(port, bad), StartsWith("HTTP/1.1 400 Bad Request\r\n")) << bad;
  }
  EXPECT_THAT(Exchange(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(20000, 'a')),
              StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  // Still serving after all that.
  EXPECT_THAT(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 200 OK\r\n"));

  // A second server cannot take the same port.
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> clash = MetricsHttpServer::Start("127.0.0.1", port, registry);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(clash.status().message(), HasSubstr(absl::StrCat("cannot serve metrics on 127.0.0.1:", port)));

  server->reset();
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), "connect failed");
}

}  // namespace
}  // namespace tuneforge
