// Prometheus metrics: a thread-safe registry of counters, gauges and histograms with labels, rendered in the text
// exposition format 0.0.4, and a one-thread HTTP/1.1 server that answers GET /metrics with it.
#ifndef TUNEFORGE_COMMON_METRICS_H_
#define TUNEFORGE_COMMON_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace tuneforge {

class Counter {
 public:
  void Increment(double amount = 1);  // amount >= 0; a negative amount is ignored (counters only go up)
  double value() const { return value_.load(); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value); }
  void Add(double amount);
  double value() const { return value_.load(); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // bounds: the buckets' upper bounds, ascending; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Counts {
    std::vector<int64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    int64_t count = 0;
  };
  Counts counts() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<int64_t> bucket_counts_;  // not cumulative; the last one is +Inf
  double sum_ = 0;
};

// One series of a family whose values are read when it is scraped.
struct MetricSample {
  std::vector<std::string> label_values;  // in the order of the family's label names
  double value = 0;
};
// An error leaves the family without samples in that scrape (and is logged): a scrape never fails as a whole.
using MetricSampler = std::function<absl::StatusOr<std::vector<MetricSample>>()>;

// Families of series that share a name, help and label names. WithLabels takes the label values in the order of the
// label names and returns the same series for the same values, created at zero on first use; the references stay
// valid as long as the registry.
class CounterFamily {
 public:
  Counter& WithLabels(const std::vector<std::string>& label_values);

 private:
  friend class MetricsRegistry;
  size_t label_count_ = 0;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Counter>> series_;
};

class GaugeFamily {
 public:
  Gauge& WithLabels(const std::vector<std::string>& label_values);

 private:
  friend class MetricsRegistry;
  size_t label_count_ = 0;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Gauge>> series_;
};

class HistogramFamily {
 public:
  Histogram& WithLabels(const std::vector<std::string>& label_values);

 private:
  friend class MetricsRegistry;
  size_t label_count_ = 0;
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Histogram>> series_;
};

// Bucket bounds in seconds for request and step durations: 1 ms to 60 s.
std::vector<double> DurationBuckets();

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();

  // Names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__"; a bad name,
  // a name used twice, or bounds that are empty or not ascending are bugs in the caller and abort. Families are
  // rendered in the order they were added.
  CounterFamily& AddCounter(const std::string& name, const std::string& help,
                            const std::vector<std::string>& label_names = {});
  GaugeFamily& AddGauge(const std::string& name, const std::string& help,
                        const std::vector<std::string>& label_names = {});
  HistogramFamily& AddHistogram(const std::string& name, const std::string& help, const std::vector<double>& bounds,
                                const std::vector<std::string>& label_names = {});
  // Families read at scrape time (e.g. counted in a database, or kept by a component that knows nothing of metrics).
  void AddSampledCounter(const std::string& name, const std::string& help, const std::vector<std::string>& label_names,
                         MetricSampler sampler);
  void AddSampledGauge(const std::string& name, const std::string& help, const std::vector<std::string>& label_names,
                       MetricSampler sampler);

  // Every family: "# HELP", "# TYPE", then its series; histograms as _bucket{le=...} (cumulative, ending at +Inf),
  // _sum and _count.
  std::string Render() const;

 private:
  struct Family;
  Family& Add(const std::string& name, const std::string& help, const std::vector<std::string>& label_names,
              const char* type);
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;
};

// The Content-Type of Render()'s text.
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// GET (or HEAD) /metrics -> 200 with the registry's text; another path -> 404; another method -> 405; a request
// that is not HTTP/1.x -> 400. One connection at a time, each closed after its response; a client that sends
// nothing for 5 s is dropped.
class MetricsHttpServer {
 public:
  // host: an address as in a listen address ("127.0.0.1", "0.0.0.0", "::", "[::1]", "localhost"); port 0 picks a
  // free one (see port()). UNAVAILABLE naming the address when it cannot listen.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& host, int port,
                                                                  const MetricsRegistry& registry);
  ~MetricsHttpServer();  // stops serving

  int port() const { return port_; }

 private:
  MetricsHttpServer(int listen_fd, int wake_read_fd, int wake_write_fd, int port, const MetricsRegistry& registry);
  void Serve();
  void Answer(int fd);

  const int listen_fd_, wake_read_fd_, wake_write_fd_, port_;
  const MetricsRegistry& registry_;
  std::thread thread_;
};

// The host part of a "host:port" listen address ("[::1]:50051" -> "[::1]", "0.0.0.0:0" -> "0.0.0.0").
std::string ListenHost(const std::string& listen_address);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_METRICS_H_
