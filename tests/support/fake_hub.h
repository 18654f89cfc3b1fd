// A fake Hugging Face Hub for tests: a real HTTP server on 127.0.0.1 serving the Hub's API, resolve URLs (with
// Range), gated and private repos, injected failures and relative redirects, the way huggingface.co answers them.
#ifndef TUNEFORGE_TESTS_SUPPORT_FAKE_HUB_H_
#define TUNEFORGE_TESTS_SUPPORT_FAKE_HUB_H_

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/hf_hub_client.h"

namespace tuneforge::testing {

// Serves:
//   GET /api/{models,datasets}/{repo}/revision/{rev}[?blobs=true]   repo info with siblings
//   GET /api/{models,datasets}/{repo}/tree/{rev}[/{dir}]?recursive=true[&cursor=N]  tree (paged: SetTreePageSize)
//   GET|HEAD /{repo}/resolve/{rev}/{path}, /datasets/{repo}/resolve/{rev}/{path}  file bytes, Range, X-Repo-Commit,
//       ETag, X-Linked-Etag / X-Linked-Size (LFS files)
//   GET|HEAD /blobs/{oid}   target of the relative redirects (RedirectResolveRelative)
// *.safetensors, *.bin, *.parquet, *.gguf and files over 10 MiB are LFS files (lfs.sha256 = sha256 of the bytes,
// blobId = git blob sha1 of the LFS pointer file); others are plain git blobs (blobId = git blob sha1).
// Access rules follow the real Hub:
//   missing repo: 401 RepoNotFound without a token, 404 RepoNotFound with one;
//   private repo: like a missing one without a token, 401 (no X-Error-Code) with a token not allowed;
//   gated repo: API and tree answer (with "gated": "auto"); resolve answers 401 GatedRepo without a token and
//   403 GatedRepo with a token not allowed.
class FakeHub {
 public:
  FakeHub();   // listens on 127.0.0.1 on a free port in a background thread; ready when the constructor returns
  ~FakeHub();  // stops the server and joins
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;

  std::string endpoint() const;  // "http://127.0.0.1:PORT"

  // Creates or updates a repo: a new commit (40-hex sha derived from the content and a counter) containing exactly
  // `files` (relative path -> bytes); `branch` now points at it; older commits stay resolvable by sha.
  std::string AddCommit(RepoKind kind, const std::string& repo_id, const std::map<std::string, std::string>& files,
                        const std::string& branch = "main");
  // Same, reading every regular file under `dir` recursively (paths relative to `dir`, '/'-separated).
  // An unreadable directory fails the current test and returns "".
  std::string AddCommitFromDir(RepoKind kind, const std::string& repo_id, const std::string& dir,
                               const std::string& branch = "main");

  // The dataset card's metadata of `branch`'s newest commit, served as "cardData" in the repo API (the real Hub parses
  // it from the README's YAML; here the test gives the JSON).
  void SetCardData(RepoKind kind, const std::string& repo_id, const std::string& card_json,
                   const std::string& branch = "main");
  void SetGated(const std::string& repo_id, bool gated);
  void SetPrivate(const std::string& repo_id, bool is_private);
  void AllowToken(const std::string& token);  // tokens that may read private and gated repos

  // The next `count` requests answer http_status (429 comes with Retry-After: 0).
  void FailNextRequests(int http_status, int count);
  // The next `count` requests wait `delay` before answering normally (for client timeouts).
  void StallNextRequests(int count, std::chrono::milliseconds delay);
  // Resolve URLs answer 302 with a relative Location (/blobs/{oid}) that serves the bytes.
  void RedirectResolveRelative(bool on);
  // Resolve URLs answer 200 with the whole file even when a Range is asked for.
  void IgnoreRange(bool on);
  // The next `count` resolve requests (not API requests) answer http_status (429 comes with Retry-After: 0).
  void FailNextResolves(int http_status, int count);
  // The next `count` file bodies (resolve and /blobs answers) send their first `bytes` bytes, then the connection is
  // closed although Content-Length announced the whole body: a download cut mid-file.
  void DropNextBodies(int count, size_t bytes);
  // The next `count` file bodies have their middle byte flipped: a corrupted transfer.
  void CorruptNextBodies(int count);
  // File bodies go out in pieces of `chunk` bytes with `delay` before each piece after the first (chunk 0: off).
  void ThrottleBodies(size_t chunk, std::chrono::milliseconds delay);
  // Tree listings return at most `entries` entries per page with a Link: rel="next" header (0: one page).
  void SetTreePageSize(int entries);
  // Requests for exactly `path` (before any '?', as sent, e.g. "/api/models/org/x/revision/main") answer `status`
  // with `body`, whatever the repos hold: for malformed or unexpected server answers.
  void OverrideResponse(const std::string& path, int status, const std::string& content_type, const std::string& body);

  int request_count() const;
  std::vector<std::string> authorization_headers() const;  // every Authorization header value received, in order
  std::vector<std::string> request_targets() const;        // "METHOD /path?query" of every request, in order
  // {"METHOD /path", Range header value} of every request that carried a Range header, in order.
  std::vector<std::pair<std::string, std::string>> range_requests() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace tuneforge::testing

#endif  // TUNEFORGE_TESTS_SUPPORT_FAKE_HUB_H_
