// A complete metadata service for end-to-end tests: a fresh database on the test PostgreSQL, the
// migrations applied, a fake Hugging Face Hub, an allowed root directory, and the gRPC server on loopback.
#ifndef TUNEFORGE_TESTS_METADATA_SUPPORT_METADATA_TEST_ENV_H_
#define TUNEFORGE_TESTS_METADATA_SUPPORT_METADATA_TEST_ENV_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "tests/support/fake_hub.h"
#include "tests/support/testdata.h"
#include "tuneforge/v1/adapters.grpc.pb.h"
#include "tuneforge/v1/admin.grpc.pb.h"
#include "tuneforge/v1/configs.grpc.pb.h"
#include "tuneforge/internal/v1/worker.grpc.pb.h"
#include "tuneforge/v1/datasets.grpc.pb.h"
#include "tuneforge/v1/evaluations.grpc.pb.h"
#include "tuneforge/v1/jobs.grpc.pb.h"
#include "tuneforge/v1/models.grpc.pb.h"
#include "tuneforge/v1/prompts.grpc.pb.h"

namespace tuneforge {
class MetadataServer;
struct MetadataServerOptions;
}

namespace tuneforge::testing {

// The worker token the test server expects on WorkerQueue calls.
inline constexpr char kTestWorkerToken[] = "test-worker-token-not-secret";

class MetadataTestEnv {
 public:
  // Jobs write under root()/artifacts; a trainer's lease lasts lease_seconds without a heartbeat. With
  // `same_files_as`, this server shares that one's root (and so its allowed root and artifacts directory), as
  // two servers on one shared volume do; it has a database of its own either way. `max_document_bytes` other than 0
  // replaces the server's document limit (--max-document-bytes).
  explicit MetadataTestEnv(double lease_seconds = 30, const MetadataTestEnv* same_files_as = nullptr,
                           size_t max_document_bytes = 0);
  // A server started with the test options changed by `customize` (auth, TLS, ...). With TLS, channel() is
  // plaintext and fails: make a channel of your own.
  explicit MetadataTestEnv(const std::function<void(MetadataServerOptions&)>& customize);
  ~MetadataTestEnv();

  FakeHub& hub() { return *hub_; }
  // The directory the server accepts local paths under.
  const std::string& root() const { return root_path_; }
  // Writes a file under root(); returns its absolute path.
  std::string WriteFile(const std::string& relative, const std::string& content) const;
  // Copies a directory (e.g. a reference model) to root()/relative; returns the new absolute path.
  std::string CopyDir(const std::string& source, const std::string& relative) const;
  // A scratch directory outside root(), for paths the server must refuse.
  const std::string& outside() const { return outside_->path(); }
  const std::string& database_url() const { return database_url_; }
  const std::string& address() const { return address_; }
  // The server's Prometheus endpoint: http://127.0.0.1:<metrics_port()>/metrics.
  int metrics_port() const;

  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  std::unique_ptr<v1::Models::Stub> models() const { return v1::Models::NewStub(channel_); }
  std::unique_ptr<v1::Datasets::Stub> datasets() const { return v1::Datasets::NewStub(channel_); }
  std::unique_ptr<v1::Prompts::Stub> prompts() const { return v1::Prompts::NewStub(channel_); }
  std::unique_ptr<v1::Configs::Stub> configs() const { return v1::Configs::NewStub(channel_); }
  std::unique_ptr<v1::Adapters::Stub> adapters() const { return v1::Adapters::NewStub(channel_); }
  std::unique_ptr<v1::Admin::Stub> admin() const { return v1::Admin::NewStub(channel_); }
  std::unique_ptr<v1::FineTuningJobs::Stub> jobs() const { return v1::FineTuningJobs::NewStub(channel_); }
  std::unique_ptr<v1::EvaluationJobs::Stub> evaluations() const { return v1::EvaluationJobs::NewStub(channel_); }
  std::unique_ptr<internal::v1::WorkerQueue::Stub> queue() const { return internal::v1::WorkerQueue::NewStub(channel_); }

  // Registers the reference case generated at test time, GeneratedReference()/<reference_case> (its model files
  // only), as a local model named `name`.
  v1::Model AddReferenceModel(const std::string& reference_case, const std::string& name);

 private:
  void Start(double lease_seconds, size_t max_document_bytes,
             const std::function<void(MetadataServerOptions&)>& customize);

  std::unique_ptr<FakeHub> hub_;
  std::unique_ptr<ScratchDir> root_;  // null when the root is another env's
  std::string root_path_;
  std::unique_ptr<ScratchDir> outside_;
  std::string database_url_;
  std::string address_;
  std::unique_ptr<MetadataServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// A fresh context with a 30 s deadline.
std::unique_ptr<grpc::ClientContext> Context();

}  // namespace tuneforge::testing

#endif  // TUNEFORGE_TESTS_METADATA_SUPPORT_METADATA_TEST_ENV_H_
