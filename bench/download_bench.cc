// Downloads one Hub repo into a fresh huggingface_hub cache with DownloadSnapshot (size and sha256 checked while
// streaming, blob fsynced) and prints the seconds it took; bench/download_bench.sh compares it with curl + sha256sum.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/hf_cache.h"
#include "common/hf_hub_client.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s ENDPOINT REPO_ID CACHE_DIR [PARALLEL_FILES]\n", argv[0]);
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  tuneforge::HubClientOptions client_options;
  client_options.endpoint = argv[1];
  const tuneforge::HubClient client(client_options);
  tuneforge::HubDownloadOptions options;
  options.cache_dir = argv[3];
  options.offline = false;
  if (argc > 4) options.parallel_files = std::atoi(argv[4]);

  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<tuneforge::HubSnapshot> snapshot =
      tuneforge::DownloadSnapshot(client, tuneforge::RepoKind::kModel, argv[2], "main", "", options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!snapshot.ok()) {
    std::fprintf(stderr, "download_bench: %s\n", snapshot.status().ToString().c_str());
    return 1;
  }
  int64_t bytes = 0;
  for (const tuneforge::HubSnapshotFile& f : snapshot->files) {
    bytes += f.size;
    std::printf("%s  %s\n", f.sha256.c_str(), f.path.c_str());
  }
  std::printf("download_bench: %zu files, %lld bytes in %.3f s (%.0f MB/s), sha256 verified, into %s\n",
              snapshot->files.size(), static_cast<long long>(bytes), seconds, bytes / seconds / 1e6,
              snapshot->snapshot_dir.c_str());
  return 0;
}
