// tuneforge-metadata's configuration: flags with environment fallbacks, validated once at start-up.
#ifndef TUNEFORGE_SERVICES_METADATA_METADATA_CONFIG_H_
#define TUNEFORGE_SERVICES_METADATA_METADATA_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/log_escaping.h"
#include "services/metadata/dataset_records.h"

namespace tuneforge {

struct MetadataConfig {
  std::string listen = "127.0.0.1";      // --listen / TUNEFORGE_LISTEN: address to bind
  int port = 50051;                      // --port / TUNEFORGE_PORT: 0-65535, 0 picks a free port
  std::string database_url;              // --database-url / TUNEFORGE_DATABASE_URL; empty: embedded PostgreSQL
  std::string home;                      // --home / TUNEFORGE_HOME; default ~/.tuneforge
  std::vector<std::string> allowed_roots;  // --allowed-roots / TUNEFORGE_ALLOWED_ROOTS, comma-separated; default <home>/data
  std::string hf_endpoint;               // --hf-endpoint / HF_ENDPOINT
  std::string hf_token;                  // HF_TOKEN only (a flag would show in process listings)
  int pool_size = 8;                     // --pool-size / TUNEFORGE_POOL_SIZE: 1-256 connections
  std::string artifacts_dir;             // --artifacts-dir / TUNEFORGE_ARTIFACTS_DIR; default <home>/artifacts
  std::string worker_token_file;         // --worker-token-file / TUNEFORGE_WORKER_TOKEN_FILE; default <home>/worker-token
  bool auth = true;                      // --auth / TUNEFORGE_AUTH: on or off (off only on loopback)
  std::string admin_token_file;          // --admin-token-file / TUNEFORGE_ADMIN_TOKEN_FILE; default <home>/admin-token
  std::string tls_cert;                  // --tls-cert / TUNEFORGE_TLS_CERT: PEM chain; empty serves plaintext
  std::string tls_key;                   // --tls-key / TUNEFORGE_TLS_KEY: PEM key of tls_cert
  std::string tls_client_ca;             // --tls-client-ca / TUNEFORGE_TLS_CLIENT_CA: PEM CAs; requires client certs
  int lease_seconds = 30;                // --lease-seconds / TUNEFORGE_LEASE_SECONDS: 3-3600
  std::string log_level = "info";        // --log-level / TUNEFORGE_LOG_LEVEL: debug, info, warn, error
  // --max-request-bytes / TUNEFORGE_MAX_REQUEST_BYTES: largest request of every method but ImportDatabase
  // (64 KiB - 1 GiB; default 4 MiB).
  int max_request_bytes = 4 << 20;
  // --max-document-bytes / TUNEFORGE_MAX_DOCUMENT_BYTES: largest database document of ImportDatabase and
  // ExportDatabase (1 MiB - 2046 MiB; default 256 MiB).
  int max_document_bytes = 256 << 20;
  // --max-dataset-rows / TUNEFORGE_MAX_DATASET_ROWS, --max-dataset-bytes / TUNEFORGE_MAX_DATASET_BYTES: the largest
  // dataset revision AddDataset records.
  DatasetLimits dataset_limits;
  // --metrics-port / TUNEFORGE_METRICS_PORT: Prometheus /metrics over HTTP on the --listen address; -1 (unset): off;
  // 0 picks a free port.
  int metrics_port = -1;
  LogFormat log_format = LogFormat::kText;  // --log-format / TUNEFORGE_LOG_FORMAT: text or json (one object a line)
  bool help = false;
};

// Parses --flag=value and --flag value. INVALID_ARGUMENT names the flag (or variable) and the accepted values.
absl::StatusOr<MetadataConfig> ParseMetadataConfig(int argc, char** argv);
std::string MetadataUsage();

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_METADATA_CONFIG_H_
