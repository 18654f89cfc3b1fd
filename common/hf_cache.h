// Downloads every file of a pinned Hub commit into the huggingface_hub cache layout (shared with Python tools and
// with other workers on the same cache), resuming, verifying and locking as it goes; HF_HUB_OFFLINE reads it only.
#ifndef TUNEFORGE_COMMON_HF_CACHE_H_
#define TUNEFORGE_COMMON_HF_CACHE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/hf_hub_client.h"

namespace tuneforge {

// The cache root as huggingface_hub picks it: $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub ('~' expanded).
std::string HubCacheDirFromEnv();
// True when HF_HUB_OFFLINE is 1 / ON / YES / TRUE (any case), as huggingface_hub reads it.
bool HubOfflineFromEnv();
// "models--org--name" / "datasets--org--name": the repo's folder under the cache root.
std::string HubRepoFolderName(RepoKind kind, const std::string& repo_id);

struct HubDownloadProgress {
  std::string file;              // repo path this report is about
  int64_t file_bytes_done = 0;   // bytes of `file` on disk (a resumed prefix counts)
  int64_t file_bytes_total = 0;
  bool file_finished = false;    // `file` is verified and linked (or was cached)
  int64_t bytes_done = 0;        // all selected files of the snapshot
  int64_t bytes_total = 0;
  int files_done = 0;
  int files_total = 0;
  int64_t bytes_received = 0;    // bytes received from the Hub by this download so far (all files, retries included)
};

struct HubDownloadOptions {
  std::string cache_dir;                // empty -> HubCacheDirFromEnv()
  bool offline = HubOfflineFromEnv();  // cache only, no request at all
  int parallel_files = 4;               // files downloaded at once (1..64)
  // fnmatch patterns over repo paths, as huggingface_hub's allow_patterns / ignore_patterns ('*' crosses '/', a
  // pattern ending in '/' means everything below). Empty allow: every file.
  std::vector<std::string> allow_patterns;
  std::vector<std::string> ignore_patterns;
  // Called from the download threads, one call at a time: at most every progress_interval per file, and once when
  // each file is finished.
  std::function<void(const HubDownloadProgress&)> progress;
  std::chrono::milliseconds progress_interval{250};
  // Polled from the download threads (make it thread-safe, e.g. read an atomic) while waiting for another worker's
  // lock, while streaming and while backing off: true stops the download with CANCELLED, leaving a resumable
  // blobs/<etag>.incomplete.
  std::function<bool()> cancelled;
  // Offline only: files the snapshot must hold (e.g. the revision's recorded file list). Empty: every file linked
  // under snapshots/<commit>/ must resolve to its blob. (DownloadSnapshot writes refs/<revision> only once every
  // file is in, so a branch or tag found there names a snapshot that was complete.)
  std::vector<HubFile> expected_files;
};

struct HubSnapshotFile {
  std::string path;    // repo path, '/'-separated; on disk at HubSnapshot::snapshot_dir + "/" + path
  int64_t size = 0;
  std::string sha256;  // of the content
  bool was_cached = false;  // already in the cache (or fetched by another worker meanwhile): not downloaded here
};

struct HubSnapshot {
  std::string repo_dir;      // <cache>/models--org--name
  std::string snapshot_dir;  // <repo_dir>/snapshots/<commit_sha>
  std::string commit_sha;
  std::vector<HubSnapshotFile> files;  // sorted by path
};

// Pins `revision` ("" = main) to its commit with one API request, then brings every selected file of that commit
// into the cache: blobs/<etag> (sha256 for LFS files, git blob sha1 otherwise) written as blobs/<etag>.incomplete
// under an exclusive lock .locks/<repo folder>/<etag>.lock, resumed with Range from what an earlier attempt left,
// hashed while streaming and checked against the Hub's size and sha256 / blob id (a mismatch is retried once from
// zero, then DATA_LOSS naming the file), fsynced and renamed; then snapshots/<commit>/<path> as a relative symlink
// and refs/<revision>. A blob already present with the right size is reused. With options.offline, the cache only
// (FindCachedSnapshot); a missing snapshot or file -> FAILED_PRECONDITION saying what is missing and what to do.
// The token goes to the Hub as a Bearer header and appears in no message or log line.
absl::StatusOr<HubSnapshot> DownloadSnapshot(const HubClient& client, RepoKind kind, const std::string& repo_id,
                                             const std::string& revision, const std::string& token,
                                             const HubDownloadOptions& options = {});

// The cached snapshot of (repo, revision) without any network: a 40-hex revision names the snapshot directly,
// anything else is read from refs/<revision>. Uses options.cache_dir, the patterns and expected_files.
// NOT_FOUND saying what is missing (ref, snapshot, file) when the cache does not hold it complete.
absl::StatusOr<HubSnapshot> FindCachedSnapshot(RepoKind kind, const std::string& repo_id, const std::string& revision,
                                               const HubDownloadOptions& options = {});

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_HF_CACHE_H_
