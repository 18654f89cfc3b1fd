// tuneforge-metadata: reads its configuration, starts (or connects to) PostgreSQL, serves gRPC until SIGINT/SIGTERM.
#include <csignal>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/embedded_postgres.h"
#include "common/log_escaping.h"
#include "common/secret_file.h"
#include "services/metadata/metadata_config.h"
#include "services/metadata/server.h"
#include "spdlog/spdlog.h"

namespace {

int Fail(const absl::Status& status) {
  spdlog::error("tuneforge-metadata cannot start: {}", std::string(status.message()));
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<tuneforge::MetadataConfig> config = tuneforge::ParseMetadataConfig(argc, argv);
  if (!config.ok()) return Fail(config.status());
  if (config->help) {
    std::cout << tuneforge::MetadataUsage();
    return 0;
  }
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  tuneforge::EscapeControlCharactersInLogs(config->log_format);

  // Signals are taken by a waiting thread, so that shutdown runs outside a signal handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::error_code ec;
  for (const std::string& dir : {config->home, config->home + "/data", config->artifacts_dir}) {
    std::filesystem::create_directories(dir, ec);
  }
  absl::StatusOr<std::string> worker_token = tuneforge::ReadOrCreateSecretFile(config->worker_token_file);
  if (!worker_token.ok()) return Fail(worker_token.status());
  std::unique_ptr<tuneforge::EmbeddedPostgres> postgres;
  tuneforge::MetadataServerOptions options;
  options.database_url = config->database_url;
  if (options.database_url.empty()) {
    tuneforge::EmbeddedPostgresOptions pg;
    pg.data_dir = config->home + "/postgres";
    absl::StatusOr<std::unique_ptr<tuneforge::EmbeddedPostgres>> started = tuneforge::EmbeddedPostgres::Start(pg);
    if (!started.ok()) return Fail(started.status());
    postgres = std::move(*started);
    options.database_url = postgres->url();
    spdlog::info("embedded PostgreSQL running in {}", pg.data_dir);
  }
  options.listen_address = absl::StrCat(config->listen, ":", config->port);
  options.allowed_roots = config->allowed_roots;
  options.hf_endpoint = config->hf_endpoint;
  options.hf_token = config->hf_token;
  options.pool_size = config->pool_size;
  options.artifacts_dir = config->artifacts_dir;
  options.worker_token = *worker_token;
  options.lease_seconds = config->lease_seconds;
  options.auth = config->auth;
  options.admin_token_file = config->admin_token_file;
  options.tls = {config->tls_cert, config->tls_key, config->tls_client_ca};
  options.max_request_bytes = static_cast<size_t>(config->max_request_bytes);
  options.max_document_bytes = static_cast<size_t>(config->max_document_bytes);
  options.dataset_limits = config->dataset_limits;
  options.metrics_port = config->metrics_port;
  absl::StatusOr<std::unique_ptr<tuneforge::MetadataServer>> server = tuneforge::MetadataServer::Start(options);
  if (!server.ok()) return Fail(server.status());

  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    spdlog::info("received signal {}, shutting down", signal);
    (*server)->Shutdown();
  });
  (*server)->Wait();
  waiter.join();
  server->reset();
  if (postgres != nullptr) {
    absl::Status stopped = postgres->Stop();
    if (!stopped.ok()) spdlog::warn("stopping embedded PostgreSQL: {}", std::string(stopped.message()));
  }
  spdlog::info("tuneforge-metadata stopped");
  return 0;
}
