// tuneforge-trainer: a worker that leases fine-tuning jobs from tuneforge-metadata and runs them, plus its own
// gRPC service (status, prefetch) for operators. Wiring only.
#include <ATen/Parallel.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_tls.h"
#include "common/hf_hub_client.h"
#include "common/log_escaping.h"
#include "common/metrics.h"
#include "common/secret_file.h"
#include "services/trainer/model/device.h"
#include "services/trainer/worker/trainer_metrics.h"
#include "services/trainer/worker/trainer_service.h"
#include "services/trainer/worker/worker.h"
#include "spdlog/spdlog.h"

namespace {

struct Flag {
  const char* env;
  const char* help;
};

const std::map<std::string, Flag>& Flags() {
  static const auto* flags = new std::map<std::string, Flag>{
      {"metadata", {"TUNEFORGE_METADATA", "address of tuneforge-metadata (default 127.0.0.1:50051)"}},
      {"worker-id", {"TUNEFORGE_WORKER_ID", "this trainer's name in job records (default <hostname>-<pid>)"}},
      {"home", {"TUNEFORGE_HOME", "state directory holding the default worker-token file (default ~/.tuneforge)"}},
      {"worker-token-file", {"TUNEFORGE_WORKER_TOKEN_FILE", "the token shared with tuneforge-metadata (default <home>/worker-token)"}},
      {"token-file", {"TUNEFORGE_TOKEN_FILE", "a trainer token of this trainer's own (tuneforge tokens create --role trainer), used instead of the worker-token file"}},
      {"ca", {"TUNEFORGE_CA", "PEM CA bundle: reach tuneforge-metadata over TLS, checking its certificate against it"}},
      {"cert", {"TUNEFORGE_CERT", "PEM client certificate for mutual TLS with tuneforge-metadata (with --key)"}},
      {"key", {"TUNEFORGE_KEY", "PEM private key of --cert"}},
      {"tls-cert", {"TUNEFORGE_TRAINER_TLS_CERT", "PEM certificate chain: serve this trainer's own port over TLS (with --tls-key)"}},
      {"tls-key", {"TUNEFORGE_TRAINER_TLS_KEY", "PEM private key of --tls-cert"}},
      {"tls-client-ca", {"TUNEFORGE_TRAINER_TLS_CLIENT_CA", "PEM CA bundle: callers of this trainer's port must present a certificate it signed"}},
      {"listen", {"TUNEFORGE_TRAINER_LISTEN", "address of this trainer's own gRPC service (default 127.0.0.1)"}},
      {"port", {"TUNEFORGE_TRAINER_PORT", "its port (default 50061; 0 picks a free one)"}},
      {"threads", {"TUNEFORGE_THREADS", "CPU threads for training (default: all cores)"}},
      {"hf-endpoint", {"HF_ENDPOINT", "Hugging Face Hub URL (default https://huggingface.co)"}},
      {"cache-dir", {"HF_HUB_CACHE", "Hugging Face cache (default $HF_HOME/hub or ~/.cache/huggingface/hub)"}},
      {"artifacts-dir", {"TUNEFORGE_ARTIFACTS_DIR", "the artifacts directory shared with tuneforge-metadata; jobs write only under it (default <home>/artifacts)"}},
      {"log-level", {"TUNEFORGE_LOG_LEVEL", "debug, info, warn or error (default info)"}},
      {"log-format", {"TUNEFORGE_LOG_FORMAT", "text, or json: one JSON object per line (time, level, logger, message) (default text)"}},
      {"metrics-port", {"TUNEFORGE_TRAINER_METRICS_PORT", "serve Prometheus metrics at http://<listen>:<port>/metrics (default: off; 0 picks a free port)"}},
  };
  return *flags;
}

std::string Usage() {
  std::string out =
      "Usage: tuneforge-trainer [--flag=value ...]\n\n"
      "Leases fine-tuning jobs from tuneforge-metadata and runs them (LoRA on CUDA when present, else CPU).\n"
      "Hub downloads go to the Hugging Face cache; HF_TOKEN (environment only) authorizes them;\n"
      "HF_HUB_OFFLINE=1 uses the cache only. Start as many trainers as you have devices.\n\nFlags (environment variable in brackets):\n";
  for (const auto& [name, flag] : Flags()) out += absl::StrCat("  --", name, " [", flag.env, "]\n      ", flag.help, "\n");
  return out;
}

volatile std::sig_atomic_t g_signal = 0;
void OnSignal(int signal) { g_signal = signal; }

int Fail(const std::string& message) {
  std::cerr << "tuneforge-trainer: " << message << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // A handler, not sigwait: libraries may start threads before main, so a mask set here would not cover them.
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  std::map<std::string, std::string> values;
  for (const auto& [name, flag] : Flags()) {
    if (const char* v = std::getenv(flag.env); v != nullptr && *v != '\0') values[name] = v;
  }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << Usage();
      return 0;
    }
    if (arg.rfind("--", 0) != 0) return Fail(absl::StrCat("unexpected argument '", arg, "'; see --help"));
    std::string name = arg.substr(2), value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Fail(absl::StrCat("--", name, " needs a value"));
    }
    if (!Flags().count(name)) return Fail(absl::StrCat("unknown flag --", name, "; see --help"));
    values[name] = value;
  }
  const std::string level = values.count("log-level") ? values["log-level"] : "info";
  spdlog::set_level(spdlog::level::from_str(level));
  absl::StatusOr<tuneforge::LogFormat> log_format =
      tuneforge::ParseLogFormat(values.count("log-format") ? values["log-format"] : "text");
  if (!log_format.ok()) return Fail(std::string(log_format.status().message()));
  tuneforge::EscapeControlCharactersInLogs(*log_format);

  std::string home = values["home"];
  if (home.empty()) {
    const char* h = std::getenv("HOME");
    if (h == nullptr) return Fail("HOME is not set; pass --home");
    home = absl::StrCat(h, "/.tuneforge");
  }
  tuneforge::WorkerOptions options;
  options.metadata_address = values.count("metadata") ? values["metadata"] : "127.0.0.1:50051";
  char host[256] = "trainer";
  gethostname(host, sizeof(host) - 1);
  options.worker_id = values.count("worker-id") ? values["worker-id"] : absl::StrCat(host, "-", getpid());
  const std::string token_file = values.count("token-file")          ? values["token-file"]
                                 : values.count("worker-token-file") ? values["worker-token-file"]
                                                                     : home + "/worker-token";
  absl::StatusOr<std::string> token = tuneforge::ReadSecretFile(token_file);
  if (!token.ok()) {
    return Fail(absl::StrCat(token.status().message(),
                             "; start tuneforge-metadata first (it creates the worker-token file), pass "
                             "--worker-token-file, or --token-file with a trainer token"));
  }
  options.worker_token = *token;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials =
      tuneforge::ChannelCredentialsFromFiles({values["ca"], values["cert"], values["key"]});
  if (!channel_credentials.ok()) return Fail(std::string(channel_credentials.status().message()));
  options.credentials = *channel_credentials;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_credentials = tuneforge::ServerCredentialsFromFiles(
      {values["tls-cert"], values["tls-key"], values["tls-client-ca"]}, "--tls-");
  if (!server_credentials.ok()) return Fail(std::string(server_credentials.status().message()));
  int threads = 0;
  if (values.count("threads") && (!absl::SimpleAtoi(values["threads"], &threads) || threads < 1 || threads > 1024)) {
    return Fail(absl::StrCat("--threads='", values["threads"], "' is not a number from 1 to 1024"));
  }
  if (threads > 0) at::set_num_threads(threads);
  tuneforge::HubClientOptions hub_options;
  hub_options.endpoint = values["hf-endpoint"];
  tuneforge::HubClient hub(hub_options);
  options.runner.hub = &hub;
  if (const char* t = std::getenv("HF_TOKEN"); t != nullptr) options.runner.hf_token = t;
  if (absl::Status valid = tuneforge::ValidateHubToken(options.runner.hf_token, "HF_TOKEN"); !valid.ok()) {
    return Fail(std::string(valid.message()));
  }
  options.runner.cache_dir = values["cache-dir"];
  options.runner.artifacts_dir = values.count("artifacts-dir") ? values["artifacts-dir"] : home + "/artifacts";
  if (options.runner.artifacts_dir.empty() || options.runner.artifacts_dir[0] != '/') {
    return Fail(absl::StrCat("--artifacts-dir='", options.runner.artifacts_dir, "' must be an absolute path"));
  }
  options.runner.threads = threads;

  // Prometheus metrics on --metrics-port, beside the trainer's own service.
  tuneforge::MetricsRegistry metrics_registry;
  tuneforge::TrainerMetrics trainer_metrics(metrics_registry);
  std::unique_ptr<tuneforge::MetricsHttpServer> metrics_server;
  if (values.count("metrics-port")) {
    int metrics_port = -1;
    if (!absl::SimpleAtoi(values["metrics-port"], &metrics_port) || metrics_port < 0 || metrics_port > 65535) {
      return Fail(absl::StrCat("--metrics-port='", values["metrics-port"], "' is not a number from 0 to 65535"));
    }
    const std::string metrics_host = values.count("listen") ? values["listen"] : "127.0.0.1";
    auto started = tuneforge::MetricsHttpServer::Start(metrics_host, metrics_port, metrics_registry);
    if (!started.ok()) return Fail(std::string(started.status().message()));
    metrics_server = std::move(*started);
    options.runner.metrics = &trainer_metrics;
    spdlog::info("metrics at http://{}:{}/metrics", metrics_host, metrics_server->port());
  }

  auto device_request = tuneforge::ParseDeviceRequest("auto");
  std::string device = "cpu";
  if (device_request.ok()) {
    if (auto d = tuneforge::ResolveDevice(*device_request); d.ok()) device = tuneforge::DescribeDevice(*d);
  }

  tuneforge::Worker worker(options);
  tuneforge::TrainerService service(worker, options, device, at::get_num_threads());
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();  // grpcurl / buf curl need no .proto files
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string address = absl::StrCat(values.count("listen") ? values["listen"] : "127.0.0.1", ":",
                                           values.count("port") ? values["port"] : "50061");
  builder.AddListeningPort(address, *server_credentials, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return Fail(absl::StrCat("cannot listen on ", address, "; choose another --port"));
  spdlog::info("tuneforge-trainer {} on {} ({} threads); service on port {}; leasing from {}", options.worker_id,
               device, at::get_num_threads(), port, options.metadata_address);

  std::atomic<bool> stop{false};
  std::thread waiter([&] {
    while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    spdlog::info("received signal {}; handing the current job back and stopping", static_cast<int>(g_signal));
    stop = true;
    worker.Interrupt();
  });
  worker.Run(stop);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  waiter.join();
  spdlog::info("tuneforge-trainer stopped");
  return 0;
}
