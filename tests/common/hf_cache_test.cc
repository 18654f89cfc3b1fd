// DownloadSnapshot against the fake Hub over loopback: the exact huggingface_hub cache layout, reuse, Range resume
// after a cut or a cancel, corrupted bodies, retries, offline mode, and workers (threads, processes) sharing a cache.
#include "common/hf_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/sha256.h"
#include "tests/support/fake_hub.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::SizeIs;
using ::tuneforge::testing::FakeHub;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::ReadFileBytes;
using ::tuneforge::testing::ScratchDir;
using ::tuneforge::testing::StatusIs;
using ::tuneforge::testing::WriteFileBytes;

constexpr char kRepo[] = "tiny-org/tiny-llama";
constexpr char kFolder[] = "models--tiny-org--tiny-llama";
constexpr size_t kMiB = 1u << 20;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(gen() & 0xff);
  return out;
}

// What `git hash-object` prints for `content`.
std::string GitBlobId(const std::string& content) {
  std::string object = "blob " + std::to_string(content.size());
  object.push_back('\0');
  object += content;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(object.data(), object.size(), md, &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[md[i] >> 4]);
    hex.push_back(kHex[md[i] & 15]);
  }
  return hex;
}

// Every path under `dir` (relative, sorted) whose name ends with `suffix`.
std::vector<std::string> FilesEndingWith(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(it->path().lexically_relative(dir).generic_string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

class HfCacheTest : public ::testing::Test {
 protected:
  HubClientOptions ClientOptions() const {
    HubClientOptions o;
    o.endpoint = hub_.endpoint();
    o.initial_backoff = std::chrono::milliseconds(1);
    o.request_timeout = std::chrono::milliseconds(10000);
    o.idle_timeout = std::chrono::milliseconds(10000);
    return o;
  }
  HubDownloadOptions Options() const {
    HubDownloadOptions o;
    o.cache_dir = cache_dir_;
    o.offline = false;  // whatever HF_HUB_OFFLINE says where the tests run
    return o;
  }
  absl::StatusOr<HubSnapshot> Download(const std::string& repo, const std::string& revision = "",
                                       std::optional<HubDownloadOptions> options = std::nullopt,
                                       RepoKind kind = RepoKind::kModel, const std::string& token = "") {
    HubClient client(ClientOptions());
    return DownloadSnapshot(client, kind, repo, revision, token, options ? *options : Options());
  }
  std::string RepoDir(const std::string& folder = kFolder) const { return cache_dir_ + "/" + folder; }
  std::string Blob(const std::string& etag, const std::string& folder = kFolder) const {
    return RepoDir(folder) + "/blobs/" + etag;
  }
  // GET requests for files (resolve URLs), as "GET /path".
  std::vector<std::string> FileGets() const {
    std::vector<std::string> out;
    for (const std::string& t : hub_.request_targets()) {
      if (t.rfind("GET ", 0) == 0 && t.find("/resolve/") != std::string::npos) out.push_back(t);
    }
    return out;
  }

  FakeHub hub_;
  ScratchDir scratch_{"hf-cache-test"};
  std::string cache_dir_ = scratch_.path() + "/hub";
};

// A small model repo: plain git files (one nested two levels deep) and LFS files (one nested).
std::map<std::string, std::string> ModelFiles() {
  return {{"config.json", "{\"model_type\": \"llama\"}\n"},
          {"hello.txt", "hello\n"},
          {"model.safetensors", RandomBytes(300 * 1024 + 7, 1)},
          {"sub/dir/extra.json", "{\"nested\": true}\n"},
          {"weights/shard-00001.bin", RandomBytes(200 * 1024, 2)}};
}

bool IsLfs(const std::string& path) {
  return path.find(".safetensors") != std::string::npos || path.find(".bin") != std::string::npos;
}

TEST_F(HfCacheTest, DownloadWritesTheHuggingfaceHubCacheLayout) {
  const std::map<std::string, std::string> files = ModelFiles();
  const std::string sha = hub_.AddCommit(RepoKind::kModel, kRepo, files);

  absl::StatusOr<HubSnapshot> snapshot = Download(kRepo);
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_EQ(snapshot->commit_sha, sha);
  EXPECT_EQ(snapshot->repo_dir, RepoDir());
  EXPECT_EQ(snapshot->snapshot_dir, RepoDir() + "/snapshots/" + sha);

  // refs/main holds the commit sha and nothing else (no newline), as huggingface_hub writes it.
  EXPECT_EQ(ReadFileBytes(RepoDir() + "/refs/main"), sha);
  // `git hash-object` of "hello\n": plain files are stored under their git blob id.
  EXPECT_TRUE(fs::is_regular_file(Blob("ce013625030ba8dba906f756967f9e9ca394464a")));

  ASSERT_THAT(snapshot->files, SizeIs(files.size()));
  size_t i = 0;
  for (const auto& [path, content] : files) {
    SCOPED_TRACE(path);
    const HubSnapshotFile& f = snapshot->files[i++];
    EXPECT_EQ(f.path, path);
    EXPECT_EQ(f.size, static_cast<int64_t>(content.size()));
    EXPECT_EQ(f.sha256, Sha256Hex(content));
    EXPECT_FALSE(f.was_cached);
    const std::string etag = IsLfs(path) ? Sha256Hex(content) : GitBlobId(content);
    EXPECT_EQ(ReadFileBytes(Blob(etag)), content);
    const std::string link = snapshot->snapshot_dir + "/" + path;
    ASSERT_TRUE(fs::is_symlink(link));
    const std::string ups(std::count(path.begin(), path.end(), '/'), 'x');
    std::string expected_target;
    for (size_t d = 0; d < ups.size(); ++d) expected_target += "../";
    expected_target += "../../blobs/" + etag;
    EXPECT_EQ(fs::read_symlink(link).string(), expected_target);
    EXPECT_EQ(ReadFileBytes(link), content);
    EXPECT_TRUE(fs::exists(cache_dir_ + "/.locks/" + kFolder + "/" + etag + ".lock"));
  }
  EXPECT_EQ(fs::read_symlink(snapshot->snapshot_dir + "/sub/dir/extra.json").string(),
            "../../../../blobs/" + GitBlobId(files.at("sub/dir/extra.json")));

  std::vector<std::string> top;
  for (const auto& e : fs::directory_iterator(RepoDir())) top.push_back(e.path().filename().string());
  std::sort(top.begin(), top.end());
  EXPECT_THAT(top, ElementsAre("blobs", "refs", "snapshots"));
  std::vector<std::string> blobs;
  for (const auto& e : fs::directory_iterator(RepoDir() + "/blobs")) blobs.push_back(e.path().filename().string());
  EXPECT_THAT(blobs, SizeIs(files.size()));
  EXPECT_THAT(FilesEndingWith(cache_dir_, ".incomplete"), IsEmpty());
  EXPECT_THAT(FilesEndingWith(cache_dir_, ".tmp"), IsEmpty());
  EXPECT_THAT(FileGets(), SizeIs(files.size()));
}

TEST_F(HfCacheTest, SecondDownloadIsServedFromTheCache) {
  const std::map<std::string, std::string> files = ModelFiles();
  hub_.AddCommit(RepoKind::kModel, kRepo, files);
  ASSERT_THAT(Download(kRepo), IsOk());
  const int before = hub_.request_count();

  absl::StatusOr<HubSnapshot> again = Download(kRepo, "main");
  ASSERT_THAT(again, IsOk());
  // One API request to pin the revision, no file request.
  EXPECT_EQ(hub_.request_count(), before + 1);
  EXPECT_THAT(FileGets(), SizeIs(files.size()));
  ASSERT_THAT(again->files, SizeIs(files.size()));
  for (const HubSnapshotFile& f : again->files) {
    SCOPED_TRACE(f.path);
    EXPECT_TRUE(f.was_cached);
    EXPECT_EQ(f.sha256, Sha256Hex(files.at(f.path)));
  }
}

TEST_F(HfCacheTest, ANewCommitReusesUnchangedBlobsAndMovesTheRef) {
  std::map<std::string, std::string> files = ModelFiles();
  const std::string first = hub_.AddCommit(RepoKind::kModel, kRepo, files);
  ASSERT_THAT(Download(kRepo), IsOk());
  files["config.json"] = "{\"model_type\": \"mistral\"}\n";
  const std::string second = hub_.AddCommit(RepoKind::kModel, kRepo, files);
  const size_t gets_before = FileGets().size();

  absl::StatusOr<HubSnapshot> snapshot = Download(kRepo);
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_EQ(snapshot->commit_sha, second);
  EXPECT_EQ(ReadFileBytes(RepoDir() + "/refs/main"), second);
  EXPECT_THAT(FileGets(), SizeIs(gets_before + 1));  // only the changed file
  EXPECT_EQ(ReadFileBytes(snapshot->snapshot_dir + "/config.json"), files["config.json"]);
  // The old snapshot still reads its own content.
  EXPECT_EQ(ReadFileBytes(RepoDir() + "/snapshots/" + first + "/config.json"), "{\"model_type\": \"llama\"}\n");
}

TEST_F(HfCacheTest, DatasetRepoUsesTheDatasetsFolderAndUrls) {
  const std::map<std::string, std::string> files = {{"data/train.jsonl", "{\"text\": \"a\"}\n"},
                                                    {"data/test.parquet", RandomBytes(4096, 3)}};
  const std::string sha = hub_.AddCommit(RepoKind::kDataset, "org/data", files);

  absl::StatusOr<HubSnapshot> snapshot = Download("org/data", "", std::nullopt, RepoKind::kDataset);
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_EQ(snapshot->snapshot_dir, cache_dir_ + "/datasets--org--data/snapshots/" + sha);
  EXPECT_EQ(ReadFileBytes(cache_dir_ + "/datasets--org--data/refs/main"), sha);
  EXPECT_EQ(fs::read_symlink(snapshot->snapshot_dir + "/data/test.parquet").string(),
            "../../../blobs/" + Sha256Hex(files.at("data/test.parquet")));
  EXPECT_EQ(ReadFileBytes(snapshot->snapshot_dir + "/data/train.jsonl"), files.at("data/train.jsonl"));
  EXPECT_THAT(FileGets(), AllOf(SizeIs(2), Contains(HasSubstr("GET /datasets/org/data/resolve/" + sha))));
  EXPECT_TRUE(fs::exists(cache_dir_ + "/.locks/datasets--org--data/" + Sha256Hex(files.at("data/test.parquet")) +
                         ".lock"));
}

TEST_F(HfCacheTest, AllowAndIgnorePatternsSelectFiles) {
  hub_.AddCommit(RepoKind::kModel, kRepo, ModelFiles());
  HubDownloadOptions options = Options();
  options.allow_patterns = {"*.json", "*.safetensors"};
  options.ignore_patterns = {"sub/"};
  absl::StatusOr<HubSnapshot> snapshot = Download(kRepo, "", options);
  ASSERT_THAT(snapshot, IsOk());
  std::vector<std::string> paths;
  for (const HubSnapshotFile& f : snapshot->files) paths.push_back(f.path);
  EXPECT_THAT(paths, ElementsAre("config.json", "model.safetensors"));
  EXPECT_FALSE(fs::exists(snapshot->snapshot_dir + "/hello.txt"));
  EXPECT_THAT(FileGets(), SizeIs(2));
}

TEST_F(HfCacheTest, ADownloadCutMidFileResumesWithRange) {
  const std::string content = RandomBytes(3 * kMiB + 11, 4);
  const std::string sha = hub_.AddCommit(RepoKind::kModel, kRepo, {{"model.safetensors", content}});
  hub_.DropNextBodies(1, kMiB);

  absl::StatusOr<HubSnapshot> snapshot = Download(kRepo);
  ASSERT_THAT(snapshot, IsOk());
  const std::string url = "GET /tiny-org/tiny-llama/resolve/" + sha + "/model.safetensors";
  EXPECT_THAT(FileGets(), ElementsAre(url, url));
  EXPECT_THAT(hub_.range_requests(), ElementsAre(Pair(url, "bytes=1048576-")));
  ASSERT_THAT(snapshot->files, SizeIs(1));
  EXPECT_EQ(snapshot->files[0].sha256, Sha256Hex(content));
  EXPECT_EQ(*Sha256File(Blob(Sha256Hex(content))), Sha256Hex(content));
  EXPECT_THAT(FilesEndingWith(cache_dir_, ".incomplete"), IsEmpty());
}

TEST_F(HfCacheTest, APartialFileLeftByAnEarlierRunIsResumedNotRestarted) {
  const std::string content = RandomBytes(2 * kMiB + 5, 5);
  const std::string sha = hub_.AddCommit(RepoKind::kModel, kRepo, {{"model.safetensors", content}});
  const std::string incomplete = Blob(Sha256Hex(content)) + ".incomplete";
  {
    HubClientOptions no_retry = ClientOptions();
    no_retry.max_attempts = 1;
    HubClient client(no_retry);
    hub_.DropNextBodies(1, kMiB + 3);
    absl::StatusOr<HubSnapshot> cut = DownloadSnapshot(client, RepoKind::kModel, kRepo, "", "", Options());
    EXPECT_THAT(cut, StatusIs(absl::StatusCode::kUnavailable,
                              AllOf(HasSubstr("model.safetensors"), HasSubstr("retry later"))));
  }
  ASSERT_TRUE(fs::exists(incomplete));
  EXPECT_EQ(fs::file_size(incomplete), kMiB + 3);
  EXPECT_FALSE(fs::exists(RepoDir() + "/refs/main"));
  EXPECT_FALSE(fs::exists(Blob(Sha256Hex(content))));

  absl::StatusOr<HubSnapshot> resumed = Download(kRepo);
  ASSERT_THAT(resumed, IsOk());
  const std::string url = "GET /tiny-org/tiny-llama/resolve/" + sha + "/model.safetensors";
  // One ranged request for the rest: the kept prefix was hashed, not fetched again.
  EXPECT_THAT(FileGets(), ElementsAre(url, url));
  EXPECT_THAT(hub_.range_requests(), ElementsAre(Pair(url, "bytes=1048579-")));
  EXPECT_EQ(ReadFileBytes(Blob(Sha256Hex(content))), content);
  EXPECT_FALSE(fs::exists(incomplete));
  EXPECT_EQ(ReadFileBytes(RepoDir() + "/refs/main"), sha);
}

TEST_F(HfCacheTest, AStalledTransferIsAbandonedAndResumed) {
  const std::string content = RandomBytes(kMiB + 1000, 12);
  const std::string sha = hub_.AddCommit(RepoKind::kModel, kRepo, {{"model.safetensors", content}});
  // Each response sends 512 KiB at once, then nothing for 3 s: far past the client's idle limit.
  hub_.ThrottleBodies(512 * 1024, std::chrono::milliseconds(3000));
  HubClientOptions impatient = ClientOptions();
  impatient.idle_timeout = std::chrono::milliseconds(200);
  HubClient client(impatient);
  absl::StatusOr<HubSnapshot> snapshot = DownloadSnapshot(client, RepoKind::kModel, kRepo, "", "", Options());
  ASSERT_THAT(snapshot, IsOk());
  const std::string url = "GET /tiny-org/tiny-llama/resolve/" + sha + "/model.safetensors";
  EXPECT_THAT(hub_.range_requests(), ElementsAre(Pair(url, "bytes=524288-"), Pair(url, "bytes=1048576-")));
  EXPECT_EQ(ReadFileBytes(Blob(Sha256Hex(content))), content);
}

TEST_F(HfCacheTest, AServerThatIgnoresRangeStillGivesTheRightBlob) {
  const std::string content = RandomBytes(2 * kMiB, 6);
  hub_.AddCommit(RepoKind::kModel, kRepo, {{"model.safetensors", content}});
  hub_.IgnoreRange(true);
  hub_.DropNextBodies(1, kMiB / 2);
  absl::StatusOr<HubSnapshot> snapshot = Download(kRepo);
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_THAT(hub_.range_requests(), SizeIs(1));
  EXPECT_EQ(ReadFileBytes(Blob(Sha256Hex(content))), content);
}

TEST_F(HfCacheTest, CorruptedBodyIsDataLossAndNothingIsStored) {
  const std::string content = RandomBytes(kMiB, 7);
  const std::string sha = hub_.AddCommit(RepoKind::kModel, kRepo, {{"model.safetensors", content}});
  hub_.CorruptNextBodies(2);  // the first try and the retry from zero

  absl::StatusOr<HubSnapshot> snapshot = Download(kRepo);
  EXPECT_THAT(snapshot, StatusIs(absl::StatusCode::kDataLoss,
                                 AllOf(HasSubstr("'model.safetensors' of model 'tiny-org/tiny-llama'"),
                                       HasSubstr("sha256"), HasSubstr(Sha256Hex(content)),
                                       HasSubstr("nothing was stored"))));
  EXPECT_THAT(FileGets(), SizeIs(2));
  EXPECT_FALSE(fs::exists(Blob(Sha256Hex(content))));
  EXPECT_THAT(FilesEndingWith(cache_dir_, ".incomplete"), IsEmpty());
  EXPECT_FALSE(fs::is_symlink(RepoDir() + "/snapshots/" + sha + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(RepoDir() + "/refs/main"));
}

TEST_F(HfCacheTest, CorruptedPlainFileIsCaughtByItsGitBlobId) {
  const std::string content = "{\"hidden_size\": 64, \"padding\": \"" + std::string(1000, 'x') + "\"}\n";
  hub_.AddCommit(RepoKind::kModel, kRepo, {{"config.json", content}});
  hub_.CorruptNextBodies(2);
  EXPECT_THAT(Download(kRepo), StatusIs(absl::StatusCode::kDataLoss,
                                        AllOf(HasSubstr("'config.json'"), HasSubstr("git blob id"),
                                              HasSubstr(GitBlobId(content)))));
  EXPECT_FALSE(fs::exists(Blob(GitBlobId(content))));
}

TEST_F(HfCacheTest, OneCorruptedBodyIsFetchedAgainFromZero) {
  const std::string content = RandomBytes(kMiB, 8);
  hub_.AddCommit(RepoKind::kModel, kRepo, {{"model.safetensors", content}});
  hub_.CorruptNextBodies(1);
  absl::StatusOr<HubSnapshot> snapshot = Download(kRepo);
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_THAT(FileGets(), SizeIs(2));
  EXPECT_THAT(hub_.range_requests(), IsEmpty());
  EXPECT_EQ(ReadFileBytes(Blob(Sha256Hex(content))), content);
}

TEST_F(HfCacheTest, ServerErrorsAndRateLimitsOnFilesAreRetried) {
  const std::map<std::string, std::string> files = ModelFiles();
  hub_.AddCommit(RepoKind::kModel, kRepo, files);
  hub_.FailNextResolves(500, 2);
  ASSERT_THAT(Download(kRepo), IsOk());
  EXPECT_THAT(FileGets(), SizeIs(files.size() + 2));

  hub_.AddCommit(RepoKind::kModel, "org/other", {{"model.safetensors", RandomBytes(1000, 9)}});
  hub_.FailNextResolves(429, 2);
  absl::StatusOr<HubSnapshot> other = Download("org/other");
  ASSERT_THAT(other, IsOk());
  EXPECT_EQ(ReadFileBytes(other->snapshot_dir + "/model.safetensors"), RandomBytes(1000, 9));
}

TEST_F(HfCacheTest, AHubThatKeepsFailingIsUnavailable) {
  hub_.AddCommit(RepoKind::kModel, kRepo, {{"model.safetensors", RandomBytes(1000, 10)}});
  hub_.FailNextResolves(503, 100);
  EXPECT_THAT(Download(kRepo), StatusIs(absl::StatusCode::kUnavailable,
                                        AllOf(HasSubstr("model.safetensors"), HasSubstr("HTTP 503"),
                                              HasSubstr("retry later"))));
  EXPECT_THAT(FileGets(), SizeIs(4));  // HubClientOptions::max_attempts
}

TEST_F(HfCacheTest, GatedFilesWithoutATokenArePermissionDenied) {
  hub_.AddCommit(RepoKind::kModel, kRepo, {{"config.json", "{}"}});
  hub_.SetGated(kRepo, true);
  EXPECT_THAT(Download(kRepo), StatusIs(absl::StatusCode::kPermissionDenied,
                                        AllOf(HasSubstr("gated"), HasSubstr(hub_.endpoint() + "/" + kRepo))));
  EXPECT_FALSE(fs::exists(RepoDir() + "/refs/main"));
}

TEST_F(HfCacheTest, TheTokenTravelsOnlyInTheAuthorizationHeader) {
  hub_.AddCommit(RepoKind::kModel, kRepo, ModelFiles());
  hub_.SetPrivate(kRepo, true);
  hub_.AllowToken("hf_good_secret");
  ASSERT_THAT(Download(kRepo, "", std::nullopt, RepoKind::kModel, "hf_good_secret"), IsOk());
  EXPECT_THAT(hub_.authorization_headers(), SizeIs(1 + ModelFiles().size()));
  for (const std::string& h : hub_.authorization_headers()) EXPECT_EQ(h, "Bearer hf_good_secret");

  ScratchDir other("hf-cache-test");
  HubDownloadOptions options = Options();
  options.cache_dir = other.path();
  absl::StatusOr<HubSnapshot> refused = Download(kRepo, "", options, RepoKind::kModel, "hf_bad_secret");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kUnauthenticated, Not(HasSubstr("hf_bad_secret"))));
  for (const auto& file : FilesEndingWith(cache_dir_, "")) {
    if (fs::is_regular_file(cache_dir_ + "/" + file)) {
      EXPECT_THAT(ReadFileBytes(cache_dir_ + "/" + file), Not(HasSubstr("hf_good_secret"))) << file;
    }
  }
}

TEST_F(HfCacheTest, OfflineModeReadsTheCacheWithoutAnyRequest) {
  const std::map<std::string, std::string> files = ModelFiles();
  const std::string sha = hub_.AddCommit(RepoKind::kModel, kRepo, files);
  ASSERT_THAT(Download(kRepo), IsOk());
  const int before = hub_.request_count();

  HubDownloadOptions offline = Options();
  offline.offline = true;
  for (const std::string& revision : {std::string(), std::string("main"), sha}) {
    SCOPED_TRACE(revision);
    absl::StatusOr<HubSnapshot> snapshot = Download(kRepo, revision, offline);
    ASSERT_THAT(snapshot, IsOk());
    EXPECT_EQ(snapshot->commit_sha, sha);
    EXPECT_EQ(snapshot->snapshot_dir, RepoDir() + "/snapshots/" + sha);
    ASSERT_THAT(snapshot->files, SizeIs(files.size()));
    for (const HubSnapshotFile& f : snapshot->files) {
      EXPECT_EQ(f.sha256, Sha256Hex(files.at(f.path))) << f.path;
      EXPECT_EQ(f.size, static_cast<int64_t>(files.at(f.path).size())) << f.path;
      EXPECT_TRUE(f.was_cached);
    }
  }
  EXPECT_EQ(hub_.request_count(), before);

  // The recorded file list is checked too.
  HubFile config;
  config.path = "config.json";
  config.size = static_cast<int64_t>(files.at("config.json").size());
  HubFile tokenizer;
  tokenizer.path = "tokenizer.json";
  tokenizer.size = 10;
  offline.expected_files = {config, tokenizer};
  EXPECT_THAT(Download(kRepo, "main", offline),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("'tokenizer.json'"), HasSubstr("missing"), HasSubstr("HF_HUB_OFFLINE"))));
  EXPECT_EQ(hub_.request_count(), before);
}

TEST_F(HfCacheTest, HfHubOfflineFromTheEnvironmentIsTheDefault) {
  const char* saved = std::getenv("HF_HUB_OFFLINE");
  const std::string saved_value = saved != nullptr ? saved : "";
  setenv("HF_HUB_OFFLINE", "1", 1);
  HubDownloadOptions from_env;
  EXPECT_TRUE(from_env.offline);
  EXPECT_TRUE(HubOfflineFromEnv());
  setenv("HF_HUB_OFFLINE", "true", 1);
  EXPECT_TRUE(HubOfflineFromEnv());
  setenv("HF_HUB_OFFLINE", "0", 1);
  EXPECT_FALSE(HubOfflineFromEnv());
  if (saved != nullptr) {
    setenv("HF_HUB_OFFLINE", saved_value.c_str(), 1);
  } else {
    unsetenv("HF_HUB_OFFLINE");
  }

  hub_.AddCommit(RepoKind::kModel, kRepo, ModelFiles());
  from_env.cache_dir = cache_dir_;
  EXPECT_THAT(Download(kRepo, "main", from_env),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("HF_HUB_OFFLINE"), HasSubstr("model 'tiny-org/tiny-llama'"),
                             HasSubstr("refs/main"), HasSubstr("unset HF_HUB_OFFLINE"))));
  EXPECT_EQ(hub_.request_count(), 0);
}

TEST_F(HfCacheTest, OfflineModeNamesTheFileWhoseBlobIsGone) {
  const std::map<std::string, std::string> files = ModelFiles();
  hub_.AddCommit(RepoKind::kModel, kRepo, files);
  ASSERT_THAT(Download(kRepo), IsOk());
  fs::remove(Blob(Sha256Hex(files.at("model.safetensors"))));
  HubDownloadOptions offline = Options();
  offline.offline = true;
  EXPECT_THAT(Download(kRepo, "main", offline),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("'model.safetensors'"), HasSubstr("missing blob"),
                             HasSubstr("prefetch"))));
  // Online, the missing blob is fetched again.
  absl::StatusOr<HubSnapshot> repaired = Download(kRepo);
  ASSERT_THAT(repaired, IsOk());
  EXPECT_EQ(ReadFileBytes(repaired->snapshot_dir + "/model.safetensors"), files.at("model.safetensors"));
}

TEST_F(HfCacheTest, ABlobOfTheWrongSizeIsFetchedAgain) {
  const std::map<std::string, std::string> files = ModelFiles();
  hub_.AddCommit(RepoKind::kModel, kRepo, files);
  ASSERT_THAT(Download(kRepo), IsOk());
  const std::string blob = Blob(Sha256Hex(files.at("model.safetensors")));
  WriteFileBytes(blob, "truncated");
  absl::StatusOr<HubSnapshot> again = Download(kRepo);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(ReadFileBytes(blob), files.at("model.safetensors"));
  for (const HubSnapshotFile& f : again->files) EXPECT_EQ(f.was_cached, f.path != "model.safetensors") << f.path;
}

TEST_F(HfCacheTest, CancelStopsMidFileAndLeavesAResumableIncomplete) {
  const std::string content = RandomBytes(4 * kMiB, 11);
  const std::string sha = hub_.AddCommit(RepoKind::kModel, kRepo, {{"model.safetensors", content}});
  const std::string incomplete = Blob(Sha256Hex(content)) + ".incomplete";
  hub_.ThrottleBodies(64 * 1024, std::chrono::milliseconds(5));
  HubDownloadOptions options = Options();
  options.cancelled = [&incomplete]() {
    std::error_code ec;
    const auto size = fs::file_size(incomplete, ec);
    return !ec && size >= kMiB;
  };
  EXPECT_THAT(Download(kRepo, "", options),
              StatusIs(absl::StatusCode::kCancelled,
                       AllOf(HasSubstr("'model.safetensors'"), HasSubstr("cancelled"), HasSubstr(incomplete))));
  ASSERT_TRUE(fs::exists(incomplete));
  const uint64_t kept = fs::file_size(incomplete);
  EXPECT_GE(kept, kMiB);
  EXPECT_LT(kept, content.size());
  EXPECT_FALSE(fs::exists(Blob(Sha256Hex(content))));
  EXPECT_FALSE(fs::is_symlink(RepoDir() + "/snapshots/" + sha + "/model.safetensors"));

  hub_.ThrottleBodies(0, std::chrono::milliseconds(0));
  absl::StatusOr<HubSnapshot> resumed = Download(kRepo);
  ASSERT_THAT(resumed, IsOk());
  EXPECT_THAT(hub_.range_requests(), ElementsAre(Pair(HasSubstr("/model.safetensors"),
                                                      "bytes=" + std::to_string(kept) + "-")));
  EXPECT_EQ(ReadFileBytes(Blob(Sha256Hex(content))), content);
  EXPECT_FALSE(fs::exists(incomplete));
}

TEST_F(HfCacheTest, ProgressCoversEveryFileAndAddsUp) {
  const std::map<std::string, std::string> files = ModelFiles();
  hub_.AddCommit(RepoKind::kModel, kRepo, files);
  int64_t total = 0;
  for (const auto& [path, content] : files) total += static_cast<int64_t>(content.size());
  std::mutex mu;
  std::vector<HubDownloadProgress> reports;
  HubDownloadOptions options = Options();
  options.progress = [&](const HubDownloadProgress& p) {
    std::lock_guard<std::mutex> lock(mu);
    reports.push_back(p);
  };
  ASSERT_THAT(Download(kRepo, "", options), IsOk());
  std::map<std::string, int> finished;
  int64_t last_done = -1;
  for (const HubDownloadProgress& p : reports) {
    EXPECT_EQ(p.bytes_total, total);
    EXPECT_EQ(p.files_total, static_cast<int>(files.size()));
    EXPECT_GE(p.bytes_done, last_done);
    last_done = p.bytes_done;
    if (p.file_finished) {
      ++finished[p.file];
      EXPECT_EQ(p.file_bytes_done, p.file_bytes_total);
      EXPECT_EQ(p.file_bytes_total, static_cast<int64_t>(files.at(p.file).size()));
    }
  }
  EXPECT_EQ(finished.size(), files.size());
  for (const auto& [file, count] : finished) EXPECT_EQ(count, 1) << file;
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.back().bytes_done, total);
  EXPECT_EQ(reports.back().files_done, static_cast<int>(files.size()));
}

// Three 1 MiB LFS files served slowly, so that two workers are downloading at the same time.
std::map<std::string, std::string> SlowFiles() {
  return {{"a.safetensors", RandomBytes(kMiB, 21)},
          {"b.safetensors", RandomBytes(kMiB, 22)},
          {"c/d.safetensors", RandomBytes(kMiB, 23)},
          {"config.json", "{}"}};
}

void ExpectIntactCache(const std::string& snapshot_dir, const std::map<std::string, std::string>& files) {
  for (const auto& [path, content] : files) {
    EXPECT_EQ(Sha256Hex(ReadFileBytes(snapshot_dir + "/" + path)), Sha256Hex(content)) << path;
  }
}

TEST_F(HfCacheTest, TwoThreadsSharingACacheFetchEachBlobOnce) {
  const std::map<std::string, std::string> files = SlowFiles();
  hub_.AddCommit(RepoKind::kModel, kRepo, files);
  hub_.ThrottleBodies(64 * 1024, std::chrono::milliseconds(2));
  absl::StatusOr<HubSnapshot> first;
  absl::StatusOr<HubSnapshot> second;
  std::thread other([&] { second = Download(kRepo); });
  first = Download(kRepo);
  other.join();
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(first->snapshot_dir, second->snapshot_dir);
  EXPECT_THAT(FileGets(), SizeIs(files.size()));  // the lock made the second worker wait, then reuse
  ExpectIntactCache(first->snapshot_dir, files);
  EXPECT_THAT(FilesEndingWith(cache_dir_, ".incomplete"), IsEmpty());
  // Every file was fetched by exactly one of the two.
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_NE(first->files[i].was_cached, second->files[i].was_cached) << first->files[i].path;
  }
}

TEST_F(HfCacheTest, TwoProcessesSharingACacheFetchEachBlobOnce) {
  const std::map<std::string, std::string> files = SlowFiles();
  hub_.AddCommit(RepoKind::kModel, kRepo, files);
  hub_.ThrottleBodies(64 * 1024, std::chrono::milliseconds(2));
  const HubClientOptions client_options = ClientOptions();
  const HubDownloadOptions options = Options();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    HubClient client(client_options);
    absl::StatusOr<HubSnapshot> s = DownloadSnapshot(client, RepoKind::kModel, kRepo, "", "", options);
    if (!s.ok()) fprintf(stderr, "child: %s\n", s.status().ToString().c_str());
    _exit(s.ok() ? 0 : 1);
  }
  absl::StatusOr<HubSnapshot> mine = Download(kRepo);
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0);
  ASSERT_THAT(mine, IsOk());
  EXPECT_THAT(FileGets(), SizeIs(files.size()));
  ExpectIntactCache(mine->snapshot_dir, files);
  EXPECT_THAT(FilesEndingWith(cache_dir_, ".incomplete"), IsEmpty());
  EXPECT_EQ(ReadFileBytes(RepoDir() + "/refs/main"), mine->commit_sha);
}

TEST_F(HfCacheTest, BadArgumentsAreInvalidArgument) {
  HubDownloadOptions options = Options();
  options.parallel_files = 0;
  EXPECT_THAT(Download(kRepo, "", options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("parallel_files")));
  EXPECT_THAT(Download("bad--repo"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("repo_id")));
  EXPECT_THAT(FindCachedSnapshot(RepoKind::kModel, kRepo, "../x", Options()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("revision")));
  EXPECT_EQ(hub_.request_count(), 0);
}

TEST(HfCacheEnvTest, CacheDirFollowsHuggingfaceHubsVariables) {
  const char* names[] = {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"};
  std::map<std::string, std::optional<std::string>> saved;
  for (const char* n : names) {
    const char* v = std::getenv(n);
    saved[n] = v != nullptr ? std::optional<std::string>(v) : std::nullopt;
    unsetenv(n);
  }
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(HubCacheDirFromEnv(), "/home/u/.cache/huggingface/hub");
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  EXPECT_EQ(HubCacheDirFromEnv(), "/xdg/huggingface/hub");
  setenv("HF_HOME", "~/hf", 1);
  EXPECT_EQ(HubCacheDirFromEnv(), "/home/u/hf/hub");
  setenv("HF_HUB_CACHE", "/data/hub-cache", 1);
  EXPECT_EQ(HubCacheDirFromEnv(), "/data/hub-cache");
  for (const auto& [n, v] : saved) {
    if (v) {
      setenv(n.c_str(), v->c_str(), 1);
    } else {
      unsetenv(n.c_str());
    }
  }
  EXPECT_EQ(HubRepoFolderName(RepoKind::kModel, "meta-llama/Llama-3.1-8B"), "models--meta-llama--Llama-3.1-8B");
  EXPECT_EQ(HubRepoFolderName(RepoKind::kDataset, "tatsu-lab/alpaca"), "datasets--tatsu-lab--alpaca");
  EXPECT_EQ(HubRepoFolderName(RepoKind::kModel, "gpt2"), "models--gpt2");
}

}  // namespace
}  // namespace tuneforge
