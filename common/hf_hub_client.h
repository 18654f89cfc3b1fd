// Hugging Face Hub metadata client (libcurl): pins a revision to its commit sha, lists a commit's files and
// fetches small files or byte ranges, mapping Hub errors (gated, private, missing) to absl codes that say what to do.
#ifndef TUNEFORGE_COMMON_HF_HUB_CLIENT_H_
#define TUNEFORGE_COMMON_HF_HUB_CLIENT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tuneforge {

enum class RepoKind { kModel, kDataset };

// "model" or "dataset", for messages.
const char* RepoKindName(RepoKind kind);

struct HubFile {
  std::string path;     // relative to the repo root, '/'-separated
  int64_t size = 0;     // bytes of the real content (the LFS object for LFS files)
  std::string sha256;   // LFS sha256, empty for plain git files
  std::string blob_id;  // git blob sha1 (of the pointer file for LFS files)
  bool lfs = false;
};

struct HubRepoInfo {
  std::string repo_id;
  std::string sha;  // 40-hex commit the requested revision pointed at
  bool gated = false;
  bool is_private = false;
  std::vector<HubFile> files;
  // The README's YAML metadata as the Hub parses it ("cardData"), as JSON text; "" when the answer has none.
  std::string card_data;
};

struct HubClientOptions {
  std::string endpoint;  // empty -> $HF_ENDPOINT, else https://huggingface.co; trailing '/' stripped
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};  // whole request, redirects included
  int max_attempts = 4;  // total tries for 429 / 5xx / timeouts / connection errors
  std::chrono::milliseconds initial_backoff{200};  // doubled each retry, Retry-After (seconds) honoured, capped at 10 s
  // DownloadToWriter has no overall time limit (a 10 GB shard takes what it takes); an attempt that receives no byte
  // for this long is abandoned and retried, resuming where it stopped.
  std::chrono::milliseconds idle_timeout{30000};
};

// Receives a streamed body piece by piece, in order. A non-OK status stops the transfer and is returned as it is.
using HubBodyWriter = std::function<absl::Status(std::string_view bytes)>;

// Thread-safe: every call uses its own curl handle. The token is sent as a Bearer header only, and never
// appears in a returned message or a log line.
class HubClient {
 public:
  explicit HubClient(HubClientOptions options = {});

  const std::string& endpoint() const { return endpoint_; }

  // GET {endpoint}/api/{models|datasets}/{repo_id}/revision/{revision}?blobs=true ; revision "" means "main".
  absl::StatusOr<HubRepoInfo> GetRepoInfo(RepoKind kind, const std::string& repo_id, const std::string& revision,
                                          const std::string& token) const;

  // GET {endpoint}/api/{models|datasets}/{repo_id}/tree/{sha}?recursive=true, following Link rel="next" pages.
  // Files only (directories are skipped).
  absl::StatusOr<std::vector<HubFile>> ListTree(RepoKind kind, const std::string& repo_id, const std::string& sha,
                                                const std::string& token) const;

  // GET {endpoint}/[datasets/]{repo_id}/resolve/{sha}/{path}, following redirects (relative ones too).
  // A body over max_bytes -> RESOURCE_EXHAUSTED naming the file and the limit.
  absl::StatusOr<std::string> FetchFile(RepoKind kind, const std::string& repo_id, const std::string& sha,
                                        const std::string& path, const std::string& token,
                                        size_t max_bytes = 16u << 20) const;

  // The same URL with "Range: bytes=offset-(offset+length-1)". A range running past the end of the file returns
  // the bytes that exist; an offset at or past the end -> OUT_OF_RANGE. A server that ignores Range is handled.
  absl::StatusOr<std::string> FetchRange(RepoKind kind, const std::string& repo_id, const std::string& sha,
                                         const std::string& path, const std::string& token, uint64_t offset,
                                         uint64_t length) const;

  // Streams the resolve URL's bytes from `offset` to the end of the file into `write` ("Range: bytes=offset-" when
  // offset > 0), following redirects. 429 / 5xx / timeouts / idle_timeout without a byte / a connection dropped
  // mid-body are retried with backoff, each retry resuming after the last byte delivered; max_attempts bounds the
  // attempts in a row that deliver nothing. A server that answers 200 to a Range request is handled (the prefix is
  // skipped). `cancelled`, when set, is polled while connecting, streaming and backing off: true -> CANCELLED.
  // Returns the number of bytes given to `write`; an offset past the end of the file -> OUT_OF_RANGE.
  absl::StatusOr<uint64_t> DownloadToWriter(RepoKind kind, const std::string& repo_id, const std::string& sha,
                                            const std::string& path, const std::string& token, uint64_t offset,
                                            const HubBodyWriter& write,
                                            const std::function<bool()>& cancelled = nullptr) const;

  // {endpoint}/[datasets/]{repo_id}: the repo's page, where gated conditions are accepted.
  std::string RepoUrl(RepoKind kind, const std::string& repo_id) const;
  // {endpoint}/[datasets/]{repo_id}/resolve/{revision}/{path}, URL-encoded.
  std::string ResolveUrl(RepoKind kind, const std::string& repo_id, const std::string& revision,
                         const std::string& path) const;

 private:
  HubClientOptions options_;
  std::string endpoint_;
};

// "name" or "org/name": 1-96 chars per part, [A-Za-z0-9._-], no "--" or "..", not starting/ending with '-' or '.'.
// Otherwise INVALID_ARGUMENT naming `field`.
absl::Status ValidateRepoId(std::string_view repo_id, std::string_view field);

// A branch, tag or 40-hex sha: 1-255 chars, no "..", control chars, spaces or other characters git refuses in a
// ref name (~ ^ : ? * [ \), no leading/trailing/double '/'. Empty is allowed (means main).
absl::Status ValidateRevision(std::string_view revision, std::string_view field);

// The longest Hub token accepted, in bytes.
inline constexpr size_t kMaxHubTokenBytes = 1024;

// A Hub access token as it will travel in the Authorization header: at most kMaxHubTokenBytes of printable ASCII
// without spaces (empty is allowed: no token). Otherwise INVALID_ARGUMENT naming `field`, never quoting the token.
// Every HubClient call checks its token with it, so that no request field or variable can add a header line.
absl::Status ValidateHubToken(std::string_view token, std::string_view field);

// Percent-encodes everything but RFC 3986 unreserved characters ("refs/pr/1" -> "refs%2Fpr%2F1").
std::string UrlEncodeComponent(std::string_view s);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_HF_HUB_CLIENT_H_
