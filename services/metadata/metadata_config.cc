// Flags and environment variables of tuneforge-metadata.
#include "services/metadata/metadata_config.h"

#include <cstdlib>
#include <limits>
#include <map>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/hf_hub_client.h"

namespace tuneforge {

namespace {

struct FlagSpec {
  const char* env;
  const char* help;
};

const std::map<std::string, FlagSpec>& Flags() {
  static const auto* flags = new std::map<std::string, FlagSpec>{
      {"listen", {"TUNEFORGE_LISTEN", "address to bind (default 127.0.0.1; 0.0.0.0 for all interfaces)"}},
      {"port", {"TUNEFORGE_PORT", "gRPC port (default 50051; 0 picks a free one)"}},
      {"database-url", {"TUNEFORGE_DATABASE_URL", "PostgreSQL URL; without it an embedded server runs in <home>/postgres"}},
      {"home", {"TUNEFORGE_HOME", "state directory (default ~/.tuneforge)"}},
      {"allowed-roots", {"TUNEFORGE_ALLOWED_ROOTS", "comma-separated directories local paths must lie under (default <home>/data)"}},
      {"hf-endpoint", {"HF_ENDPOINT", "Hugging Face Hub URL (default https://huggingface.co)"}},
      {"pool-size", {"TUNEFORGE_POOL_SIZE", "database connections (default 8)"}},
      {"artifacts-dir", {"TUNEFORGE_ARTIFACTS_DIR", "where jobs write adapters and checkpoints, shared with the trainers (default <home>/artifacts)"}},
      {"worker-token-file", {"TUNEFORGE_WORKER_TOKEN_FILE", "file holding the token trainers must present (default <home>/worker-token, created when missing)"}},
      {"auth", {"TUNEFORGE_AUTH", "on: public calls need a bearer token (default); off: calls without one act as admin, allowed only when --listen is a loopback address"}},
      {"admin-token-file", {"TUNEFORGE_ADMIN_TOKEN_FILE", "where the first start with --auth=on writes an admin token (default <home>/admin-token, mode 600)"}},
      {"tls-cert", {"TUNEFORGE_TLS_CERT", "PEM certificate chain: serve TLS (with --tls-key)"}},
      {"tls-key", {"TUNEFORGE_TLS_KEY", "PEM private key of --tls-cert"}},
      {"tls-client-ca", {"TUNEFORGE_TLS_CLIENT_CA", "PEM CA bundle: clients must present a certificate it signed (mutual TLS)"}},
      {"lease-seconds", {"TUNEFORGE_LEASE_SECONDS", "how long a trainer keeps a job without a heartbeat (default 30)"}},
      {"log-level", {"TUNEFORGE_LOG_LEVEL", "debug, info, warn or error (default info)"}},
      {"log-format", {"TUNEFORGE_LOG_FORMAT", "text, or json: one JSON object per line (time, level, logger, message) (default text)"}},
      {"metrics-port", {"TUNEFORGE_METRICS_PORT", "serve Prometheus metrics at http://<listen>:<port>/metrics (default: off; 0 picks a free port)"}},
      {"max-request-bytes", {"TUNEFORGE_MAX_REQUEST_BYTES", "largest request of every method but Admin/ImportDatabase, and largest message of a streamed request, in bytes (default 4194304)"}},
      {"max-document-bytes", {"TUNEFORGE_MAX_DOCUMENT_BYTES", "largest database document Admin/ImportDatabase(Stream) accepts and ExportDatabase(Stream) returns, in bytes (default 268435456)"}},
      {"max-dataset-rows", {"TUNEFORGE_MAX_DATASET_ROWS", "most rows of a dataset revision AddDataset records, over its splits (default 100000000)"}},
      {"max-dataset-bytes", {"TUNEFORGE_MAX_DATASET_BYTES", "largest dataset revision AddDataset records: bytes of all its data files (default 68719476736, 64 GiB)"}},
  };
  return *flags;
}

bool IsLoopbackAddress(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || absl::StartsWith(host, "127.");
}

template <typename Int>
absl::StatusOr<Int> ParseInt(const std::string& name, const std::string& value, Int lo, Int hi) {
  Int v = 0;
  if (!absl::SimpleAtoi(value, &v) || v < lo || v > hi) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, "='", value, "' is not a number from ", lo, " to ", hi));
  }
  return v;
}

}  // namespace

std::string MetadataUsage() {
  std::string out =
      "tuneforge-metadata: the tuneforge metadata service (gRPC, with reflection and health).\n\n"
      "Usage: tuneforge-metadata [--flag=value ...]\n\nFlags (environment variable in brackets):\n";
  for (const auto& [name, spec] : Flags()) absl::StrAppend(&out, "  --", name, " [", spec.env, "]\n      ", spec.help, "\n");
  absl::StrAppend(&out, "  --help\n      this text\n\nHF_TOKEN in the environment is the Hub token for requests that carry none.\n");
  return out;
}

absl::StatusOr<MetadataConfig> ParseMetadataConfig(int argc, char** argv) {
  std::map<std::string, std::string> values;
  for (const auto& [name, spec] : Flags()) {
    if (const char* env = std::getenv(spec.env); env != nullptr && *env != '\0') values[name] = env;
  }
  MetadataConfig config;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      config.help = true;
      return config;
    }
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'; see --help"));
    }
    arg = arg.substr(2);
    std::string name = std::string(arg), value;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value; see --help"));
    }
    if (Flags().count(name) == 0) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, "; see --help"));
    values[name] = value;
  }
  if (values.count("listen")) config.listen = values["listen"];
  if (values.count("port")) {
    auto port = ParseInt("port", values["port"], 0, 65535);
    if (!port.ok()) return port.status();
    config.port = *port;
  }
  if (values.count("pool-size")) {
    auto size = ParseInt("pool-size", values["pool-size"], 1, 256);
    if (!size.ok()) return size.status();
    config.pool_size = *size;
  }
  config.database_url = values["database-url"];
  config.hf_endpoint = values["hf-endpoint"];
  if (const char* token = std::getenv("HF_TOKEN"); token != nullptr) config.hf_token = token;
  if (absl::Status token = ValidateHubToken(config.hf_token, "HF_TOKEN"); !token.ok()) return token;
  config.home = values["home"];
  if (config.home.empty()) {
    const char* home = std::getenv("HOME");
    if (home == nullptr || *home == '\0') {
      return absl::InvalidArgumentError("HOME is not set; pass --home or set TUNEFORGE_HOME");
    }
    config.home = absl::StrCat(home, "/.tuneforge");
  }
  if (config.home[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("--home='", config.home, "' must be an absolute path"));
  }
  if (values.count("allowed-roots")) {
    for (absl::string_view root : absl::StrSplit(values["allowed-roots"], ',', absl::SkipWhitespace())) {
      config.allowed_roots.emplace_back(absl::StripAsciiWhitespace(root));
    }
  }
  if (config.allowed_roots.empty()) config.allowed_roots.push_back(config.home + "/data");
  config.artifacts_dir = values.count("artifacts-dir") ? values["artifacts-dir"] : config.home + "/artifacts";
  config.worker_token_file =
      values.count("worker-token-file") ? values["worker-token-file"] : config.home + "/worker-token";
  config.admin_token_file =
      values.count("admin-token-file") ? values["admin-token-file"] : config.home + "/admin-token";
  for (const auto& [flag, path] : {std::pair<const char*, const std::string*>{"artifacts-dir", &config.artifacts_dir},
                                   {"worker-token-file", &config.worker_token_file},
                                   {"admin-token-file", &config.admin_token_file}}) {
    if (path->empty() || (*path)[0] != '/') {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, "='", *path, "' must be an absolute path"));
    }
  }
  if (values.count("auth")) {
    const std::string& auth = values["auth"];
    if (auth != "on" && auth != "off") {
      return absl::InvalidArgumentError(absl::StrCat("--auth='", auth, "' is not on or off"));
    }
    config.auth = auth == "on";
  }
  if (!config.auth && !IsLoopbackAddress(config.listen)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--auth=off is only for a single user on loopback, and --listen is ", config.listen,
        ": use --auth=on (callers then need a token), or --listen 127.0.0.1"));
  }
  config.tls_cert = values["tls-cert"];
  config.tls_key = values["tls-key"];
  config.tls_client_ca = values["tls-client-ca"];
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together: give both to serve TLS, or neither");
  }
  if (!config.tls_client_ca.empty() && config.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first");
  }
  if (values.count("lease-seconds")) {
    auto lease = ParseInt("lease-seconds", values["lease-seconds"], 3, 3600);
    if (!lease.ok()) return lease.status();
    config.lease_seconds = *lease;
  }
  for (const auto& [flag, target, lo, hi] :
       {std::tuple<const char*, int*, int, int>{"max-request-bytes", &config.max_request_bytes, 64 << 10, 1 << 30},
        {"max-document-bytes", &config.max_document_bytes, 1 << 20, 2046 << 20}}) {
    if (values.count(flag) == 0) continue;
    auto parsed = ParseInt(flag, values[flag], lo, hi);
    if (!parsed.ok()) return parsed.status();
    *target = *parsed;
  }
  for (const auto& [flag, target] :
       {std::pair<const char*, int64_t*>{"max-dataset-rows", &config.dataset_limits.max_rows},
        {"max-dataset-bytes", &config.dataset_limits.max_bytes}}) {
    if (values.count(flag) == 0) continue;
    auto parsed = ParseInt<int64_t>(flag, values[flag], 1, std::numeric_limits<int64_t>::max());
    if (!parsed.ok()) return parsed.status();
    *target = *parsed;
  }
  if (values.count("metrics-port")) {
    auto port = ParseInt("metrics-port", values["metrics-port"], 0, 65535);
    if (!port.ok()) return port.status();
    config.metrics_port = *port;
    if (config.metrics_port != 0 && config.metrics_port == config.port) {
      return absl::InvalidArgumentError(
          absl::StrCat("--metrics-port=", config.metrics_port, " is also the gRPC --port; choose another"));
    }
  }
  if (values.count("log-format")) {
    absl::StatusOr<LogFormat> format = ParseLogFormat(values["log-format"]);
    if (!format.ok()) return format.status();
    config.log_format = *format;
  }
  if (values.count("log-level")) {
    config.log_level = values["log-level"];
    if (config.log_level != "debug" && config.log_level != "info" && config.log_level != "warn" &&
        config.log_level != "error") {
      return absl::InvalidArgumentError(
          absl::StrCat("--log-level='", config.log_level, "' is not one of debug, info, warn, error"));
    }
  }
  return config;
}

}  // namespace tuneforge
