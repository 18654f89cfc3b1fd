// The metrics registry, its text exposition (format 0.0.4) and the /metrics HTTP server (plain sockets, one thread).
#include "common/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"

namespace tuneforge {

namespace {

[[noreturn]] void Bug(const std::string& what) {
  std::fprintf(stderr, "metrics: %s\n", what.c_str());
  std::abort();
}

bool ValidName(const std::string& name, bool colons) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colons && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

void CheckLabelCount(size_t expected, const std::vector<std::string>& values) {
  if (values.size() != expected) {
    Bug(absl::StrCat("WithLabels got ", values.size(), " label values for ", expected, " label names"));
  }
}

void AtomicAdd(std::atomic<double>& target, double amount) {
  double current = target.load();
  while (!target.compare_exchange_weak(current, current + amount)) {
  }
}

// Values as Prometheus parses them: integers without an exponent, others in the shortest form that reads back.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// Label values escape backslash, double quote and newline; help text backslash and newline.
std::string EscapeText(const std::string& text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// {a="x",b="y"} (with `extra` appended, e.g. le="0.5"), or nothing when there are no labels.
std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                   const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "" : ",", names[i], "=\"", EscapeText(values[i], true), "\"");
  }
  if (!extra.empty()) absl::StrAppend(&out, out.empty() ? "" : ",", extra);
  return out.empty() ? out : absl::StrCat("{", out, "}");
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Sends the response, then half-closes and reads what the client still sends until it closes (at most 1 s and
// 64 KiB): closing with unread bytes would reset the connection and could discard the response at the client.
void Respond(int fd, const char* status, const std::string& content_type, const std::string& body, bool head,
             const char* extra_headers = "") {
  std::string response = absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                                      "\r\nContent-Length: ", body.size(), "\r\n", extra_headers,
                                      "Connection: close\r\n\r\n");
  if (!head) response += body;
  if (!SendAll(fd, response)) return;
  shutdown(fd, SHUT_WR);
  const timeval linger = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &linger, sizeof(linger));
  char buf[4096];
  for (size_t drained = 0; drained < (64u << 10);) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
}

}  // namespace

void Counter::Increment(double amount) {
  if (amount > 0) AtomicAdd(value_, amount);
}

void Gauge::Add(double amount) { AtomicAdd(value_, amount); }

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), bucket_counts_(bounds_.size() + 1) {}

void Histogram::Observe(double value) {
  const size_t bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  std::lock_guard<std::mutex> lock(mu_);
  ++bucket_counts_[bucket];
  sum_ += value;
}

Histogram::Counts Histogram::counts() const {
  Counts out;
  std::lock_guard<std::mutex> lock(mu_);
  int64_t running = 0;
  for (int64_t c : bucket_counts_) {
    running += c;
    out.cumulative.push_back(running);
  }
  out.count = running;
  out.sum = sum_;
  return out;
}

Counter& CounterFamily::WithLabels(const std::vector<std::string>& label_values) {
  CheckLabelCount(label_count_, label_values);
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<Counter>& series = series_[label_values];
  if (series == nullptr) series = std::make_unique<Counter>();
  return *series;
}

Gauge& GaugeFamily::WithLabels(const std::vector<std::string>& label_values) {
  CheckLabelCount(label_count_, label_values);
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<Gauge>& series = series_[label_values];
  if (series == nullptr) series = std::make_unique<Gauge>();
  return *series;
}

Histogram& HistogramFamily::WithLabels(const std::vector<std::string>& label_values) {
  CheckLabelCount(label_count_, label_values);
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<Histogram>& series = series_[label_values];
  if (series == nullptr) series = std::make_unique<Histogram>(bounds_);
  return *series;
}

std::vector<double> DurationBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

struct MetricsRegistry::Family {
  std::string name, help, type;
  std::vector<std::string> label_names;
  std::unique_ptr<CounterFamily> counters;
  std::unique_ptr<GaugeFamily> gauges;
  std::unique_ptr<HistogramFamily> histograms;
  MetricSampler sampler;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::Add(const std::string& name, const std::string& help,
                                              const std::vector<std::string>& label_names, const char* type) {
  if (!ValidName(name, true)) Bug(absl::StrCat("'", name, "' is not a metric name"));
  for (const std::string& label : label_names) {
    if (!ValidName(label, false) || label.rfind("__", 0) == 0 || label == "le") {
      Bug(absl::StrCat("'", label, "' is not a label name of ", name));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) {
    if (f->name == name) Bug(absl::StrCat("metric ", name, " is added twice"));
  }
  families_.push_back(std::make_unique<Family>());
  Family& f = *families_.back();
  f.name = name;
  f.help = help;
  f.type = type;
  f.label_names = label_names;
  return f;
}

CounterFamily& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                           const std::vector<std::string>& label_names) {
  Family& f = Add(name, help, label_names, "counter");
  f.counters = std::make_unique<CounterFamily>();
  f.counters->label_count_ = label_names.size();
  return *f.counters;
}

GaugeFamily& MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                       const std::vector<std::string>& label_names) {
  Family& f = Add(name, help, label_names, "gauge");
  f.gauges = std::make_unique<GaugeFamily>();
  f.gauges->label_count_ = label_names.size();
  return *f.gauges;
}

HistogramFamily& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                               const std::vector<double>& bounds,
                                               const std::vector<std::string>& label_names) {
  if (bounds.empty() || !std::is_sorted(bounds.begin(), bounds.end()) ||
      std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end() || std::isinf(bounds.back())) {
    Bug(absl::StrCat("histogram ", name, " needs finite ascending bucket bounds"));
  }
  Family& f = Add(name, help, label_names, "histogram");
  f.histograms = std::make_unique<HistogramFamily>();
  f.histograms->label_count_ = label_names.size();
  f.histograms->bounds_ = bounds;
  return *f.histograms;
}

void MetricsRegistry::AddSampledCounter(const std::string& name, const std::string& help,
                                        const std::vector<std::string>& label_names, MetricSampler sampler) {
  Add(name, help, label_names, "counter").sampler = std::move(sampler);
}

void MetricsRegistry::AddSampledGauge(const std::string& name, const std::string& help,
                                      const std::vector<std::string>& label_names, MetricSampler sampler) {
  Add(name, help, label_names, "gauge").sampler = std::move(sampler);
}

std::string MetricsRegistry::Render() const {
  std::vector<const Family*> families;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& f : families_) families.push_back(f.get());
  }
  std::string out;
  for (const Family* f : families) {
    absl::StrAppend(&out, "# HELP ", f->name, " ", EscapeText(f->help, false), "\n# TYPE ", f->name, " ", f->type,
                    "\n");
    if (f->sampler) {
      absl::StatusOr<std::vector<MetricSample>> samples = f->sampler();
      if (!samples.ok()) {
        spdlog::warn("metric {}: {}", f->name, std::string(samples.status().message()));
        continue;
      }
      for (const MetricSample& s : *samples) {
        if (s.label_values.size() != f->label_names.size()) continue;
        absl::StrAppend(&out, f->name, Labels(f->label_names, s.label_values), " ", FormatValue(s.value), "\n");
      }
    } else if (f->counters != nullptr) {
      std::lock_guard<std::mutex> lock(f->counters->mu_);
      for (const auto& [values, counter] : f->counters->series_) {
        absl::StrAppend(&out, f->name, Labels(f->label_names, values), " ", FormatValue(counter->value()), "\n");
      }
    } else if (f->gauges != nullptr) {
      std::lock_guard<std::mutex> lock(f->gauges->mu_);
      for (const auto& [values, gauge] : f->gauges->series_) {
        absl::StrAppend(&out, f->name, Labels(f->label_names, values), " ", FormatValue(gauge->value()), "\n");
      }
    } else if (f->histograms != nullptr) {
      std::lock_guard<std::mutex> lock(f->histograms->mu_);
      for (const auto& [values, histogram] : f->histograms->series_) {
        const Histogram::Counts counts = histogram->counts();
        const std::vector<double>& bounds = histogram->bounds();
        for (size_t i = 0; i <= bounds.size(); ++i) {
          const std::string le = i < bounds.size() ? FormatValue(bounds[i]) : "+Inf";
          absl::StrAppend(&out, f->name, "_bucket", Labels(f->label_names, values, absl::StrCat("le=\"", le, "\"")),
                          " ", counts.cumulative[i], "\n");
        }
        absl::StrAppend(&out, f->name, "_sum", Labels(f->label_names, values), " ", FormatValue(counts.sum), "\n");
        absl::StrAppend(&out, f->name, "_count", Labels(f->label_names, values), " ", counts.count, "\n");
      }
    }
  }
  return out;
}

std::string ListenHost(const std::string& listen_address) {
  const size_t colon = listen_address.rfind(':');
  if (colon == std::string::npos || listen_address.find(']', colon) != std::string::npos) return listen_address;
  return listen_address.substr(0, colon);
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& host, int port,
                                                                            const MetricsRegistry& registry) {
  std::string name = host;
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
  const std::string where = absl::StrCat(host, ":", port);
  if (port < 0 || port > 65535) return absl::InvalidArgumentError(absl::StrCat("metrics port ", port, " is not 0-65535"));
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = absl::StrCat(port);
  if (const int rc = getaddrinfo(name.empty() ? nullptr : name.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot serve metrics on ", where, ": ", gai_strerror(rc)));
  }
  int fd = -1;
  std::string error = "no address";
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 16) != 0) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", where, ": ", error,
                                               "; is another process using the port? choose another --metrics-port"));
  }
  sockaddr_storage bound = {};
  socklen_t bound_len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  const int chosen = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                       : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int wake[2];
  if (pipe2(wake, O_CLOEXEC) != 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("metrics server: pipe: ", std::strerror(errno)));
  }
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(fd, wake[0], wake[1], chosen, registry));
}

MetricsHttpServer::MetricsHttpServer(int listen_fd, int wake_read_fd, int wake_write_fd, int port,
                                     const MetricsRegistry& registry)
    : listen_fd_(listen_fd),
      wake_read_fd_(wake_read_fd),
      wake_write_fd_(wake_write_fd),
      port_(port),
      registry_(registry),
      thread_([this] { Serve(); }) {}

MetricsHttpServer::~MetricsHttpServer() {
  const char byte = 0;
  (void)!write(wake_write_fd_, &byte, 1);
  thread_.join();
  close(listen_fd_);
  close(wake_read_fd_);
  close(wake_write_fd_);
}

void MetricsHttpServer::Serve() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("metrics server stopped: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    Answer(client);
    close(client);
  }
}

void MetricsHttpServer::Answer(int fd) {
  const timeval timeout = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  constexpr size_t kMaxHeader = 8192;
  const std::string text = "text/plain; charset=utf-8";
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.find("\n\n") == std::string::npos) {
    if (request.size() > kMaxHeader) {
      Respond(fd, "400 Bad Request", text, "request header too large\n", false);
      return;
    }
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;  // closed or silent: nothing to answer
    request.append(buf, static_cast<size_t>(n));
  }
  const std::string line = request.substr(0, request.find_first_of("\r\n"));
  const std::vector<std::string> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() || parts[1][0] != '/' ||
      parts[2].rfind("HTTP/1.", 0) != 0 || parts[2].size() != 8) {
    Respond(fd, "400 Bad Request", text, "expected an HTTP/1.x request line such as GET /metrics HTTP/1.1\n", false);
    return;
  }
  const bool head = parts[0] == "HEAD";
  if (parts[0] != "GET" && !head) {
    Respond(fd, "405 Method Not Allowed", text, "only GET and HEAD\n", false, "Allow: GET, HEAD\r\n");
    return;
  }
  const std::string path = parts[1].substr(0, parts[1].find('?'));
  if (path != "/metrics") {
    Respond(fd, "404 Not Found", text, "metrics are at /metrics\n", head);
    return;
  }
  Respond(fd, "200 OK", kMetricsContentType, registry_.Render(), head);
}

}  // namespace tuneforge
