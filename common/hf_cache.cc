// Snapshot downloads into the huggingface_hub cache: blobs named by etag, relative snapshot symlinks, refs, one
// flock per blob shared with huggingface_hub's own .locks, Range resume and hashing while streaming.
#include "common/hf_cache.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 1u << 20;
constexpr int64_t kWritebackChunk = 8 << 20;
constexpr int kMaxParallelFiles = 64;
constexpr char kIncompleteSuffix[] = ".incomplete";

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

std::string ExpandUser(const std::string& path) {
  if (path == "~" || absl::StartsWith(path, "~/")) return Env("HOME") + path.substr(1);
  return path;
}

bool IsLowerHex(absl::string_view s, size_t len) {
  return s.size() == len && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string Quote(absl::string_view s) { return absl::StrCat("'", absl::CHexEscape(s.substr(0, 200)), "'"); }

std::string ShownRevision(const std::string& revision) { return revision.empty() ? "main" : revision; }

// "model 'org/name'" for messages.
std::string RepoName(RepoKind kind, const std::string& repo_id) {
  return absl::StrCat(RepoKindName(kind), " '", repo_id, "'");
}

absl::Status ErrnoStatus(int err, absl::string_view what, const std::string& path) {
  const std::string message = absl::StrCat(what, " ", path, ": ", std::generic_category().message(err));
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(
          absl::StrCat(message, "; free space in the Hugging Face cache or point HF_HUB_CACHE at a larger disk"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(
          absl::StrCat(message, "; make the cache directory writable by this user or point HF_HUB_CACHE elsewhere"));
    case EROFS:
      return absl::FailedPreconditionError(absl::StrCat(
          message, "; the cache is on a read-only file system: point HF_HUB_CACHE at a writable directory, or set "
                   "HF_HUB_OFFLINE=1 to use what it holds"));
    default:
      return absl::InternalError(absl::StrCat(message, "; check the disk that holds the Hugging Face cache"));
  }
}

absl::Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot create directory", dir);
  return absl::OkStatus();
}

std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// A name for a temporary sibling of `path`, unique across threads and processes.
std::string TempSibling(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return absl::StrCat(dir, "/.", base, ".tmp.", getpid(), ".", counter.fetch_add(1));
}

bool IsTempName(absl::string_view name) { return absl::StartsWith(name, ".") && absl::StrContains(name, ".tmp."); }

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

absl::Status WriteAll(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot write", path);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status FsyncPath(const std::string& path, int flags) {
  Fd fd(open(path.c_str(), flags | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, "cannot open", path);
  if (fsync(fd.get()) != 0 && errno != EINVAL) return ErrnoStatus(errno, "cannot fsync", path);
  return absl::OkStatus();
}

// The git object id of a plain file: sha1("blob <size>\0" + content).
class GitBlobSha1 {
 public:
  explicit GitBlobSha1(int64_t size) : ctx_(EVP_MD_CTX_new()) {
    EVP_DigestInit_ex(ctx_, EVP_sha1(), nullptr);
    std::string header = absl::StrCat("blob ", size);
    header.push_back('\0');
    Update(header);
  }
  ~GitBlobSha1() { EVP_MD_CTX_free(ctx_); }
  GitBlobSha1(const GitBlobSha1&) = delete;
  GitBlobSha1& operator=(const GitBlobSha1&) = delete;
  void Update(std::string_view bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }
  std::string HexDigest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), len));
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Hashes of a file's content: sha256 always, the git blob id for plain (non-LFS) files.
struct ContentHash {
  ContentHash(bool lfs, int64_t size) {
    if (!lfs) git = std::make_unique<GitBlobSha1>(size);
  }
  void Update(std::string_view bytes) {
    sha256.Update(bytes);
    if (git) git->Update(bytes);
  }
  Sha256 sha256;
  std::unique_ptr<GitBlobSha1> git;
};

absl::Status HashPrefix(int fd, int64_t length, const std::string& path, ContentHash* hash) {
  std::string buffer(kReadChunk, '\0');
  int64_t done = 0;
  while (done < length) {
    const size_t want = static_cast<size_t>(std::min<int64_t>(length - done, static_cast<int64_t>(buffer.size())));
    const ssize_t n = pread(fd, buffer.data(), want, done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot read", path);
    }
    if (n == 0) return absl::DataLossError(absl::StrCat(path, " shrank while it was being read"));
    hash->Update(std::string_view(buffer.data(), static_cast<size_t>(n)));
    done += n;
  }
  return absl::OkStatus();
}

// huggingface_hub's filter: fnmatch without FNM_PATHNAME ('*' crosses '/'), "dir/" meaning "dir/*".
bool MatchesAny(const std::string& path, const std::vector<std::string>& patterns) {
  for (std::string pattern : patterns) {
    if (!pattern.empty() && pattern.back() == '/') pattern += '*';
    if (fnmatch(pattern.c_str(), path.c_str(), FNM_NOESCAPE) == 0) return true;
  }
  return false;
}

bool Selected(const std::string& path, const HubDownloadOptions& options) {
  return (options.allow_patterns.empty() || MatchesAny(path, options.allow_patterns)) &&
         !MatchesAny(path, options.ignore_patterns);
}

// A repo path that can be joined under snapshots/<commit>/ without leaving it.
bool IsSafeRepoPath(const std::string& path) {
  if (path.empty() || path.size() > 4096) return false;
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  for (absl::string_view segment : absl::StrSplit(path, '/')) {
    if (segment.empty() || segment == "." || segment == ".." || segment.size() > 255) return false;
  }
  return true;
}

// Where snapshots/<commit>/<path> points: relative, so the cache can be moved or mounted elsewhere.
std::string LinkTarget(const std::string& path, const std::string& etag) {
  std::string target;
  for (char c : path) {
    if (c == '/') target += "../";
  }
  return absl::StrCat(target, "../../blobs/", etag);
}

absl::Status LinkIntoSnapshot(const std::string& snapshot_dir, const std::string& path, const std::string& etag) {
  const std::string link = snapshot_dir + "/" + path;
  const std::string target = LinkTarget(path, etag);
  RETURN_IF_ERROR(MakeDirs(Parent(link)));
  char buffer[PATH_MAX];
  const ssize_t n = readlink(link.c_str(), buffer, sizeof(buffer));
  if (n >= 0 && std::string(buffer, static_cast<size_t>(n)) == target) return absl::OkStatus();
  // Another worker may be linking the same path: a symlink under a temporary name renamed over it is atomic.
  const std::string temp = TempSibling(link);
  if (symlink(target.c_str(), temp.c_str()) != 0) return ErrnoStatus(errno, "cannot create symlink", temp);
  if (rename(temp.c_str(), link.c_str()) != 0) {
    const int err = errno;
    unlink(temp.c_str());
    return ErrnoStatus(err, "cannot create symlink", link);
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& content) {
  RETURN_IF_ERROR(MakeDirs(Parent(path)));
  const std::string temp = TempSibling(path);
  {
    Fd fd(open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) return ErrnoStatus(errno, "cannot create", temp);
    absl::Status written = WriteAll(fd.get(), content, temp);
    if (written.ok() && fsync(fd.get()) != 0) written = ErrnoStatus(errno, "cannot fsync", temp);
    if (!written.ok()) {
      unlink(temp.c_str());
      return written;
    }
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(temp.c_str());
    return ErrnoStatus(err, "cannot write", path);
  }
  return absl::OkStatus();
}

// Whether `blob` is a file of `size` bytes; a missing blob is not an error.
absl::StatusOr<bool> BlobPresent(const std::string& blob, int64_t size) {
  struct stat st {};
  if (stat(blob.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return ErrnoStatus(errno, "cannot read", blob);
  }
  return S_ISREG(st.st_mode) && st.st_size == size;
}

// An exclusive flock on .locks/<repo folder>/<etag>.lock, the lock huggingface_hub takes for the same blob, so that
// Python tools and other workers sharing the cache never write the same blob at once. Closing releases it.
class BlobLock {
 public:
  absl::Status Acquire(const std::string& lock_path, const std::string& file,
                       const std::function<bool()>& cancelled) {
    fd_.reset(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (fd_.get() < 0) return ErrnoStatus(errno, "cannot open lock file", lock_path);
    bool waited = false;
    while (flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno != EWOULDBLOCK) return ErrnoStatus(errno, "cannot lock", lock_path);
      if (!waited) {
        spdlog::info("waiting for another download of '{}' to finish ({} is locked)", file, lock_path);
        waited = true;
      }
      if (cancelled && cancelled()) {
        return absl::CancelledError(
            absl::StrCat("download of '", file, "' was cancelled while waiting for another download of it (",
                         lock_path, ")"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return absl::OkStatus();
  }

 private:
  Fd fd_;
};

// Progress of the whole snapshot; reports go to the caller's callback one at a time.
class ProgressSink {
 public:
  ProgressSink(const HubDownloadOptions& options, int files_total, int64_t bytes_total)
      : options_(options), files_total_(files_total), bytes_total_(bytes_total) {}

  // Adds `delta` bytes to the snapshot's count and `received` (bytes that came over the network) to the received
  // count; reports when `finished` or the file's interval has passed.
  void Update(const std::string& file, int64_t file_done, int64_t file_total, int64_t delta, bool finished,
              Clock::time_point* last_report, int64_t received = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    bytes_done_ += delta;
    bytes_received_ += received;
    if (finished) ++files_done_;
    if (!options_.progress) return;
    const Clock::time_point now = Clock::now();
    if (!finished && now - *last_report < options_.progress_interval) return;
    *last_report = now;
    HubDownloadProgress p;
    p.file = file;
    p.file_bytes_done = file_done;
    p.file_bytes_total = file_total;
    p.file_finished = finished;
    p.bytes_done = bytes_done_;
    p.bytes_total = bytes_total_;
    p.files_done = files_done_;
    p.files_total = files_total_;
    p.bytes_received = bytes_received_;
    options_.progress(p);
  }

 private:
  const HubDownloadOptions& options_;
  std::mutex mu_;
  const int files_total_;
  const int64_t bytes_total_;
  int64_t bytes_done_ = 0;
  int files_done_ = 0;
  int64_t bytes_received_ = 0;
};

// What every file download of one snapshot shares.
struct SnapshotContext {
  const HubClient* client = nullptr;
  RepoKind kind = RepoKind::kModel;
  std::string repo_id;
  const std::string* token = nullptr;
  std::string sha;
  std::string blobs_dir;
  std::string locks_dir;
  std::string snapshot_dir;
  ProgressSink* progress = nullptr;
  std::function<bool()> cancelled;  // the caller's cancel, or another file failed
};

struct FileProgress {
  int64_t counted = 0;  // bytes of this file added to the snapshot's count
  Clock::time_point last_report{};
};

std::string Where(const SnapshotContext& ctx, const HubFile& f) {
  return absl::StrCat("'", f.path, "' of ", RepoName(ctx.kind, ctx.repo_id), " at commit ", ctx.sha);
}

// One pass: resumes blobs/<etag>.incomplete from its current length (hashing what is there first), streams the
// rest and checks size and hash. Returns the content's sha256. The .incomplete stays for a later resume on a
// transient failure or cancel; DATA_LOSS means it must not be resumed.
absl::StatusOr<std::string> StreamIntoIncomplete(const SnapshotContext& ctx, const HubFile& f,
                                                 const std::string& incomplete, FileProgress* fp) {
  Fd fd(open(incomplete.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoStatus(errno, "cannot open", incomplete);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "cannot read", incomplete);
  int64_t have = st.st_size;
  if (have > f.size) {
    if (ftruncate(fd.get(), 0) != 0) return ErrnoStatus(errno, "cannot truncate", incomplete);
    have = 0;
  }
  ContentHash hash(f.lfs, f.size);
  if (have > 0) {
    spdlog::info("resuming {} at byte {} of {}", Where(ctx, f), have, f.size);
    RETURN_IF_ERROR(HashPrefix(fd.get(), have, incomplete, &hash));
  }
  if (lseek(fd.get(), have, SEEK_SET) < 0) return ErrnoStatus(errno, "cannot seek in", incomplete);
  ctx.progress->Update(f.path, have, f.size, have - fp->counted, false, &fp->last_report);
  fp->counted = have;

  int64_t written = have;
  int64_t flushed = have;  // bytes handed to the disk already (writeback started)
  if (have < f.size) {
    const HubBodyWriter writer = [&](std::string_view bytes) -> absl::Status {
      if (static_cast<int64_t>(bytes.size()) > f.size - written) {
        return absl::DataLossError(absl::StrCat(Where(ctx, f), ": the Hub sent more than the ", f.size,
                                                " bytes it lists for the file"));
      }
      RETURN_IF_ERROR(WriteAll(fd.get(), bytes, incomplete));
      hash.Update(bytes);
      written += static_cast<int64_t>(bytes.size());
      if (written - flushed >= kWritebackChunk) {
        // Start writeback as we go, so that the final fsync does not wait for a whole shard to reach the disk.
        // Only a hint: the fsync below is what makes the blob durable.
        sync_file_range(fd.get(), flushed, written - flushed, SYNC_FILE_RANGE_WRITE);
        flushed = written;
      }
      fp->counted = written;
      ctx.progress->Update(f.path, written, f.size, static_cast<int64_t>(bytes.size()), false, &fp->last_report,
                           static_cast<int64_t>(bytes.size()));
      return absl::OkStatus();
    };
    absl::StatusOr<uint64_t> got = ctx.client->DownloadToWriter(ctx.kind, ctx.repo_id, ctx.sha, f.path, *ctx.token,
                                                               static_cast<uint64_t>(have), writer, ctx.cancelled);
    if (!got.ok()) {
      if (absl::IsCancelled(got.status())) {
        return absl::CancelledError(absl::StrCat("download of ", Where(ctx, f), " was cancelled; ", written, " of ",
                                                 f.size, " bytes are kept in ", incomplete,
                                                 " and the next download resumes from there"));
      }
      if (absl::IsOutOfRange(got.status())) {
        // The server's file is shorter than what we hold: the partial file is not a prefix of it.
        return absl::DataLossError(absl::StrCat(Where(ctx, f), ": ", got.status().message()));
      }
      return got.status();
    }
  }
  if (written != f.size) {
    return absl::DataLossError(absl::StrCat(Where(ctx, f), ": received ", written, " bytes but the Hub lists ",
                                            f.size));
  }
  const std::string sha256 = hash.sha256.HexDigest();
  if (f.lfs && sha256 != f.sha256) {
    return absl::DataLossError(absl::StrCat(Where(ctx, f), ": the downloaded bytes have sha256 ", sha256,
                                            " but the Hub lists ", f.sha256));
  }
  if (!f.lfs) {
    const std::string blob_id = hash.git->HexDigest();
    if (blob_id != f.blob_id) {
      return absl::DataLossError(absl::StrCat(Where(ctx, f), ": the downloaded bytes have git blob id ", blob_id,
                                              " but the Hub lists ", f.blob_id));
    }
  }
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "cannot fsync", incomplete);
  return sha256;
}

// Downloads one blob (the caller holds its lock): up to two passes, the second from zero after a bad first one.
absl::StatusOr<std::string> DownloadBlob(const SnapshotContext& ctx, const HubFile& f, const std::string& blob,
                                         FileProgress* fp) {
  const std::string incomplete = blob + kIncompleteSuffix;
  absl::Status first_failure;
  for (int pass = 0; pass < 2; ++pass) {
    absl::StatusOr<std::string> sha256 = StreamIntoIncomplete(ctx, f, incomplete, fp);
    if (sha256.ok()) {
      if (rename(incomplete.c_str(), blob.c_str()) != 0) return ErrnoStatus(errno, "cannot rename", incomplete);
      RETURN_IF_ERROR(FsyncPath(ctx.blobs_dir, O_RDONLY | O_DIRECTORY));
      return sha256;
    }
    if (!absl::IsDataLoss(sha256.status())) return sha256.status();
    // Corrupt bytes must never be resumed from: start again from zero, once.
    unlink(incomplete.c_str());
    ctx.progress->Update(f.path, 0, f.size, -fp->counted, false, &fp->last_report);
    fp->counted = 0;
    if (pass == 0) {
      spdlog::warn("{}; downloading it again from the start", std::string(sha256.status().message()));
      first_failure = sha256.status();
      continue;
    }
    return absl::DataLossError(absl::StrCat(
        sha256.status().message(), " (twice: the download was restarted from zero after: ", first_failure.message(),
        "); nothing was stored. The bytes are corrupted on the way (a proxy or a mirror at HF_ENDPOINT?): retry "
        "later or check HF_ENDPOINT"));
  }
  return first_failure;  // not reached
}

// Brings one file into the cache and links it into the snapshot.
absl::StatusOr<HubSnapshotFile> CacheFile(const SnapshotContext& ctx, const HubFile& f) {
  const std::string etag = f.lfs ? f.sha256 : f.blob_id;
  const std::string blob = ctx.blobs_dir + "/" + etag;
  HubSnapshotFile out;
  out.path = f.path;
  out.size = f.size;
  FileProgress fp;
  ASSIGN_OR_RETURN(bool present, BlobPresent(blob, f.size));
  if (!present) {
    BlobLock lock;
    RETURN_IF_ERROR(lock.Acquire(ctx.locks_dir + "/" + etag + ".lock", f.path, ctx.cancelled));
    // Another worker may have finished it while we waited.
    ASSIGN_OR_RETURN(present, BlobPresent(blob, f.size));
    if (!present) {
      ASSIGN_OR_RETURN(out.sha256, DownloadBlob(ctx, f, blob, &fp));
    }
  }
  out.was_cached = present;
  if (present) {
    if (f.lfs) {
      out.sha256 = f.sha256;
    } else {
      ASSIGN_OR_RETURN(out.sha256, Sha256File(blob));  // plain git files are small
    }
  }
  RETURN_IF_ERROR(LinkIntoSnapshot(ctx.snapshot_dir, f.path, etag));
  ctx.progress->Update(f.path, f.size, f.size, f.size - fp.counted, /*finished=*/true, &fp.last_report);
  return out;
}

absl::Status Redact(absl::Status status, const std::string& token) {
  if (status.ok() || token.empty() || !absl::StrContains(status.message(), token)) return status;
  return absl::Status(status.code(), absl::StrReplaceAll(status.message(), {{token, "<redacted>"}}));
}

absl::StatusOr<std::string> ReadRef(const std::string& ref_path) {
  Fd fd(open(ref_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, "cannot read", ref_path);
  char buffer[256];
  const ssize_t n = read(fd.get(), buffer, sizeof(buffer));
  if (n < 0) return ErrnoStatus(errno, "cannot read", ref_path);
  return std::string(absl::StripAsciiWhitespace(absl::string_view(buffer, static_cast<size_t>(n))));
}

// The file's sha256: the blob's name for LFS blobs, else hashed (plain git files are small).
absl::StatusOr<std::string> CachedSha256(const std::string& link_path) {
  char buffer[PATH_MAX];
  const ssize_t n = readlink(link_path.c_str(), buffer, sizeof(buffer));
  if (n > 0) {
    const std::string target(buffer, static_cast<size_t>(n));
    const std::string name = target.substr(target.rfind('/') + 1);
    if (IsLowerHex(name, 64)) return name;
  }
  return Sha256File(link_path);
}

}  // namespace

std::string HubCacheDirFromEnv() {
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}) {
    const std::string dir = Env(name);
    if (!dir.empty()) return ExpandUser(dir);
  }
  std::string home = Env("HF_HOME");
  if (home.empty()) {
    const std::string xdg = Env("XDG_CACHE_HOME");
    home = (xdg.empty() ? Env("HOME") + "/.cache" : xdg) + "/huggingface";
  }
  return ExpandUser(home) + "/hub";
}

bool HubOfflineFromEnv() {
  const std::string value = absl::AsciiStrToUpper(Env("HF_HUB_OFFLINE"));
  return value == "1" || value == "ON" || value == "YES" || value == "TRUE";
}

std::string HubRepoFolderName(RepoKind kind, const std::string& repo_id) {
  return absl::StrCat(kind == RepoKind::kDataset ? "datasets--" : "models--", absl::StrReplaceAll(repo_id, {{"/", "--"}}));
}

absl::StatusOr<HubSnapshot> FindCachedSnapshot(RepoKind kind, const std::string& repo_id, const std::string& revision,
                                               const HubDownloadOptions& options) {
  RETURN_IF_ERROR(ValidateRepoId(repo_id, "repo_id"));
  RETURN_IF_ERROR(ValidateRevision(revision, "revision"));
  const std::string cache_dir = options.cache_dir.empty() ? HubCacheDirFromEnv() : options.cache_dir;
  HubSnapshot snapshot;
  snapshot.repo_dir = cache_dir + "/" + HubRepoFolderName(kind, repo_id);
  const std::string shown = ShownRevision(revision);
  if (IsLowerHex(revision, 40)) {
    snapshot.commit_sha = revision;
  } else {
    const std::string ref_path = snapshot.repo_dir + "/refs/" + shown;
    absl::StatusOr<std::string> sha = ReadRef(ref_path);
    if (!sha.ok()) {
      return absl::NotFoundError(absl::StrCat(RepoName(kind, repo_id), " at revision '", shown,
                                              "' is not in the Hugging Face cache at ", cache_dir, " (no ", ref_path,
                                              ")"));
    }
    if (!IsLowerHex(*sha, 40)) {
      return absl::NotFoundError(absl::StrCat(ref_path, " does not hold a 40-hex commit sha (it holds ", Quote(*sha),
                                              "); delete it and download ", RepoName(kind, repo_id), " again"));
    }
    snapshot.commit_sha = *sha;
  }
  snapshot.snapshot_dir = snapshot.repo_dir + "/snapshots/" + snapshot.commit_sha;
  std::error_code ec;
  if (!fs::is_directory(snapshot.snapshot_dir, ec)) {
    return absl::NotFoundError(absl::StrCat(RepoName(kind, repo_id), " at revision '", shown, "' (commit ",
                                            snapshot.commit_sha, ") is not in the Hugging Face cache at ", cache_dir,
                                            " (no ", snapshot.snapshot_dir, ")"));
  }
  auto missing = [&](const std::string& path, absl::string_view why) {
    return absl::NotFoundError(absl::StrCat("'", path, "' of ", RepoName(kind, repo_id), " at commit ",
                                            snapshot.commit_sha, " is ", why, " in the Hugging Face cache at ",
                                            cache_dir));
  };
  std::vector<std::string> paths;
  std::vector<int64_t> sizes;  // -1: not known
  if (!options.expected_files.empty()) {
    for (const HubFile& f : options.expected_files) {
      if (!Selected(f.path, options)) continue;
      if (!IsSafeRepoPath(f.path)) {
        return absl::InvalidArgumentError(absl::StrCat("expected file path ", Quote(f.path), " is not a repo path"));
      }
      paths.push_back(f.path);
      sizes.push_back(f.size);
    }
  } else {
    fs::recursive_directory_iterator it(snapshot.snapshot_dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const fs::file_status st = it->symlink_status(ec);
      if (ec) break;
      if (fs::is_directory(st)) continue;
      if (IsTempName(it->path().filename().string())) continue;
      // Lexically: fs::relative would follow the link into blobs/.
      const std::string path = it->path().lexically_relative(snapshot.snapshot_dir).generic_string();
      if (!Selected(path, options)) continue;
      paths.push_back(path);
      sizes.push_back(-1);
    }
    if (ec) return ErrnoStatus(ec.value(), "cannot list", snapshot.snapshot_dir);
  }
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string on_disk = snapshot.snapshot_dir + "/" + paths[i];
    struct stat st {};
    if (stat(on_disk.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      struct stat link {};
      return missing(paths[i], lstat(on_disk.c_str(), &link) == 0 ? "linked to a missing blob" : "missing");
    }
    if (sizes[i] >= 0 && st.st_size != sizes[i]) {
      return missing(paths[i], absl::StrCat("incomplete (", st.st_size, " of ", sizes[i], " bytes)"));
    }
    HubSnapshotFile file;
    file.path = paths[i];
    file.size = st.st_size;
    file.was_cached = true;
    ASSIGN_OR_RETURN(file.sha256, CachedSha256(on_disk));
    snapshot.files.push_back(std::move(file));
  }
  std::sort(snapshot.files.begin(), snapshot.files.end(),
            [](const HubSnapshotFile& a, const HubSnapshotFile& b) { return a.path < b.path; });
  return snapshot;
}

absl::StatusOr<HubSnapshot> DownloadSnapshot(const HubClient& client, RepoKind kind, const std::string& repo_id,
                                             const std::string& revision, const std::string& token,
                                             const HubDownloadOptions& options) {
  if (options.offline) {
    absl::StatusOr<HubSnapshot> cached = FindCachedSnapshot(kind, repo_id, revision, options);
    if (cached.ok() || !absl::IsNotFound(cached.status())) return cached;
    return absl::FailedPreconditionError(absl::StrCat(
        "offline mode (HF_HUB_OFFLINE=1) reads the cache only and ", cached.status().message(),
        ": unset HF_HUB_OFFLINE to download it, or prefetch it into this cache where the Hub can be reached"));
  }
  if (options.parallel_files < 1 || options.parallel_files > kMaxParallelFiles) {
    return absl::InvalidArgumentError(absl::StrCat("parallel_files: ", options.parallel_files,
                                                   " is out of range; use 1 to ", kMaxParallelFiles));
  }
  const std::string cache_dir = options.cache_dir.empty() ? HubCacheDirFromEnv() : options.cache_dir;
  ASSIGN_OR_RETURN(HubRepoInfo info, client.GetRepoInfo(kind, repo_id, revision, token));

  std::vector<HubFile> files;
  int64_t bytes_total = 0;
  for (HubFile& f : info.files) {
    if (!Selected(f.path, options)) continue;
    if (!IsSafeRepoPath(f.path)) {
      return absl::DataLossError(absl::StrCat("the Hub lists a file ", Quote(f.path), " in ",
                                              RepoName(kind, repo_id), " that cannot be stored safely; check that "
                                              "HF_ENDPOINT points at a Hugging Face Hub"));
    }
    const bool etag_ok = f.lfs ? IsLowerHex(f.sha256, 64) : IsLowerHex(absl::AsciiStrToLower(f.blob_id), 40);
    if (!etag_ok || f.size < 0) {
      return absl::DataLossError(absl::StrCat("the Hub lists '", f.path, "' in ", RepoName(kind, repo_id),
                                              " without a valid size and blob id; check that HF_ENDPOINT points at "
                                              "a Hugging Face Hub"));
    }
    f.blob_id = absl::AsciiStrToLower(f.blob_id);
    bytes_total += f.size;
    files.push_back(std::move(f));
  }

  const std::string folder = HubRepoFolderName(kind, repo_id);
  HubSnapshot snapshot;
  snapshot.repo_dir = cache_dir + "/" + folder;
  snapshot.commit_sha = info.sha;
  snapshot.snapshot_dir = snapshot.repo_dir + "/snapshots/" + info.sha;
  SnapshotContext ctx;
  ctx.client = &client;
  ctx.kind = kind;
  ctx.repo_id = repo_id;
  ctx.token = &token;
  ctx.sha = info.sha;
  ctx.blobs_dir = snapshot.repo_dir + "/blobs";
  ctx.locks_dir = cache_dir + "/.locks/" + folder;
  ctx.snapshot_dir = snapshot.snapshot_dir;
  for (const std::string* dir : {&ctx.blobs_dir, &ctx.locks_dir, &ctx.snapshot_dir}) RETURN_IF_ERROR(MakeDirs(*dir));

  spdlog::info("fetching {} files ({} bytes) of {} at commit {} into {}", files.size(), bytes_total,
               RepoName(kind, repo_id), info.sha, snapshot.repo_dir);
  ProgressSink progress(options, static_cast<int>(files.size()), bytes_total);
  ctx.progress = &progress;
  std::atomic<bool> failed{false};
  ctx.cancelled = [&failed, &options]() { return failed.load() || (options.cancelled && options.cancelled()); };

  std::vector<HubSnapshotFile> results(files.size());
  std::atomic<size_t> next{0};
  std::mutex error_mu;
  absl::Status first_error;
  auto work = [&]() {
    for (size_t i = next.fetch_add(1); i < files.size() && !failed.load(); i = next.fetch_add(1)) {
      absl::StatusOr<HubSnapshotFile> done = CacheFile(ctx, files[i]);
      if (done.ok()) {
        results[i] = *std::move(done);
        continue;
      }
      std::lock_guard<std::mutex> lock(error_mu);
      if (first_error.ok()) first_error = done.status();
      failed.store(true);  // after recording: the others stop with a CANCELLED that is not reported
    }
  };
  const size_t workers = std::min(files.size(), static_cast<size_t>(options.parallel_files));
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers; ++i) threads.emplace_back(work);
  if (workers > 0) work();
  for (std::thread& t : threads) t.join();
  if (!first_error.ok()) return Redact(first_error, token);

  // Written last, so that a ref found in the cache names a snapshot that was complete at least once.
  if (ShownRevision(revision) != info.sha) {
    const std::string ref_path = snapshot.repo_dir + "/refs/" + ShownRevision(revision);
    absl::StatusOr<std::string> current = ReadRef(ref_path);
    if (!current.ok() || *current != info.sha) RETURN_IF_ERROR(WriteFileAtomically(ref_path, info.sha));
  }
  snapshot.files = std::move(results);
  std::sort(snapshot.files.begin(), snapshot.files.end(),
            [](const HubSnapshotFile& a, const HubSnapshotFile& b) { return a.path < b.path; });
  spdlog::info("{} at commit {} is complete in {}", RepoName(kind, repo_id), info.sha, snapshot.snapshot_dir);
  return snapshot;
}

}  // namespace tuneforge
