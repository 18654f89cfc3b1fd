// HubClient against the fake Hub over loopback: repo info, trees, files and ranges, the error codes and messages
// a user sees (missing, gated, private, overloaded, unreachable), retries, and that the token never leaks.
#include "common/hf_hub_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/support/fake_hub.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::tuneforge::testing::FakeHub;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::GeneratedReference;
using ::tuneforge::testing::StatusIs;

constexpr char kRepo[] = "tiny-org/tiny-llama";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The llama case generated at test time: a model with inputs.json, logits and a PEFT adapter in lora/ (10 files).
std::string LlamaDir() { return GeneratedReference() + "/llama"; }

// The reference model's files on disk: relative path -> absolute path.
std::map<std::string, std::string> LlamaFiles() {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(LlamaDir())) {
    if (e.is_regular_file()) files[std::filesystem::relative(e.path(), LlamaDir()).generic_string()] = e.path();
  }
  return files;
}

// A port nothing listens on: bound, then closed.
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A raw HTTP exchange (HEAD or ranged GET) with the fake, without following redirects.
struct RawResponse {
  long status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
};

size_t RawHeader(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  const size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    value.erase(value.find_last_not_of("\r\n ") + 1);
    static_cast<RawResponse*>(user)->headers[name] = value;
  }
  return size * n;
}

size_t RawBody(char* data, size_t size, size_t n, void* user) {
  static_cast<RawResponse*>(user)->body.append(data, size * n);
  return size * n;
}

RawResponse Raw(const std::string& url, bool head, const std::string& range = "") {
  RawResponse r;
  CURL* c = curl_easy_init();
  curl_slist* headers = nullptr;
  if (!range.empty()) headers = curl_slist_append(headers, ("Range: bytes=" + range).c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_NOBODY, head ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &RawHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &RawBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  EXPECT_EQ(curl_easy_perform(c), CURLE_OK) << url;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  return r;
}

class HubClientTest : public ::testing::Test {
 protected:
  HubClientOptions Options() const {
    HubClientOptions o;
    o.endpoint = hub_.endpoint();
    o.initial_backoff = std::chrono::milliseconds(1);
    o.request_timeout = std::chrono::milliseconds(10000);
    return o;
  }
  std::string AddLlama() { return hub_.AddCommitFromDir(RepoKind::kModel, kRepo, LlamaDir()); }

  FakeHub hub_;
};

TEST_F(HubClientTest, RepoInfoOfReferenceModelHasTheRealSizesAndHashes) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string sha = AddLlama();
  ASSERT_EQ(sha.size(), 40u);
  HubClient client(Options());
  absl::StatusOr<HubRepoInfo> info = client.GetRepoInfo(RepoKind::kModel, kRepo, "", "");
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->repo_id, kRepo);
  EXPECT_EQ(info->sha, sha);
  EXPECT_FALSE(info->gated);
  EXPECT_FALSE(info->is_private);
  const std::map<std::string, std::string> on_disk = LlamaFiles();
  ASSERT_EQ(info->files.size(), on_disk.size());
  for (const HubFile& f : info->files) {
    SCOPED_TRACE(f.path);
    ASSERT_EQ(on_disk.count(f.path), 1u);
    const std::string& path = on_disk.at(f.path);
    EXPECT_EQ(f.size, static_cast<int64_t>(std::filesystem::file_size(path)));
    EXPECT_EQ(f.blob_id.size(), 40u);
    if (f.path.find(".safetensors") != std::string::npos) {
      EXPECT_TRUE(f.lfs);
      EXPECT_EQ(f.sha256, *Sha256File(path));
    } else {
      EXPECT_FALSE(f.lfs);
      EXPECT_THAT(f.sha256, IsEmpty());
    }
  }
  EXPECT_THAT(hub_.request_targets(),
              ElementsAre("GET /api/models/tiny-org/tiny-llama/revision/main?blobs=true"));
}

TEST_F(HubClientTest, PlainFilesCarryTheGitBlobId) {
  // `printf 'hello\n' | git hash-object --stdin`
  hub_.AddCommit(RepoKind::kModel, "org/hello", {{"hello.txt", "hello\n"}});
  HubClient client(Options());
  absl::StatusOr<HubRepoInfo> info = client.GetRepoInfo(RepoKind::kModel, "org/hello", "main", "");
  ASSERT_THAT(info, IsOk());
  ASSERT_THAT(info->files, SizeIs(1));
  EXPECT_EQ(info->files[0].blob_id, "ce013625030ba8dba906f756967f9e9ca394464a");
  EXPECT_EQ(info->files[0].size, 6);
}

TEST_F(HubClientTest, RevisionByBranchTagLikeRefAndSha) {
  const std::string first = hub_.AddCommit(RepoKind::kModel, "org/m", {{"a.txt", "one"}});
  const std::string second = hub_.AddCommit(RepoKind::kModel, "org/m", {{"a.txt", "two"}, {"b.txt", "x"}});
  const std::string pr = hub_.AddCommit(RepoKind::kModel, "org/m", {{"c.txt", "pr"}}, "refs/pr/1");
  EXPECT_NE(first, second);
  HubClient client(Options());

  absl::StatusOr<HubRepoInfo> main = client.GetRepoInfo(RepoKind::kModel, "org/m", "main", "");
  ASSERT_THAT(main, IsOk());
  EXPECT_EQ(main->sha, second);
  EXPECT_THAT(main->files, SizeIs(2));

  absl::StatusOr<HubRepoInfo> old = client.GetRepoInfo(RepoKind::kModel, "org/m", first, "");
  ASSERT_THAT(old, IsOk());
  EXPECT_EQ(old->sha, first);
  ASSERT_THAT(old->files, SizeIs(1));
  EXPECT_EQ(*client.FetchFile(RepoKind::kModel, "org/m", first, "a.txt", ""), "one");
  EXPECT_EQ(*client.FetchFile(RepoKind::kModel, "org/m", second, "a.txt", ""), "two");

  absl::StatusOr<HubRepoInfo> by_pr = client.GetRepoInfo(RepoKind::kModel, "org/m", "refs/pr/1", "");
  ASSERT_THAT(by_pr, IsOk());
  EXPECT_EQ(by_pr->sha, pr);
  EXPECT_THAT(hub_.request_targets(), Contains("GET /api/models/org/m/revision/refs%2Fpr%2F1?blobs=true"));
}

TEST_F(HubClientTest, DatasetsUseTheirOwnUrls) {
  const std::string sha = hub_.AddCommit(RepoKind::kDataset, "org/ds",
                                         {{"data/train.jsonl", "{\"text\": \"hi\"}\n"}, {"data/test.parquet", "PAR1"}});
  HubClient client(Options());
  absl::StatusOr<HubRepoInfo> info = client.GetRepoInfo(RepoKind::kDataset, "org/ds", "", "");
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->sha, sha);
  ASSERT_THAT(info->files, SizeIs(2));
  EXPECT_EQ(info->files[0].path, "data/test.parquet");
  EXPECT_TRUE(info->files[0].lfs);
  EXPECT_EQ(info->files[0].sha256, Sha256Hex("PAR1"));
  EXPECT_EQ(*client.FetchFile(RepoKind::kDataset, "org/ds", sha, "data/train.jsonl", ""), "{\"text\": \"hi\"}\n");
  EXPECT_THAT(hub_.request_targets(), Contains("GET /datasets/org/ds/resolve/" + sha + "/data/train.jsonl"));
  // The same id as a model does not exist.
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, "org/ds", "", "tok"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("model repository 'org/ds' not found")));
}

TEST_F(HubClientTest, TreeListsTheSameFilesAsRepoInfoAcrossPages) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string sha = AddLlama();
  HubClient client(Options());
  absl::StatusOr<HubRepoInfo> info = client.GetRepoInfo(RepoKind::kModel, kRepo, sha, "");
  ASSERT_THAT(info, IsOk());
  absl::StatusOr<std::vector<HubFile>> tree = client.ListTree(RepoKind::kModel, kRepo, sha, "");
  ASSERT_THAT(tree, IsOk());
  auto same = [&](const std::vector<HubFile>& files) {
    ASSERT_EQ(files.size(), info->files.size());
    for (size_t i = 0; i < files.size(); ++i) {
      EXPECT_EQ(files[i].path, info->files[i].path);
      EXPECT_EQ(files[i].size, info->files[i].size);
      EXPECT_EQ(files[i].sha256, info->files[i].sha256);
      EXPECT_EQ(files[i].blob_id, info->files[i].blob_id);
      EXPECT_EQ(files[i].lfs, info->files[i].lfs);
    }
  };
  same(*tree);  // the "lora" directory entry is not a file
  EXPECT_THAT(hub_.request_targets(), Contains("GET /api/models/tiny-org/tiny-llama/tree/" + sha + "?recursive=true"));

  // 10 files + 1 directory in pages of 3: four requests.
  hub_.SetTreePageSize(3);
  const int before = hub_.request_count();
  absl::StatusOr<std::vector<HubFile>> paged = client.ListTree(RepoKind::kModel, kRepo, sha, "");
  ASSERT_THAT(paged, IsOk());
  same(*paged);
  EXPECT_EQ(hub_.request_count() - before, 4);
}

TEST_F(HubClientTest, FetchFileReturnsTheBytes) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string sha = AddLlama();
  HubClient client(Options());
  for (const std::string name : {"config.json", "model.safetensors", "lora/adapter_config.json"}) {
    absl::StatusOr<std::string> bytes = client.FetchFile(RepoKind::kModel, kRepo, sha, name, "");
    ASSERT_THAT(bytes, IsOk()) << name;
    EXPECT_EQ(*bytes, ReadFile(LlamaDir() + "/" + name)) << name;
  }
}

TEST_F(HubClientTest, FetchRangeWithAndWithoutServerRangeSupport) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string sha = AddLlama();
  const std::string model = ReadFile(LlamaDir() + "/model.safetensors");
  HubClient client(Options());
  for (bool ignore : {false, true}) {
    SCOPED_TRACE(ignore ? "server ignores Range" : "server honours Range");
    hub_.IgnoreRange(ignore);
    EXPECT_EQ(*client.FetchRange(RepoKind::kModel, kRepo, sha, "model.safetensors", "", 0, 8), model.substr(0, 8));
    EXPECT_EQ(*client.FetchRange(RepoKind::kModel, kRepo, sha, "model.safetensors", "", 8, 1000),
              model.substr(8, 1000));
    // Past the end: what exists.
    EXPECT_EQ(*client.FetchRange(RepoKind::kModel, kRepo, sha, "model.safetensors", "", model.size() - 10, 100),
              model.substr(model.size() - 10));
    EXPECT_THAT(client.FetchRange(RepoKind::kModel, kRepo, sha, "model.safetensors", "", model.size(), 10),
                StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("model.safetensors")));
  }
}

TEST_F(HubClientTest, ATokenThatWouldAddAHeaderLineIsRefusedBeforeAnyRequest) {
  HubClient client(Options());
  const std::string token = "hf_abc\r\nX-Injected: yes";
  const std::string sha(40, 'a');
  auto refused = StatusIs(absl::StatusCode::kInvalidArgument,
                          AllOf(HasSubstr("token contains a character that cannot be part of a token (byte 0x0D at "
                                          "offset 6)"),
                                ::testing::Not(HasSubstr("hf_abc")), ::testing::Not(HasSubstr("Injected"))));
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, "org/m", "", token), refused);
  EXPECT_THAT(client.ListTree(RepoKind::kModel, "org/m", sha, token), refused);
  EXPECT_THAT(client.FetchFile(RepoKind::kModel, "org/m", sha, "config.json", token), refused);
  EXPECT_THAT(client.FetchRange(RepoKind::kModel, "org/m", sha, "config.json", token, 0, 8), refused);
  EXPECT_THAT(client.DownloadToWriter(RepoKind::kModel, "org/m", sha, "config.json", token, 0,
                                      [](std::string_view) { return absl::OkStatus(); }),
              refused);
  EXPECT_EQ(hub_.request_count(), 0);
  EXPECT_THAT(ValidateHubToken(std::string(2000, 'a'), "HF_TOKEN"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("HF_TOKEN is longer than 1024 characters")));
  EXPECT_THAT(ValidateHubToken("hf_AbC-123_xyz", "HF_TOKEN"), IsOk());
}

TEST_F(HubClientTest, MissingRepoRevisionAndFileAreNotFound) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string sha = AddLlama();
  HubClient client(Options());
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, "nobody/missing", "", "hf_some_token"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("repository 'nobody/missing' not found (or it is private and the token cannot read "
                                 "it)")));
  // Anonymous: the Hub answers 401 RepoNotFound, which is still "not found", with a hint about tokens.
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, "nobody/missing", "", ""),
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("'nobody/missing' not found"),
                                                          HasSubstr("set HF_TOKEN on the server"))));
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, kRepo, "no-such-branch", ""),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("revision 'no-such-branch' not found in model repository 'tiny-org/tiny-llama'")));
  EXPECT_THAT(client.ListTree(RepoKind::kModel, kRepo, std::string(40, 'a'), ""),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("revision '" + std::string(40, 'a') + "' not found")));
  EXPECT_THAT(client.FetchFile(RepoKind::kModel, kRepo, sha, "tokenizer.json", ""),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("file 'tokenizer.json' not found in model repository 'tiny-org/tiny-llama'")));
}

TEST_F(HubClientTest, PlainNotFoundNamesThePath) {
  HubClientOptions options = Options();
  options.endpoint = hub_.endpoint() + "/mirror/";  // not a Hub: nothing under it is routed
  HubClient client(options);
  EXPECT_EQ(client.endpoint(), hub_.endpoint() + "/mirror");
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, "org/x", "", ""),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("'/api/models/org/x/revision/main?blobs=true' not found"),
                             HasSubstr("HTTP 404"), HasSubstr("HF_ENDPOINT"))));
}

TEST_F(HubClientTest, PrivateRepoNeedsAnAllowedToken) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  AddLlama();
  hub_.SetPrivate(kRepo, true);
  hub_.AllowToken("hf_good");
  HubClient client(Options());
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, kRepo, "", "hf_wrong"),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       AllOf(HasSubstr("'tiny-org/tiny-llama' requires a Hugging Face token"),
                             HasSubstr("pass a valid one in the request's token field or set HF_TOKEN on the server"))));
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, kRepo, "", ""),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("if it is private, pass one in the request's token "
                                                              "field or set HF_TOKEN on the server")));
  absl::StatusOr<HubRepoInfo> info = client.GetRepoInfo(RepoKind::kModel, kRepo, "", "hf_good");
  ASSERT_THAT(info, IsOk());
  EXPECT_TRUE(info->is_private);
  EXPECT_THAT(client.FetchFile(RepoKind::kModel, kRepo, info->sha, "config.json", "hf_good"), IsOk());
}

TEST_F(HubClientTest, GatedRepoListsButRefusesFilesUntilConditionsAreAccepted) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string sha = AddLlama();
  hub_.SetGated(kRepo, true);
  hub_.AllowToken("hf_accepted");
  HubClient client(Options());
  absl::StatusOr<HubRepoInfo> info = client.GetRepoInfo(RepoKind::kModel, kRepo, "", "");
  ASSERT_THAT(info, IsOk());
  EXPECT_TRUE(info->gated);
  const std::string accept = "'tiny-org/tiny-llama' is a gated repository: accept its conditions at " +
                             hub_.endpoint() + "/tiny-org/tiny-llama with the account whose token you use";
  EXPECT_THAT(client.FetchFile(RepoKind::kModel, kRepo, sha, "config.json", ""),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr(accept), HasSubstr("no token was sent"), HasSubstr("HTTP 401"))));
  EXPECT_THAT(client.FetchFile(RepoKind::kModel, kRepo, sha, "config.json", "hf_not_accepted"),
              StatusIs(absl::StatusCode::kPermissionDenied, AllOf(HasSubstr(accept), HasSubstr("HTTP 403"))));
  EXPECT_THAT(client.FetchFile(RepoKind::kModel, kRepo, sha, "config.json", "hf_accepted"), IsOk());

  hub_.AddCommit(RepoKind::kDataset, "org/gated-ds", {{"a.jsonl", "{}\n"}});
  hub_.SetGated("org/gated-ds", true);
  EXPECT_THAT(client.FetchFile(RepoKind::kDataset, "org/gated-ds", "", "a.jsonl", ""),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("accept its conditions at " + hub_.endpoint() + "/datasets/org/gated-ds")));
}

TEST_F(HubClientTest, RateLimitedRequestsAreRetried) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  AddLlama();
  HubClient client(Options());
  hub_.FailNextRequests(429, 2);
  const int before = hub_.request_count();
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, kRepo, "", ""), IsOk());
  EXPECT_EQ(hub_.request_count() - before, 3);

  hub_.FailNextRequests(503, 3);
  absl::StatusOr<std::string> config = client.FetchFile(RepoKind::kModel, kRepo, "", "config.json", "");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(*config, ReadFile(LlamaDir() + "/config.json"));
  EXPECT_EQ(hub_.request_count() - before, 3 + 4);
}

TEST_F(HubClientTest, ServerErrorsForeverBecomeUnavailableAfterTheAttempts) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  AddLlama();
  hub_.FailNextRequests(500, 1000);
  HubClient client(Options());
  int before = hub_.request_count();
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, kRepo, "", ""),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("Hugging Face Hub at " + hub_.endpoint() +
                                 " is unavailable (HTTP 500 after 4 attempts); retry later")));
  EXPECT_EQ(hub_.request_count() - before, 4);

  HubClientOptions two = Options();
  two.max_attempts = 2;
  before = hub_.request_count();
  EXPECT_THAT(HubClient(two).ListTree(RepoKind::kModel, kRepo, "main", ""),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("(HTTP 500 after 2 attempts)")));
  EXPECT_EQ(hub_.request_count() - before, 2);
}

TEST_F(HubClientTest, ConnectionRefusedIsUnavailable) {
  HubClientOptions options = Options();
  options.endpoint = "http://127.0.0.1:" + std::to_string(ClosedPort());
  HubClient client(options);
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, kRepo, "", ""),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("Hugging Face Hub at " + options.endpoint + " is unavailable ("),
                             HasSubstr("after 4 attempts); retry later"))));
}

TEST_F(HubClientTest, SlowAnswersTimeOutAndAreRetried) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  AddLlama();
  HubClientOptions options = Options();
  options.request_timeout = std::chrono::milliseconds(300);
  HubClient client(options);
  hub_.StallNextRequests(1, std::chrono::milliseconds(1500));
  int before = hub_.request_count();
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, kRepo, "", ""), IsOk());
  EXPECT_EQ(hub_.request_count() - before, 2);

  options.max_attempts = 2;
  hub_.StallNextRequests(2, std::chrono::milliseconds(1500));
  EXPECT_THAT(HubClient(options).GetRepoInfo(RepoKind::kModel, kRepo, "", ""),
              StatusIs(absl::StatusCode::kUnavailable, AllOf(HasSubstr("timed out"), HasSubstr("after 2 attempts"))));
}

TEST_F(HubClientTest, RelativeRedirectsAreFollowed) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string sha = AddLlama();
  hub_.RedirectResolveRelative(true);
  HubClient client(Options());
  const std::string model = ReadFile(LlamaDir() + "/model.safetensors");
  absl::StatusOr<std::string> bytes = client.FetchFile(RepoKind::kModel, kRepo, sha, "model.safetensors", "tok");
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(*bytes, model);
  EXPECT_EQ(*client.FetchRange(RepoKind::kModel, kRepo, sha, "model.safetensors", "", 100, 50), model.substr(100, 50));
  const std::vector<std::string> targets = hub_.request_targets();
  EXPECT_THAT(targets, Contains("GET /tiny-org/tiny-llama/resolve/" + sha + "/model.safetensors"));
  EXPECT_THAT(targets, Contains("GET /blobs/" + Sha256Hex(model)));
}

TEST_F(HubClientTest, FilesOverTheLimitAreResourceExhausted) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string sha = AddLlama();
  HubClient client(Options());
  EXPECT_THAT(client.FetchFile(RepoKind::kModel, kRepo, sha, "model.safetensors", "", 1000),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("'model.safetensors'"), HasSubstr("1000-byte limit"))));
  EXPECT_THAT(client.FetchFile(RepoKind::kModel, kRepo, sha, "generation_config.json", "", 1000), IsOk());
}

TEST_F(HubClientTest, MalformedAnswersAreDataLoss) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  AddLlama();
  hub_.OverrideResponse("/api/models/org/broken/revision/main", 200, "application/json", "{\"sha\": ");
  hub_.OverrideResponse("/api/models/org/nosha/revision/main", 200, "application/json", "{\"siblings\": []}");
  hub_.OverrideResponse("/api/models/org/badtree/tree/main", 200, "application/json", "{\"not\": \"a list\"}");
  HubClient client(Options());
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, "org/broken", "", ""),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("unexpected response from the Hub")));
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, "org/nosha", "", ""),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("'sha' is missing")));
  EXPECT_THAT(client.ListTree(RepoKind::kModel, "org/badtree", "main", ""),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not a JSON list")));
}

TEST_F(HubClientTest, InvalidArgumentsFailBeforeAnyRequest) {
  HubClient client(Options());
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, "a/b/c", "", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("repo_id: 'a/b/c' is not a Hub repo id")));
  EXPECT_THAT(client.GetRepoInfo(RepoKind::kModel, kRepo, "main branch", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("revision: 'main branch'")));
  EXPECT_THAT(client.FetchFile(RepoKind::kModel, kRepo, "main", "../etc/passwd", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("file path '../etc/passwd'")));
  EXPECT_THAT(client.FetchFile(RepoKind::kModel, kRepo, "main", "/abs", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("file path '/abs'")));
  EXPECT_EQ(hub_.request_count(), 0);
}

TEST(ValidateRepoIdTest, AcceptsHubIds) {
  for (const char* id : {"gpt2", "meta-llama/Llama-2-7b-hf", "Qwen/Qwen2.5-0.5B-Instruct", "a/b", "org_1/x.y_z"}) {
    EXPECT_THAT(ValidateRepoId(id, "huggingface.repo_id"), IsOk()) << id;
  }
  EXPECT_THAT(ValidateRepoId(std::string(96, 'a') + "/" + std::string(96, 'b'), "f"), IsOk());
}

TEST(ValidateRepoIdTest, RejectsWhatTheHubRejects) {
  EXPECT_THAT(ValidateRepoId("a/b/c", "huggingface.repo_id"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("huggingface.repo_id: 'a/b/c' is not a Hub repo id; use 'org/name'")));
  for (const std::string& id :
       {std::string(), std::string(97, 'a'), "org/" + std::string(97, 'b'), std::string("../x"), std::string("a/b/c"),
        std::string("org/na me"), std::string("org/name'; DROP TABLE models;--"), std::string("x\" OR 1=1"),
        std::string("a--b/c"), std::string("org/a..b"), std::string("org/name."), std::string("-org/name"),
        std::string("/name"), std::string("org/"), std::string("org/na\nme"), std::string("org\\name")}) {
    EXPECT_THAT(ValidateRepoId(id, "huggingface.repo_id"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("huggingface.repo_id: "), HasSubstr("is not a Hub repo id"))))
        << id;
  }
  // Control characters are shown escaped, long values shortened.
  EXPECT_THAT(ValidateRepoId("org/na\nme", "f"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("na\\nme")));
  EXPECT_THAT(ValidateRepoId(std::string(500, 'a'), "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, Not(HasSubstr(std::string(200, 'a')))));
}

TEST(ValidateRevisionTest, AcceptsBranchesTagsAndShas) {
  for (const std::string& rev : {std::string(), std::string("main"), std::string("refs/pr/1"), std::string("v1.0"),
                                std::string(40, 'f'), std::string("feature/x-y_z"), std::string(255, 'r')}) {
    EXPECT_THAT(ValidateRevision(rev, "huggingface.revision"), IsOk()) << rev;
  }
}

TEST(ValidateRevisionTest, RejectsWhatGitRejects) {
  for (const std::string& rev :
       {std::string(256, 'r'), std::string("../x"), std::string("a..b"), std::string("main branch"),
        std::string("a\nb"), std::string("a\tb"), std::string("main'; DROP TABLE models;--"), std::string("x:y"),
        std::string("x~1"), std::string("x^"), std::string("*"), std::string("feature/"), std::string("/main"),
        std::string("a//b"), std::string("x.lock"), std::string("x@{1}")}) {
    EXPECT_THAT(ValidateRevision(rev, "huggingface.revision"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("huggingface.revision: "), HasSubstr("is not a branch, tag or commit sha"))))
        << rev;
  }
}

TEST_F(HubClientTest, TokenNeverAppearsInErrorsOrLogs) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string token = "hf_SECRET_token_value_1234567890";
  const std::string sha = AddLlama();
  hub_.AddCommit(RepoKind::kModel, "org/private", {{"a.txt", "a"}});
  hub_.SetPrivate("org/private", true);
  hub_.SetGated(kRepo, true);
  // A server that echoes what it was sent must not make the token visible either.
  hub_.OverrideResponse("/api/models/org/echo/revision/main", 200, "application/json",
                        "{\"sha\": \"Bearer " + token + "\"}");

  std::ostringstream log;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));

  HubClient client(Options());
  HubClientOptions refused = Options();
  refused.endpoint = "http://127.0.0.1:" + std::to_string(ClosedPort());
  std::vector<absl::Status> errors;
  errors.push_back(client.GetRepoInfo(RepoKind::kModel, "nobody/missing", "", token).status());
  errors.push_back(client.GetRepoInfo(RepoKind::kModel, kRepo, "nope", token).status());
  errors.push_back(client.FetchFile(RepoKind::kModel, kRepo, sha, "missing.json", token).status());
  errors.push_back(client.FetchFile(RepoKind::kModel, kRepo, sha, "config.json", token).status());
  errors.push_back(client.GetRepoInfo(RepoKind::kModel, "org/private", "", token).status());
  errors.push_back(client.FetchFile(RepoKind::kModel, kRepo, sha, "model.safetensors", token, 10).status());
  errors.push_back(client.GetRepoInfo(RepoKind::kModel, "org/echo", "", token).status());
  errors.push_back(client.FetchFile(RepoKind::kModel, kRepo, sha, "../x", token).status());
  hub_.FailNextRequests(503, 100);
  errors.push_back(client.ListTree(RepoKind::kModel, kRepo, sha, token).status());
  hub_.FailNextRequests(503, 0);
  errors.push_back(HubClient(refused).GetRepoInfo(RepoKind::kModel, kRepo, "", token).status());
  spdlog::set_default_logger(previous);

  ASSERT_THAT(errors, SizeIs(10));
  for (const absl::Status& s : errors) {
    EXPECT_FALSE(s.ok());
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr(token))) << s;
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("SECRET"))) << s;
  }
  EXPECT_THAT(log.str(), HasSubstr("retrying"));  // the retries were logged
  EXPECT_THAT(log.str(), Not(HasSubstr("SECRET")));
  // The token did go out, as a Bearer header.
  EXPECT_THAT(hub_.authorization_headers(), Contains("Bearer " + token));
}

TEST_F(HubClientTest, AuthorizationHeaderOnlyWithAToken) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string sha = AddLlama();
  HubClient client(Options());
  ASSERT_THAT(client.GetRepoInfo(RepoKind::kModel, kRepo, "", ""), IsOk());
  ASSERT_THAT(client.ListTree(RepoKind::kModel, kRepo, sha, ""), IsOk());
  ASSERT_THAT(client.FetchFile(RepoKind::kModel, kRepo, sha, "config.json", ""), IsOk());
  EXPECT_THAT(hub_.authorization_headers(), IsEmpty());
  ASSERT_THAT(client.FetchRange(RepoKind::kModel, kRepo, sha, "config.json", "hf_abc", 0, 4), IsOk());
  EXPECT_THAT(hub_.authorization_headers(), ElementsAre("Bearer hf_abc"));
}

TEST(HubClientEndpointTest, ExplicitThenHfEndpointThenDefault) {
  const char* saved = std::getenv("HF_ENDPOINT");
  const std::string saved_value = saved != nullptr ? saved : "";
  setenv("HF_ENDPOINT", "http://mirror.example:8080//", 1);
  EXPECT_EQ(HubClient(HubClientOptions{}).endpoint(), "http://mirror.example:8080");
  HubClientOptions explicit_endpoint;
  explicit_endpoint.endpoint = "http://other.example/";
  EXPECT_EQ(HubClient(explicit_endpoint).endpoint(), "http://other.example");
  unsetenv("HF_ENDPOINT");
  EXPECT_EQ(HubClient(HubClientOptions{}).endpoint(), "https://huggingface.co");
  if (saved != nullptr) setenv("HF_ENDPOINT", saved_value.c_str(), 1);
}

TEST(UrlEncodeComponentTest, EncodesEverythingButUnreserved) {
  EXPECT_EQ(UrlEncodeComponent("refs/pr/1"), "refs%2Fpr%2F1");
  EXPECT_EQ(UrlEncodeComponent("a b+c%d?e#f"), "a%20b%2Bc%25d%3Fe%23f");
  EXPECT_EQ(UrlEncodeComponent("Az09-._~"), "Az09-._~");
  HubClient client(HubClientOptions{"http://h"});
  EXPECT_EQ(client.ResolveUrl(RepoKind::kDataset, "org/ds", "refs/pr/2", "dir/a b.json"),
            "http://h/datasets/org/ds/resolve/refs%2Fpr%2F2/dir/a%20b.json");
}

// What the trainer's resumable downloader relies on: HEAD metadata and ranged GETs straight from the fake.
TEST_F(HubClientTest, FakeHubServesDownloadHeadersAndRanges) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string sha = AddLlama();
  const std::string model = ReadFile(LlamaDir() + "/model.safetensors");
  const std::string url = hub_.endpoint() + "/tiny-org/tiny-llama/resolve/main/model.safetensors";
  RawResponse head = Raw(url, /*head=*/true);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["x-repo-commit"], sha);
  EXPECT_EQ(head.headers["x-linked-etag"], "\"" + Sha256Hex(model) + "\"");
  EXPECT_EQ(head.headers["x-linked-size"], std::to_string(model.size()));
  EXPECT_EQ(head.headers["content-length"], std::to_string(model.size()));
  EXPECT_EQ(head.headers["accept-ranges"], "bytes");
  EXPECT_THAT(head.body, IsEmpty());

  RawResponse part = Raw(url, /*head=*/false, "10-19");
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.headers["content-range"], "bytes 10-19/" + std::to_string(model.size()));
  EXPECT_EQ(part.body, model.substr(10, 10));
  RawResponse tail = Raw(url, /*head=*/false, std::to_string(model.size() - 5) + "-");
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.body, model.substr(model.size() - 5));
  EXPECT_EQ(Raw(url, /*head=*/false, std::to_string(model.size()) + "-").status, 416);

  RawResponse plain = Raw(hub_.endpoint() + "/tiny-org/tiny-llama/resolve/main/config.json", /*head=*/true);
  EXPECT_EQ(plain.status, 200);
  EXPECT_EQ(plain.headers.count("x-linked-etag"), 0u);
  EXPECT_EQ(plain.headers["etag"].size(), 42u);  // quoted git blob sha1

  hub_.RedirectResolveRelative(true);
  RawResponse redirect = Raw(url, /*head=*/true);
  EXPECT_EQ(redirect.status, 302);
  EXPECT_EQ(redirect.headers["location"], "/blobs/" + Sha256Hex(model));
  EXPECT_EQ(redirect.headers["x-linked-size"], std::to_string(model.size()));
}

}  // namespace
}  // namespace tuneforge
