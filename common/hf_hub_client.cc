// Hugging Face Hub metadata client: one libcurl easy handle per request, retries with backoff for transient
// failures, and Hub error headers (X-Error-Code) turned into absl codes with messages that say what to do.
#include "common/hf_hub_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/json_limits.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace tuneforge {
namespace {

constexpr char kDefaultEndpoint[] = "https://huggingface.co";
constexpr std::chrono::milliseconds kMaxBackoff{10000};
constexpr size_t kMaxApiBody = 256u << 20;   // a repo listing with many thousands of files stays far below
constexpr size_t kMaxErrorBody = 64u << 10;  // error bodies are only read for their message
constexpr int kMaxTreePages = 100000;

void EnsureCurlInitialized() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool IsHex(absl::string_view s, size_t len) {
  return s.size() == len &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

// User input echoed in messages: control bytes escaped, long values shortened.
std::string Quote(absl::string_view s) {
  constexpr size_t kMax = 120;
  std::string shown = absl::CHexEscape(s.substr(0, kMax));
  if (s.size() > kMax) absl::StrAppend(&shown, "...");
  return absl::StrCat("'", shown, "'");
}

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; the final response's only
  std::string body;
};

std::string Header(const HttpResponse& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string() : it->second;
}

// What one transfer collects; the callbacks below fill it.
struct Transfer {
  HttpResponse response;
  size_t max_bytes = kMaxApiBody;
  bool too_large = false;
  // FetchRange against a server that answers 200 with the whole file: keep [skip, skip + want) only.
  bool range_requested = false;
  uint64_t skip = 0;
  uint64_t want = 0;
  uint64_t seen = 0;
  bool range_complete = false;
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  absl::string_view line(data, n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  if (absl::StartsWith(line, "HTTP/")) {
    // A new response (after a redirect or a 100 Continue): only the last one's headers and body count.
    t->response.headers.clear();
    t->response.body.clear();
    t->seen = 0;
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    int code = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &code)) t->response.status = code;
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return n;
  std::string name = absl::AsciiStrToLower(std::string(absl::StripAsciiWhitespace(line.substr(0, colon))));
  t->response.headers[name] = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  return n;
}

// What every Hub transfer sets: URL, headers, redirects over http(s) only, timeouts, errors, header parsing.
void SetTransferOptions(CURL* c, const std::string& url, curl_slist* headers, std::chrono::milliseconds connect_timeout,
                        char* error_buffer) {
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "tuneforge/0.1 (libcurl)");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  std::string& body = t->response.body;
  const long status = t->response.status;
  if (status >= 300) {
    body.append(data, std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, body.size())));
    return n;
  }
  if (t->range_requested && status == 200) {
    // The server ignored Range: slice the window out of the full body and stop once it is complete.
    const uint64_t begin = t->seen;
    const uint64_t end = t->seen + n;
    t->seen = end;
    const uint64_t from = std::max(begin, t->skip);
    const uint64_t to = std::min(end, t->skip + t->want);
    if (from < to) body.append(data + (from - begin), static_cast<size_t>(to - from));
    if (body.size() >= t->want) {
      t->range_complete = true;
      return 0;  // aborts the transfer; treated as success
    }
    return n;
  }
  if (body.size() + n > t->max_bytes) {
    t->too_large = true;
    return 0;
  }
  body.append(data, n);
  return n;
}

bool IsRetryableCurlError(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

// Everything a request needs besides the URL; also the context for error messages.
struct RequestSpec {
  RepoKind kind = RepoKind::kModel;
  std::string repo_id;
  std::string revision;  // as the caller named it ("" shown as main)
  std::string file;      // for resolve requests
  std::string url;       // absolute
  const std::string* token = nullptr;
  size_t max_bytes = kMaxApiBody;
  bool has_range = false;
  uint64_t range_offset = 0;
  uint64_t range_length = 0;
};

// A request for one file of a commit (a resolve URL).
RequestSpec FileRequest(RepoKind kind, const std::string& repo_id, const std::string& sha, const std::string& path,
                        const std::string& token, std::string url) {
  RequestSpec spec;
  spec.kind = kind;
  spec.repo_id = repo_id;
  spec.revision = sha;
  spec.file = path;
  spec.token = &token;
  spec.url = std::move(url);
  return spec;
}

struct CurlHandleDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct CurlListDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

class Requester {
 public:
  Requester(const HubClientOptions& options, const std::string& endpoint) : options_(options), endpoint_(endpoint) {}

  // Runs the request with retries. Returns the final HTTP response (any status but 429/5xx, which are retried),
  // or UNAVAILABLE once the attempts are spent, or RESOURCE_EXHAUSTED for a body over max_bytes.
  absl::StatusOr<HttpResponse> Execute(const RequestSpec& spec) const {
    const int attempts = std::max(1, options_.max_attempts);
    std::string last_reason;
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      Transfer transfer;
      transfer.max_bytes = spec.max_bytes;
      if (spec.has_range) {
        transfer.range_requested = true;
        transfer.skip = spec.range_offset;
        transfer.want = spec.range_length;
      }
      char error_buffer[CURL_ERROR_SIZE] = {0};
      const CURLcode code = PerformOnce(spec, &transfer, error_buffer);
      std::chrono::milliseconds retry_after{-1};
      if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && (transfer.too_large || transfer.range_complete))) {
        if (transfer.too_large) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "'", spec.file, "' in ", RepoKindName(spec.kind), " repository '", spec.repo_id, "' is larger than the ",
              spec.max_bytes, "-byte limit for fetching a file into memory; download it to disk instead"));
        }
        const long status = transfer.response.status;
        if (status != 429 && status < 500) return std::move(transfer.response);
        last_reason = absl::StrCat("HTTP ", status);
        int seconds = 0;
        if (absl::SimpleAtoi(Header(transfer.response, "retry-after"), &seconds) && seconds >= 0) {
          retry_after = std::chrono::milliseconds(static_cast<int64_t>(seconds) * 1000);
        }
      } else if (IsRetryableCurlError(code)) {
        last_reason = code == CURLE_OPERATION_TIMEDOUT
                          ? absl::StrCat("timed out: ", error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code))
                          : std::string(error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code));
      } else {
        return absl::UnavailableError(absl::StrCat("request to the Hugging Face Hub at ", endpoint_, " failed: ",
                                                   error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code),
                                                   "; check HF_ENDPOINT and the network"));
      }
      if (attempt == attempts) break;
      std::chrono::milliseconds delay = options_.initial_backoff * (int64_t{1} << std::min(attempt - 1, 20));
      if (retry_after.count() >= 0) delay = retry_after;
      delay = std::min(delay, kMaxBackoff);
      spdlog::warn("Hugging Face Hub {} {}: {}; retrying in {} ms (attempt {}/{})",
                   spec.has_range ? "range request" : "request", PathOf(spec.url), last_reason, delay.count(),
                   attempt + 1, attempts);
      std::this_thread::sleep_for(delay);
    }
    return absl::UnavailableError(absl::StrCat("Hugging Face Hub at ", endpoint_, " is unavailable (", last_reason,
                                               " after ", attempts, attempts == 1 ? " attempt" : " attempts",
                                               "); retry later"));
  }

  // The URL without scheme and host, for messages and logs.
  std::string PathOf(const std::string& url) const {
    if (absl::StartsWith(url, endpoint_)) return url.substr(endpoint_.size());
    const size_t scheme = url.find("://");
    const size_t slash = scheme == std::string::npos ? std::string::npos : url.find('/', scheme + 3);
    return slash == std::string::npos ? url : url.substr(slash);
  }

 private:
  CURLcode PerformOnce(const RequestSpec& spec, Transfer* transfer, char* error_buffer) const {
    std::unique_ptr<CURL, CurlHandleDeleter> curl(curl_easy_init());
    if (!curl) return CURLE_FAILED_INIT;
    curl_slist* raw_headers = curl_slist_append(nullptr, "Accept: */*");
    std::unique_ptr<curl_slist, CurlListDeleter> headers(raw_headers);
    if (spec.token != nullptr && !spec.token->empty()) {
      // curl drops this header when a redirect leaves the host (e.g. to an LFS CDN), which is what we want.
      std::string auth = "Authorization: Bearer " + *spec.token;
      headers.release();
      raw_headers = curl_slist_append(raw_headers, auth.c_str());
      headers.reset(raw_headers);
    }
    if (spec.has_range) {
      std::string range = absl::StrCat("Range: bytes=", spec.range_offset, "-",
                                       spec.range_offset + spec.range_length - 1);
      headers.release();
      raw_headers = curl_slist_append(raw_headers, range.c_str());
      headers.reset(raw_headers);
    }
    CURL* c = curl.get();
    SetTransferOptions(c, spec.url, headers.get(), options_.connect_timeout, error_buffer);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout.count()));
    curl_easy_setopt(c, CURLOPT_HEADERDATA, transfer);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, transfer);
    const CURLcode code = curl_easy_perform(c);
    long status = 0;
    if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status != 0) {
      transfer->response.status = status;
    }
    return code;
  }

  const HubClientOptions& options_;
  const std::string& endpoint_;
};

// One attempt of a streamed download (DownloadToWriter): the body goes to the caller's writer as it arrives.
struct StreamState {
  Transfer head;  // status, headers and error body of the current response (OnHeader fills it)
  const HubBodyWriter* write = nullptr;
  const std::function<bool()>* cancelled = nullptr;
  uint64_t want_from = 0;  // the absolute offset this attempt asked for
  uint64_t delivered = 0;  // bytes given to `write` by this attempt
  bool range_checked = false;
  std::string bad_range;   // a Content-Range that does not start where we asked
  absl::Status write_status;
  bool cancel_hit = false;
  bool idle_hit = false;
  curl_off_t last_dlnow = -1;
  std::chrono::steady_clock::time_point last_activity;
  std::chrono::milliseconds idle_timeout{0};
};

bool IsCancelled(const std::function<bool()>* cancelled) {
  return cancelled != nullptr && *cancelled && (*cancelled)();
}

size_t OnStreamBody(char* data, size_t size, size_t count, void* user) {
  auto* s = static_cast<StreamState*>(user);
  const size_t n = size * count;
  const long status = s->head.response.status;
  if (status != 200 && status != 206) {
    std::string& body = s->head.response.body;
    body.append(data, std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, body.size())));
    return n;
  }
  if (IsCancelled(s->cancelled)) {
    s->cancel_hit = true;
    return 0;
  }
  absl::string_view piece(data, n);
  if (status == 206 && !s->range_checked) {
    s->range_checked = true;
    // "bytes START-END/TOTAL" must start where we asked, or the bytes would land at the wrong offset.
    const std::string content_range = Header(s->head.response, "content-range");
    absl::string_view v = content_range;
    uint64_t start = 0;
    const bool starts_right = content_range.empty() ||
                              (absl::ConsumePrefix(&v, "bytes ") && v.find('-') != absl::string_view::npos &&
                               absl::SimpleAtoi(v.substr(0, v.find('-')), &start) && start == s->want_from);
    if (!starts_right) {
      s->bad_range = content_range;
      return 0;
    }
  }
  if (status == 200 && s->want_from > 0) {
    // The server ignored Range and sends the whole file: drop what we already have.
    const uint64_t begin = s->head.seen;
    s->head.seen += n;
    if (s->head.seen <= s->want_from) return n;
    if (begin < s->want_from) piece.remove_prefix(static_cast<size_t>(s->want_from - begin));
  }
  absl::Status written = (*s->write)(std::string_view(piece.data(), piece.size()));
  if (!written.ok()) {
    s->write_status = std::move(written);
    return 0;
  }
  s->delivered += piece.size();
  return n;
}

// Polled by libcurl while the transfer runs (about once a second when nothing arrives): cancel and idle checks.
int OnStreamProgress(void* user, curl_off_t /*dltotal*/, curl_off_t dlnow, curl_off_t /*ultotal*/,
                     curl_off_t /*ulnow*/) {
  auto* s = static_cast<StreamState*>(user);
  if (IsCancelled(s->cancelled)) {
    s->cancel_hit = true;
    return 1;
  }
  const auto now = std::chrono::steady_clock::now();
  if (dlnow != s->last_dlnow) {
    s->last_dlnow = dlnow;
    s->last_activity = now;
  } else if (now - s->last_activity > s->idle_timeout) {
    s->idle_hit = true;
    return 1;
  }
  return 0;
}

CURLcode StreamOnce(const HubClientOptions& options, const std::string& url, const std::string& token,
                    StreamState* s, char* error_buffer) {
  std::unique_ptr<CURL, CurlHandleDeleter> curl(curl_easy_init());
  if (!curl) return CURLE_FAILED_INIT;
  std::unique_ptr<curl_slist, CurlListDeleter> headers(curl_slist_append(nullptr, "Accept: */*"));
  if (!token.empty()) {
    // As for the other requests: libcurl does not forward this header when a redirect leaves the host.
    const std::string auth = "Authorization: Bearer " + token;
    curl_slist* grown = curl_slist_append(headers.get(), auth.c_str());
    if (grown == nullptr) return CURLE_OUT_OF_MEMORY;
  }
  CURL* c = curl.get();
  const std::string range = absl::StrCat(s->want_from, "-");
  SetTransferOptions(c, url, headers.get(), options.connect_timeout, error_buffer);
  if (s->want_from > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024L);  // fewer, larger writes for multi-GB shards
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &s->head);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnStreamBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &OnStreamProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
  s->last_activity = std::chrono::steady_clock::now();
  const CURLcode code = curl_easy_perform(c);
  long status = 0;
  if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status != 0) s->head.response.status = status;
  return code;
}

// Sleeps `delay` in short slices; false when `cancelled` turned true meanwhile.
bool SleepUnlessCancelled(std::chrono::milliseconds delay, const std::function<bool()>* cancelled) {
  const auto until = std::chrono::steady_clock::now() + delay;
  while (std::chrono::steady_clock::now() < until) {
    if (IsCancelled(cancelled)) return false;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(20), until - std::chrono::steady_clock::now()));
  }
  return !IsCancelled(cancelled);
}

std::string ShownRevision(const std::string& revision) { return revision.empty() ? "main" : revision; }

constexpr char kTokenHint[] = "pass one in the request's token field or set HF_TOKEN on the server";

// Turns a non-2xx response into a status whose message says what the user should do.
absl::Status StatusFromResponse(const HttpResponse& r, const RequestSpec& spec, const std::string& endpoint,
                                const std::string& url_path) {
  const std::string code = Header(r, "x-error-code");
  const std::string server_message = Header(r, "x-error-message");
  const bool token_sent = spec.token != nullptr && !spec.token->empty();
  const std::string kind = std::string(RepoKindName(spec.kind));
  const std::string repo_page =
      absl::StrCat(endpoint, spec.kind == RepoKind::kDataset ? "/datasets/" : "/", spec.repo_id);
  const std::string detail = server_message.empty() ? "" : absl::StrCat(": ", server_message);

  if (code == "GatedRepo") {
    return absl::PermissionDeniedError(absl::StrCat(
        "'", spec.repo_id, "' is a gated repository: accept its conditions at ", repo_page,
        " with the account whose token you use",
        token_sent ? "" : absl::StrCat("; no token was sent: ", kTokenHint), " (HTTP ", r.status, ")"));
  }
  if (code == "RepoNotFound") {
    // The Hub answers 401 RepoNotFound to anonymous requests for private and missing repos alike.
    return absl::NotFoundError(absl::StrCat(
        kind, " repository '", spec.repo_id, "' not found (or it is private and the token cannot read it): ",
        token_sent ? "check the repo id and that the token's account can read it"
                   : absl::StrCat("check the repo id; if it is private, ", kTokenHint)));
  }
  if (r.status == 401) {
    if (token_sent) {
      return absl::UnauthenticatedError(absl::StrCat(
          kind, " repository '", spec.repo_id, "' requires a Hugging Face token and the one sent was rejected (HTTP 401",
          detail, "): pass a valid one in the request's token field or set HF_TOKEN on the server"));
    }
    return absl::UnauthenticatedError(absl::StrCat(kind, " repository '", spec.repo_id,
                                                   "' requires a Hugging Face token: ", kTokenHint));
  }
  if (r.status == 403) {
    return absl::PermissionDeniedError(absl::StrCat(
        "access to ", kind, " repository '", spec.repo_id, "' was refused (HTTP 403", detail,
        token_sent ? "): check that the token's account can read it at " : "): it needs a token; ",
        token_sent ? repo_page : kTokenHint));
  }
  if (code == "RevisionNotFound") {
    return absl::NotFoundError(absl::StrCat("revision '", ShownRevision(spec.revision), "' not found in ", kind,
                                            " repository '", spec.repo_id,
                                            "': name an existing branch, tag or 40-hex commit sha"));
  }
  if (code == "EntryNotFound") {
    return absl::NotFoundError(absl::StrCat("file '", spec.file, "' not found in ", kind, " repository '", spec.repo_id,
                                            "' at revision '", ShownRevision(spec.revision),
                                            "': check the file name against the repository's file list"));
  }
  if (r.status == 404) {
    return absl::NotFoundError(absl::StrCat("'", url_path, "' not found on the Hugging Face Hub at ", endpoint,
                                            " (HTTP 404", detail,
                                            "): check the repo id and kind, and that HF_ENDPOINT points at a Hub"));
  }
  if (r.status == 416) {
    return absl::OutOfRangeError(absl::StrCat("byte range ", spec.range_offset, "+", spec.range_length,
                                              " is past the end of '", spec.file, "' in ", kind, " repository '",
                                              spec.repo_id, "' (HTTP 416)"));
  }
  if (r.status == 400 || r.status == 422) {
    return absl::InvalidArgumentError(absl::StrCat("the Hugging Face Hub rejected the request for '", url_path,
                                                   "' (HTTP ", r.status, detail, "): check the repo id and revision"));
  }
  return absl::FailedPreconditionError(absl::StrCat("unexpected HTTP ", r.status, " from the Hugging Face Hub at ",
                                                    endpoint, " for '", url_path, "'", detail,
                                                    "; check HF_ENDPOINT and try again"));
}

absl::Status DataLoss(const std::string& endpoint, const std::string& url_path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("unexpected response from the Hub at ", endpoint, " for '", url_path, "': ",
                                          what, "; check that HF_ENDPOINT points at a Hugging Face Hub"));
}

// The token must never reach a message, even if a server echoes it back.
absl::Status Redact(absl::Status status, const std::string& token) {
  if (status.ok() || token.empty() || !absl::StrContains(status.message(), token)) return status;
  return absl::Status(status.code(), absl::StrReplaceAll(status.message(), {{token, "<redacted>"}}));
}
template <typename T>
absl::StatusOr<T> Redact(absl::StatusOr<T> result, const std::string& token) {
  if (result.ok()) return result;
  return Redact(result.status(), token);
}

absl::Status ValidateFilePath(const std::string& path) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("file path ", Quote(path), " is not a repository path: ", why, "; use e.g. 'config.json'"));
  };
  if (path.empty()) return bad("it is empty");
  if (path.size() > 1024) return bad("it is longer than 1024 characters");
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad("it contains control characters");
    if (c == '\\') return bad("it contains '\\'");
  }
  for (absl::string_view segment : absl::StrSplit(path, '/')) {
    if (segment.empty()) return bad("it has an empty segment (leading, trailing or double '/')");
    if (segment == "." || segment == "..") return bad("it has a '.' or '..' segment");
  }
  return absl::OkStatus();
}

std::string EncodePath(const std::string& path) {
  std::vector<std::string> parts;
  for (absl::string_view segment : absl::StrSplit(path, '/')) parts.push_back(UrlEncodeComponent(std::string_view(segment.data(), segment.size())));
  return absl::StrJoin(parts, "/");
}

const char* ApiCollection(RepoKind kind) { return kind == RepoKind::kDataset ? "datasets" : "models"; }

// Reads lfs.sha256 (siblings) or lfs.oid (tree) and lfs.size into `file`.
absl::Status ReadLfs(const nlohmann::json& lfs, const char* sha_key, HubFile* file) {
  if (!lfs.is_object()) return absl::InvalidArgumentError("'lfs' is not an object");
  auto sha = lfs.find(sha_key);
  if (sha == lfs.end() || !sha->is_string() || !IsHex(sha->get<std::string>(), 64)) {
    return absl::InvalidArgumentError(absl::StrCat("lfs.", sha_key, " of '", file->path, "' is not a sha256"));
  }
  file->sha256 = absl::AsciiStrToLower(sha->get<std::string>());
  file->lfs = true;
  auto size = lfs.find("size");
  if (size != lfs.end()) {
    if (!size->is_number_integer() || size->get<int64_t>() < 0) {
      return absl::InvalidArgumentError(absl::StrCat("lfs.size of '", file->path, "' is not a byte count"));
    }
    file->size = size->get<int64_t>();
  }
  return absl::OkStatus();
}

absl::StatusOr<HubRepoInfo> ParseRepoInfo(const std::string& body, const std::string& repo_id) {
  RETURN_IF_ERROR(CheckJsonDepth(body, kMaxJsonDepth, "the body"));
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("the body is not JSON");
  if (!doc.is_object()) return absl::InvalidArgumentError("the body is not a JSON object");
  try {
    HubRepoInfo info;
    info.repo_id = doc.value("id", repo_id);
    auto sha = doc.find("sha");
    if (sha == doc.end() || !sha->is_string() || !IsHex(sha->get<std::string>(), 40)) {
      return absl::InvalidArgumentError("'sha' is missing or not a 40-hex commit sha");
    }
    info.sha = absl::AsciiStrToLower(sha->get<std::string>());
    if (auto p = doc.find("private"); p != doc.end() && p->is_boolean()) info.is_private = p->get<bool>();
    if (auto g = doc.find("gated"); g != doc.end()) {
      // false, or the approval mode ("auto" / "manual").
      info.gated = (g->is_boolean() && g->get<bool>()) || (g->is_string() && !g->get<std::string>().empty());
    }
    if (auto card = doc.find("cardData"); card != doc.end() && card->is_object()) info.card_data = card->dump();
    auto siblings = doc.find("siblings");
    if (siblings == doc.end() || !siblings->is_array()) {
      return absl::InvalidArgumentError("'siblings' is missing or not a list");
    }
    for (const auto& s : *siblings) {
      HubFile file;
      auto name = s.find("rfilename");
      if (!s.is_object() || name == s.end() || !name->is_string()) {
        return absl::InvalidArgumentError("a sibling has no 'rfilename'");
      }
      file.path = name->get<std::string>();
      if (auto size = s.find("size"); size != s.end() && size->is_number_integer()) file.size = size->get<int64_t>();
      if (auto blob = s.find("blobId"); blob != s.end() && blob->is_string()) file.blob_id = blob->get<std::string>();
      if (auto lfs = s.find("lfs"); lfs != s.end() && !lfs->is_null()) RETURN_IF_ERROR(ReadLfs(*lfs, "sha256", &file));
      info.files.push_back(std::move(file));
    }
    return info;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
}

absl::Status ParseTreePage(const std::string& body, std::vector<HubFile>* files) {
  RETURN_IF_ERROR(CheckJsonDepth(body, kMaxJsonDepth, "the body"));
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("the body is not JSON");
  if (!doc.is_array()) return absl::InvalidArgumentError("the body is not a JSON list");
  try {
    for (const auto& entry : doc) {
      if (!entry.is_object()) return absl::InvalidArgumentError("a tree entry is not an object");
      const std::string type = entry.value("type", "");
      if (type == "directory") continue;
      if (type != "file") return absl::InvalidArgumentError(absl::StrCat("tree entry type '", type, "' is unknown"));
      HubFile file;
      auto path = entry.find("path");
      if (path == entry.end() || !path->is_string()) return absl::InvalidArgumentError("a tree entry has no 'path'");
      file.path = path->get<std::string>();
      if (auto size = entry.find("size"); size != entry.end() && size->is_number_integer()) {
        file.size = size->get<int64_t>();
      }
      if (auto oid = entry.find("oid"); oid != entry.end() && oid->is_string()) file.blob_id = oid->get<std::string>();
      if (auto lfs = entry.find("lfs"); lfs != entry.end() && !lfs->is_null()) RETURN_IF_ERROR(ReadLfs(*lfs, "oid", &file));
      files->push_back(std::move(file));
    }
    return absl::OkStatus();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
}

// The target of `Link: <url>; rel="next"`, or "".
std::string NextLink(const std::string& link) {
  for (absl::string_view part : absl::StrSplit(link, ',')) {
    part = absl::StripAsciiWhitespace(part);
    const size_t open = part.find('<');
    const size_t close = part.find('>');
    if (open != 0 || close == absl::string_view::npos) continue;
    absl::string_view params = part.substr(close + 1);
    std::string lowered = absl::AsciiStrToLower(std::string(params));
    if (absl::StrContains(lowered, "rel=\"next\"") || absl::StrContains(lowered, "rel=next")) {
      return std::string(part.substr(1, close - 1));
    }
  }
  return "";
}

absl::Status ValidateCall(const std::string& repo_id, const std::string& revision, const std::string& token) {
  RETURN_IF_ERROR(ValidateRepoId(repo_id, "repo_id"));
  RETURN_IF_ERROR(ValidateRevision(revision, "revision"));
  // The token becomes an HTTP header line: a CR or LF in it would add headers of the caller's choosing.
  return ValidateHubToken(token, "token");
}

}  // namespace

const char* RepoKindName(RepoKind kind) { return kind == RepoKind::kDataset ? "dataset" : "model"; }

std::string UrlEncodeComponent(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

HubClient::HubClient(HubClientOptions options) : options_(std::move(options)) {
  EnsureCurlInitialized();
  endpoint_ = options_.endpoint;
  if (endpoint_.empty()) {
    const char* env = std::getenv("HF_ENDPOINT");
    endpoint_ = env != nullptr && *env != '\0' ? env : kDefaultEndpoint;
  }
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
}

std::string HubClient::RepoUrl(RepoKind kind, const std::string& repo_id) const {
  return absl::StrCat(endpoint_, kind == RepoKind::kDataset ? "/datasets/" : "/", repo_id);
}

std::string HubClient::ResolveUrl(RepoKind kind, const std::string& repo_id, const std::string& revision,
                                  const std::string& path) const {
  return absl::StrCat(RepoUrl(kind, repo_id), "/resolve/", UrlEncodeComponent(ShownRevision(revision)), "/",
                      EncodePath(path));
}

absl::StatusOr<HubRepoInfo> HubClient::GetRepoInfo(RepoKind kind, const std::string& repo_id,
                                                   const std::string& revision, const std::string& token) const {
  RETURN_IF_ERROR(ValidateCall(repo_id, revision, token));
  RequestSpec spec;
  spec.kind = kind;
  spec.repo_id = repo_id;
  spec.revision = revision;
  spec.token = &token;
  spec.url = absl::StrCat(endpoint_, "/api/", ApiCollection(kind), "/", repo_id, "/revision/",
                          UrlEncodeComponent(ShownRevision(revision)), "?blobs=true");
  Requester requester(options_, endpoint_);
  const std::string url_path = requester.PathOf(spec.url);
  absl::StatusOr<HttpResponse> response = requester.Execute(spec);
  if (!response.ok()) return Redact(response.status(), token);
  if (response->status != 200) return Redact(StatusFromResponse(*response, spec, endpoint_, url_path), token);
  absl::StatusOr<HubRepoInfo> info = ParseRepoInfo(response->body, repo_id);
  if (!info.ok()) return Redact(DataLoss(endpoint_, url_path, info.status().message()), token);
  return info;
}

absl::StatusOr<std::vector<HubFile>> HubClient::ListTree(RepoKind kind, const std::string& repo_id,
                                                         const std::string& sha, const std::string& token) const {
  RETURN_IF_ERROR(ValidateCall(repo_id, sha, token));
  RequestSpec spec;
  spec.kind = kind;
  spec.repo_id = repo_id;
  spec.revision = sha;
  spec.token = &token;
  spec.url = absl::StrCat(endpoint_, "/api/", ApiCollection(kind), "/", repo_id, "/tree/",
                          UrlEncodeComponent(ShownRevision(sha)), "?recursive=true");
  Requester requester(options_, endpoint_);
  std::vector<HubFile> files;
  for (int page = 0; page < kMaxTreePages; ++page) {
    const std::string url_path = requester.PathOf(spec.url);
    absl::StatusOr<HttpResponse> response = requester.Execute(spec);
    if (!response.ok()) return Redact(response.status(), token);
    if (response->status != 200) return Redact(StatusFromResponse(*response, spec, endpoint_, url_path), token);
    absl::Status parsed = ParseTreePage(response->body, &files);
    if (!parsed.ok()) return Redact(DataLoss(endpoint_, url_path, parsed.message()), token);
    std::string next = NextLink(Header(*response, "link"));
    if (next.empty()) return files;
    if (absl::StartsWith(next, "/")) next = endpoint_ + next;
    // The token goes with the next request: only to the endpoint it was meant for.
    if (!absl::StartsWith(next, endpoint_ + "/")) {
      return Redact(DataLoss(endpoint_, url_path, "the next-page link points at another host"), token);
    }
    spec.url = next;
  }
  return DataLoss(endpoint_, requester.PathOf(spec.url), "the tree listing does not end");
}

absl::StatusOr<std::string> HubClient::FetchFile(RepoKind kind, const std::string& repo_id, const std::string& sha,
                                                 const std::string& path, const std::string& token,
                                                 size_t max_bytes) const {
  RETURN_IF_ERROR(ValidateCall(repo_id, sha, token));
  RETURN_IF_ERROR(ValidateFilePath(path));
  RequestSpec spec = FileRequest(kind, repo_id, sha, path, token, ResolveUrl(kind, repo_id, sha, path));
  spec.max_bytes = max_bytes;
  Requester requester(options_, endpoint_);
  const std::string url_path = requester.PathOf(spec.url);
  absl::StatusOr<HttpResponse> response = requester.Execute(spec);
  if (!response.ok()) return Redact(response.status(), token);
  if (response->status != 200) return Redact(StatusFromResponse(*response, spec, endpoint_, url_path), token);
  return std::move(response->body);
}

absl::StatusOr<std::string> HubClient::FetchRange(RepoKind kind, const std::string& repo_id, const std::string& sha,
                                                  const std::string& path, const std::string& token, uint64_t offset,
                                                  uint64_t length) const {
  RETURN_IF_ERROR(ValidateCall(repo_id, sha, token));
  RETURN_IF_ERROR(ValidateFilePath(path));
  if (length == 0) return std::string();
  if (offset > UINT64_MAX - length || length > kMaxApiBody) {
    return absl::InvalidArgumentError(absl::StrCat("byte range ", offset, "+", length, " of '", path,
                                                   "' is invalid: ask for at most ", kMaxApiBody, " bytes at a time"));
  }
  RequestSpec spec = FileRequest(kind, repo_id, sha, path, token, ResolveUrl(kind, repo_id, sha, path));
  spec.has_range = true;
  spec.range_offset = offset;
  spec.range_length = length;
  spec.max_bytes = static_cast<size_t>(length);
  Requester requester(options_, endpoint_);
  const std::string url_path = requester.PathOf(spec.url);
  absl::StatusOr<HttpResponse> response = requester.Execute(spec);
  if (!response.ok()) {
    if (absl::IsResourceExhausted(response.status())) {
      return Redact(
          DataLoss(endpoint_, url_path, absl::StrCat("the server sent more than the ", length, " bytes asked for")),
          token);
    }
    return Redact(response.status(), token);
  }
  if (response->status == 206) {
    // "bytes START-END/TOTAL": a server must answer the range asked for.
    const std::string content_range = Header(*response, "content-range");
    uint64_t start = 0;
    if (!content_range.empty()) {
      absl::string_view v = content_range;
      if (absl::ConsumePrefix(&v, "bytes ")) {
        const size_t dash = v.find('-');
        if (dash == absl::string_view::npos || !absl::SimpleAtoi(v.substr(0, dash), &start) || start != offset) {
          return Redact(DataLoss(endpoint_, url_path,
                                 absl::StrCat("Content-Range '", content_range, "' does not start at ", offset)),
                        token);
        }
      }
    }
    return std::move(response->body);
  }
  if (response->status == 200) {
    if (response->body.empty() && offset > 0) {
      return absl::OutOfRangeError(absl::StrCat("byte offset ", offset, " is past the end of '", path, "' in ",
                                                RepoKindName(kind), " repository '", repo_id, "'"));
    }
    return std::move(response->body);
  }
  return Redact(StatusFromResponse(*response, spec, endpoint_, url_path), token);
}

absl::StatusOr<uint64_t> HubClient::DownloadToWriter(RepoKind kind, const std::string& repo_id, const std::string& sha,
                                                     const std::string& path, const std::string& token,
                                                     uint64_t offset, const HubBodyWriter& write,
                                                     const std::function<bool()>& cancelled) const {
  RETURN_IF_ERROR(ValidateCall(repo_id, sha, token));
  RETURN_IF_ERROR(ValidateFilePath(path));
  RequestSpec spec = FileRequest(kind, repo_id, sha, path, token, ResolveUrl(kind, repo_id, sha, path));
  Requester requester(options_, endpoint_);
  const std::string url_path = requester.PathOf(spec.url);
  auto cancelled_status = [&](uint64_t at) {
    return absl::CancelledError(absl::StrCat("download of '", path, "' from ", RepoKindName(kind), " repository '",
                                             repo_id, "' was cancelled at byte ", at));
  };
  const int attempts = std::max(1, options_.max_attempts);
  uint64_t total = 0;
  int failures = 0;  // attempts in a row that delivered nothing
  std::string last_reason;
  while (true) {
    StreamState s;
    s.write = &write;
    s.cancelled = &cancelled;
    s.want_from = offset + total;
    s.idle_timeout = options_.idle_timeout;
    char error_buffer[CURL_ERROR_SIZE] = {0};
    const CURLcode code = StreamOnce(options_, spec.url, token, &s, error_buffer);
    total += s.delivered;
    if (s.cancel_hit) return cancelled_status(offset + total);
    if (!s.write_status.ok()) return Redact(s.write_status, token);
    if (!s.bad_range.empty()) {
      return Redact(DataLoss(endpoint_, url_path,
                             absl::StrCat("Content-Range '", s.bad_range, "' does not start at ", s.want_from)),
                    token);
    }
    std::chrono::milliseconds retry_after{-1};
    const long status = s.head.response.status;
    if (code == CURLE_OK) {
      if (status == 200 || status == 206) return total;
      if (status == 416) {
        return absl::OutOfRangeError(absl::StrCat("byte offset ", s.want_from, " is past the end of '", path,
                                                  "' in ", RepoKindName(kind), " repository '", repo_id,
                                                  "' (HTTP 416)"));
      }
      if (status != 429 && status < 500) {
        return Redact(StatusFromResponse(s.head.response, spec, endpoint_, url_path), token);
      }
      last_reason = absl::StrCat("HTTP ", status);
      int seconds = 0;
      if (absl::SimpleAtoi(Header(s.head.response, "retry-after"), &seconds) && seconds >= 0) {
        retry_after = std::chrono::milliseconds(static_cast<int64_t>(seconds) * 1000);
      }
    } else if (code == CURLE_ABORTED_BY_CALLBACK && s.idle_hit) {
      last_reason = absl::StrCat("no data for ", options_.idle_timeout.count(), " ms");
    } else if (IsRetryableCurlError(code)) {
      last_reason = code == CURLE_OPERATION_TIMEDOUT
                        ? absl::StrCat("timed out: ", error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code))
                        : std::string(error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code));
    } else {
      return Redact(absl::UnavailableError(absl::StrCat(
                        "download of '", url_path, "' from the Hugging Face Hub at ", endpoint_, " failed: ",
                        error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code),
                        "; check HF_ENDPOINT and the network")),
                    token);
    }
    failures = s.delivered > 0 ? 1 : failures + 1;
    if (failures >= attempts) break;
    std::chrono::milliseconds delay = options_.initial_backoff * (int64_t{1} << std::min(failures - 1, 20));
    if (retry_after.count() >= 0) delay = retry_after;
    delay = std::min(delay, kMaxBackoff);
    spdlog::warn("Hugging Face Hub download {}: {}; resuming at byte {} in {} ms (attempt {}/{})", url_path,
                 last_reason, offset + total, delay.count(), failures + 1, attempts);
    if (!SleepUnlessCancelled(delay, &cancelled)) return cancelled_status(offset + total);
  }
  return absl::UnavailableError(absl::StrCat("Hugging Face Hub at ", endpoint_, " is unavailable while downloading '",
                                             path, "' of ", RepoKindName(kind), " repository '", repo_id, "' (",
                                             last_reason, " after ", attempts, attempts == 1 ? " attempt" : " attempts",
                                             " without progress, ", offset + total,
                                             " bytes received); retry later"));
}

absl::Status ValidateRepoId(std::string_view repo_id_in, std::string_view field_in) {
  const absl::string_view repo_id(repo_id_in.data(), repo_id_in.size());
  const absl::string_view field(field_in.data(), field_in.size());
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", Quote(repo_id), " is not a Hub repo id; use 'org/name' (", why, ")"));
  };
  if (repo_id.empty()) return bad("it is empty");
  std::vector<absl::string_view> parts = absl::StrSplit(repo_id, '/');
  if (parts.size() > 2) return bad("it has more than one '/'");
  for (absl::string_view part : parts) {
    if (part.empty()) return bad("a part is empty");
    if (part.size() > 96) return bad("a part is longer than 96 characters");
    for (char c : part) {
      if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '.' && c != '_' && c != '-') {
        return bad("only letters, digits, '.', '_' and '-' are allowed");
      }
    }
    if (absl::StrContains(part, "--") || absl::StrContains(part, "..")) return bad("'--' and '..' are not allowed");
    if (part.front() == '-' || part.front() == '.' || part.back() == '-' || part.back() == '.') {
      return bad("a part starts or ends with '-' or '.'");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateHubToken(std::string_view token, std::string_view field_in) {
  const absl::string_view field(field_in.data(), field_in.size());
  if (token.size() > kMaxHubTokenBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is longer than ", kMaxHubTokenBytes,
                                                   " characters; pass a Hugging Face access token"));
  }
  for (size_t i = 0; i < token.size(); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (c <= 0x20 || c >= 0x7F) {
      // The token is not quoted: it is a secret, and what it holds may break a message or a log line.
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s contains a character that cannot be part of a token (byte 0x%02X at offset %d); a Hugging Face "
          "token is printable ASCII without spaces or line breaks: copy it again from your Hub settings",
          field, c, i));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRevision(std::string_view revision_in, std::string_view field_in) {
  const absl::string_view revision(revision_in.data(), revision_in.size());
  const absl::string_view field(field_in.data(), field_in.size());
  if (revision.empty()) return absl::OkStatus();
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", Quote(revision),
                                                   " is not a branch, tag or commit sha (", why,
                                                   "); use e.g. 'main', 'v1.0' or a 40-hex commit sha"));
  };
  if (revision.size() > 255) return bad("it is longer than 255 characters");
  for (char c : revision) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return bad("it contains control characters");
    if (c == ' ') return bad("it contains spaces");
    if (absl::StrContains("~^:?*[\\", c)) return bad("it contains one of ~ ^ : ? * [ \\");
  }
  if (absl::StrContains(revision, "..")) return bad("it contains '..'");
  if (absl::StrContains(revision, "@{")) return bad("it contains '@{'");
  if (revision.front() == '/' || revision.back() == '/' || absl::StrContains(revision, "//")) {
    return bad("it has a leading, trailing or double '/'");
  }
  if (revision.back() == '.' || absl::EndsWith(revision, ".lock")) return bad("it ends with '.' or '.lock'");
  return absl::OkStatus();
}

}  // namespace tuneforge
