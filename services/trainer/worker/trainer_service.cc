// Trainer status and prefetch.
#include "services/trainer/worker/trainer_service.h"

#include <openssl/crypto.h>

#include <filesystem>

#include "common/grpc_status.h"
#include "common/hf_cache.h"

namespace tuneforge {

namespace {

int64_t DirectoryBytes(const std::string& dir) {
  std::error_code ec;
  int64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) total += static_cast<int64_t>(it->file_size(ec));
  }
  return total;
}

}  // namespace

grpc::Status TrainerService::Authorize(grpc::ServerContext* context) const {
  auto it = context->client_metadata().find("authorization");
  const std::string expected = "Bearer " + options_.worker_token;
  if (it == context->client_metadata().end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing authorization metadata; send \"Bearer <worker token>\" (the worker-token file)");
  }
  const std::string got(it->second.data(), it->second.size());
  if (got.size() != expected.size() || CRYPTO_memcmp(got.data(), expected.data(), got.size()) != 0) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "the token does not match this trainer's worker token");
  }
  return grpc::Status::OK;
}

grpc::Status TrainerService::GetTrainerStatus(grpc::ServerContext* context,
                                              const internal::v1::GetTrainerStatusRequest*,
                                              internal::v1::GetTrainerStatusResponse* response) {
  if (grpc::Status auth = Authorize(context); !auth.ok()) return auth;
  const WorkerStatus status = worker_.Status();
  response->set_worker_id(options_.worker_id);
  response->set_state(status.running ? "running" : "idle");
  response->set_job_id(status.job_id);
  *response->mutable_progress() = status.last.progress();
  response->set_device(device_);
  response->set_threads(threads_);
  const std::string cache = options_.runner.cache_dir.empty() ? HubCacheDirFromEnv() : options_.runner.cache_dir;
  response->set_cache_dir(cache);
  response->set_cache_bytes(DirectoryBytes(cache));
  response->mutable_start_time()->set_seconds(absl::ToUnixSeconds(start_));
  return grpc::Status::OK;
}

grpc::Status TrainerService::Prefetch(grpc::ServerContext* context, const internal::v1::PrefetchRequest* request,
                                      internal::v1::PrefetchResponse* response) {
  if (grpc::Status auth = Authorize(context); !auth.ok()) return auth;
  RepoKind kind = RepoKind::kModel;
  if (request->repo_type() == "dataset") {
    kind = RepoKind::kDataset;
  } else if (!request->repo_type().empty() && request->repo_type() != "model") {
    return ToGrpcStatus(absl::InvalidArgumentError("repo_type must be \"model\" or \"dataset\""));
  }
  if (absl::Status s = ValidateRepoId(request->repo_id(), "repo_id"); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = ValidateRevision(request->revision(), "revision"); !s.ok()) return ToGrpcStatus(s);
  HubDownloadOptions download;
  download.cache_dir = options_.runner.cache_dir;
  download.cancelled = [context] { return context->IsCancelled(); };
  absl::StatusOr<HubSnapshot> snapshot = DownloadSnapshot(*options_.runner.hub, kind, request->repo_id(),
                                                          request->revision(), options_.runner.hf_token, download);
  if (!snapshot.ok()) return ToGrpcStatus(snapshot.status());
  int64_t downloaded = 0;
  for (const HubSnapshotFile& f : snapshot->files) downloaded += f.was_cached ? 0 : f.size;
  response->set_commit_sha(snapshot->commit_sha);
  response->set_snapshot_dir(snapshot->snapshot_dir);
  response->set_bytes_downloaded(downloaded);
  response->set_files(static_cast<int>(snapshot->files.size()));
  return grpc::Status::OK;
}

}  // namespace tuneforge
