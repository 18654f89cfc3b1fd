// The tuneforge-metadata gRPC server: migrations, the store, every resource service, health and
// reflection, and one log line per RPC. main.cc and the end-to-end tests both start it through here.
#ifndef TUNEFORGE_SERVICES_METADATA_SERVER_H_
#define TUNEFORGE_SERVICES_METADATA_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/grpc_tls.h"
#include "services/metadata/dataset_records.h"

namespace tuneforge {

struct MetadataServerOptions {
  // host:port; port 0 picks a free port (see MetadataServer::port()).
  std::string listen_address = "127.0.0.1:50051";
  std::string database_url;
  std::vector<std::string> allowed_roots;
  // Hugging Face Hub endpoint; empty uses HF_ENDPOINT or https://huggingface.co.
  std::string hf_endpoint;
  // Token for Hub calls whose request carries none (the server's HF_TOKEN). Never logged.
  std::string hf_token;
  int pool_size = 8;
  // Jobs write adapters and checkpoints under <artifacts_dir>/jobs/<id>/ (a directory the trainers share).
  std::string artifacts_dir;
  // A secret trainers may present on WorkerQueue calls (the worker-token file), taken as a token with the trainer
  // role; empty: only trainer tokens made with CreateToken. Never logged.
  std::string worker_token;
  // Public calls need a bearer token when true; when false a call without one acts as admin (a single user on
  // loopback). Tokens that are sent are checked either way.
  bool auth = false;
  // TLS for the port: PEM files (cert and key, and client_ca for mutual TLS); empty serves plaintext.
  ServerTlsFiles tls;
  // With auth: where the first start (no usable admin token in the database) writes a new admin token.
  std::string admin_token_file;
  double lease_seconds = 30;
  // The largest request of every method but ImportDatabase, in bytes.
  size_t max_request_bytes = size_t{4} << 20;
  // The largest database document ImportDatabase accepts and ExportDatabase returns, in bytes.
  size_t max_document_bytes = size_t{256} << 20;
  // The largest dataset revision AddDataset records: rows (local files; the Hub's row counts are unknown until
  // read) and bytes of its data files.
  DatasetLimits dataset_limits;
  // Prometheus metrics over HTTP at /metrics on this port, bound to the listen address's host; -1 serves none, 0
  // picks a free port (see MetadataServer::metrics_port()).
  int metrics_port = -1;
};

class MetadataServer {
 public:
  static absl::StatusOr<std::unique_ptr<MetadataServer>> Start(const MetadataServerOptions& options);
  ~MetadataServer();

  int port() const;
  // The port serving /metrics; 0 when metrics are off.
  int metrics_port() const;
  // Stops accepting RPCs and waits for those in flight (up to a 5 s grace period).
  void Shutdown();
  // Blocks until Shutdown() is called from another thread.
  void Wait();

  struct Parts;

 private:
  explicit MetadataServer(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_SERVER_H_
