// MetadataTestEnv: a fresh database, a fake Hub, an allowed root, and the real server on loopback.
#include "tests/metadata/support/metadata_test_env.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "services/metadata/server.h"
#include "tests/support/test_postgres.h"

namespace tuneforge::testing {

MetadataTestEnv::MetadataTestEnv(double lease_seconds, const MetadataTestEnv* same_files_as, size_t max_document_bytes)
    : hub_(std::make_unique<FakeHub>()),
      root_(same_files_as == nullptr ? std::make_unique<ScratchDir>("tuneforge-root") : nullptr),
      root_path_(same_files_as == nullptr ? root_->path() : same_files_as->root()),
      outside_(std::make_unique<ScratchDir>("tuneforge-outside")) {
  Start(lease_seconds, max_document_bytes, nullptr);
}

MetadataTestEnv::MetadataTestEnv(const std::function<void(MetadataServerOptions&)>& customize)
    : hub_(std::make_unique<FakeHub>()),
      root_(std::make_unique<ScratchDir>("tuneforge-root")),
      root_path_(root_->path()),
      outside_(std::make_unique<ScratchDir>("tuneforge-outside")) {
  Start(30, 0, customize);
}

void MetadataTestEnv::Start(double lease_seconds, size_t max_document_bytes,
                            const std::function<void(MetadataServerOptions&)>& customize) {
  database_url_ = TestPostgres::Get().NewDatabase();
  MetadataServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.database_url = database_url_;
  options.allowed_roots = {root_path_};
  options.hf_endpoint = hub_->endpoint();
  options.pool_size = 4;
  options.artifacts_dir = root_path_ + "/artifacts";
  options.worker_token = kTestWorkerToken;
  options.lease_seconds = lease_seconds;
  options.metrics_port = 0;  // every test server serves /metrics, on a free port
  if (max_document_bytes > 0) options.max_document_bytes = max_document_bytes;
  if (customize) customize(options);
  absl::StatusOr<std::unique_ptr<MetadataServer>> server = MetadataServer::Start(options);
  if (!server.ok()) throw std::runtime_error(absl::StrCat("metadata server did not start: ", server.status().ToString()));
  server_ = std::move(*server);
  address_ = absl::StrCat("127.0.0.1:", server_->port());
  channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
}

int MetadataTestEnv::metrics_port() const { return server_->metrics_port(); }

MetadataTestEnv::~MetadataTestEnv() {
  channel_.reset();
  server_.reset();
}

std::string MetadataTestEnv::WriteFile(const std::string& relative, const std::string& content) const {
  return WriteFileUnder(root_path_, relative, content);
}

std::string MetadataTestEnv::CopyDir(const std::string& source, const std::string& relative) const {
  std::filesystem::path target = std::filesystem::path(root_path_) / relative;
  std::filesystem::create_directories(target.parent_path());
  std::filesystem::copy(source, target, std::filesystem::copy_options::recursive);
  // Reference data is read-only; copies must be writable so tests can corrupt them.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(target)) {
    std::filesystem::permissions(entry.path(), std::filesystem::perms::owner_write, std::filesystem::perm_options::add);
  }
  std::filesystem::permissions(target, std::filesystem::perms::owner_write, std::filesystem::perm_options::add);
  return target.string();
}

v1::Model MetadataTestEnv::AddReferenceModel(const std::string& reference_case, const std::string& name) {
  const std::string source = GeneratedReference() + "/" + reference_case;
  const std::string dir = CopyDir(source, "models/" + name);
  // The reference folder holds more than a model directory; keep only what a checkpoint has.
  for (const char* extra : {"inputs.json", "logits.safetensors", "lora"}) std::filesystem::remove_all(dir + "/" + extra);
  v1::AddModelRequest request;
  request.set_name(name);
  request.mutable_local()->set_path(dir);
  v1::AddModelResponse response;
  grpc::Status status = models()->AddModel(Context().get(), request, &response);
  if (!status.ok()) throw std::runtime_error("AddModel(" + reference_case + "): " + status.error_message());
  return response.model();
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

}  // namespace tuneforge::testing
