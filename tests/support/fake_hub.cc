// The fake Hugging Face Hub: repos and commits in memory, served by cpp-httplib with the real Hub's URL layout,
// JSON shapes, headers and error codes.
#include "tests/support/fake_hub.h"

// libcpp-httplib.so is built with these; Request's layout depends on them, so the header must see them too.
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_OPENSSL_SUPPORT
#endif
#ifndef CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#endif
#ifndef CPPHTTPLIB_BROTLI_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#endif
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "common/sha256.h"
#include "nlohmann/json.hpp"

namespace tuneforge::testing {
namespace {

constexpr size_t kLfsThreshold = 10u << 20;

std::string Sha1Hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

// The id git gives the blob: sha1("blob <len>\0<content>").
std::string GitBlobSha1(const std::string& content) {
  std::string object = "blob " + std::to_string(content.size());
  object.push_back('\0');
  object += content;
  return Sha1Hex(object);
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool IsLfsPath(const std::string& path, size_t size) {
  for (const char* ext : {".safetensors", ".bin", ".parquet", ".gguf"}) {
    if (EndsWith(path, ext)) return true;
  }
  return size > kLfsThreshold;
}

bool IsLowerHex40(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string Join(const std::vector<std::string>& parts, size_t from, const std::string& sep) {
  std::string out;
  for (size_t i = from; i < parts.size(); ++i) {
    if (i > from) out += sep;
    out += parts[i];
  }
  return out;
}

const char* KindWord(RepoKind kind) { return kind == RepoKind::kDataset ? "dataset" : "model"; }

}  // namespace

struct FakeHub::State {
  struct File {
    std::shared_ptr<const std::string> bytes;
    std::string sha256;
    std::string blob_id;  // of the pointer file for LFS files
    bool lfs = false;
    size_t pointer_size = 0;
    const std::string& oid() const { return lfs ? sha256 : blob_id; }
  };
  struct Commit {
    std::string sha;
    std::map<std::string, File> files;
    std::string card_data;  // JSON text served as "cardData"; "" for none
  };
  struct Repo {
    std::map<std::string, std::string> refs;  // branch -> sha
    std::map<std::string, Commit> commits;    // sha -> commit
  };

  mutable std::mutex mu;
  std::map<std::pair<RepoKind, std::string>, Repo> repos;
  std::set<std::string> gated;
  std::set<std::string> private_repos;
  std::set<std::string> allowed_tokens;
  std::map<std::string, std::shared_ptr<const std::string>> blobs;  // oid -> bytes, for /blobs/{oid}
  int fail_status = 0;
  int fail_count = 0;
  int stall_count = 0;
  std::chrono::milliseconds stall_delay{0};
  bool redirect_relative = false;
  bool ignore_range = false;
  int fail_resolve_status = 0;
  int fail_resolve_count = 0;
  int drop_count = 0;
  size_t drop_bytes = 0;
  int corrupt_count = 0;
  size_t throttle_chunk = 0;
  std::chrono::milliseconds throttle_delay{0};
  std::vector<std::pair<std::string, std::string>> ranges;
  int tree_page_size = 0;
  struct Canned {
    int status;
    std::string content_type;
    std::string body;
  };
  std::map<std::string, Canned> overrides;  // raw path -> answer
  int requests = 0;
  std::vector<std::string> auth_headers;
  std::vector<std::string> targets;
  uint64_t commit_counter = 0;

  httplib::Server server;
  std::thread thread;
  int port = 0;

  std::string Endpoint() const { return "http://127.0.0.1:" + std::to_string(port); }

  std::string AddCommit(RepoKind kind, const std::string& repo_id, const std::map<std::string, std::string>& files,
                        const std::string& branch) {
    std::lock_guard<std::mutex> lock(mu);
    Commit commit;
    std::string fingerprint = std::string("commit ") + KindWord(kind) + " " + repo_id + " " +
                              std::to_string(++commit_counter) + "\n";
    for (const auto& [path, content] : files) {
      File f;
      f.bytes = std::make_shared<const std::string>(content);
      f.sha256 = Sha256Hex(content);
      f.lfs = IsLfsPath(path, content.size());
      if (f.lfs) {
        const std::string pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + f.sha256 +
                                    "\nsize " + std::to_string(content.size()) + "\n";
        f.blob_id = GitBlobSha1(pointer);
        f.pointer_size = pointer.size();
      } else {
        f.blob_id = GitBlobSha1(content);
      }
      blobs[f.oid()] = f.bytes;
      fingerprint += path + '\0' + f.oid() + "\n";
      commit.files.emplace(path, std::move(f));
    }
    commit.sha = Sha1Hex(fingerprint);
    Repo& repo = repos[{kind, repo_id}];
    repo.refs[branch] = commit.sha;
    const std::string sha = commit.sha;
    repo.commits[sha] = std::move(commit);
    return sha;
  }

  static void Error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
    res.status = status;
    if (!code.empty()) res.set_header("X-Error-Code", code);
    res.set_header("X-Error-Message", message);
    res.set_content(nlohmann::json{{"error", message}}.dump(), "application/json");
  }

  // The repo when the caller may read it (resolve: the files, where gating applies), else writes the Hub's answer.
  const Repo* Access(RepoKind kind, const std::string& repo_id, const std::string& token, bool resolve,
                     httplib::Response& res) const {
    auto it = repos.find({kind, repo_id});
    const bool is_private = private_repos.count(repo_id) > 0;
    const bool allowed = !token.empty() && allowed_tokens.count(token) > 0;
    if (it == repos.end() || (is_private && !allowed)) {
      if (it != repos.end() && !token.empty()) {
        Error(res, 401, "", "Invalid credentials in Authorization header");
      } else if (token.empty()) {
        // Anonymous callers cannot tell a private repo from a missing one.
        Error(res, 401, "RepoNotFound", "Repository not found");
      } else {
        Error(res, 404, "RepoNotFound", "Repository not found");
      }
      return nullptr;
    }
    if (resolve && gated.count(repo_id) > 0 && !allowed) {
      if (token.empty()) {
        Error(res, 401, "GatedRepo",
              std::string("Access to ") + KindWord(kind) + " " + repo_id +
                  " is restricted. You must have access to it and be authenticated to access it. Please log in.");
      } else {
        Error(res, 403, "GatedRepo",
              std::string("Access to ") + KindWord(kind) + " " + repo_id +
                  " is restricted and you are not in the authorized list. Visit " + Endpoint() + "/" +
                  (kind == RepoKind::kDataset ? "datasets/" : "") + repo_id + " to ask for access.");
      }
      return nullptr;
    }
    return &it->second;
  }

  static const Commit* FindCommit(const Repo& repo, const std::string& rev, httplib::Response& res) {
    auto ref = repo.refs.find(rev);
    const std::string sha = ref != repo.refs.end() ? ref->second : rev;
    auto it = IsLowerHex40(sha) ? repo.commits.find(sha) : repo.commits.end();
    if (it == repo.commits.end()) {
      Error(res, 404, "RevisionNotFound", "Invalid rev id: " + rev);
      return nullptr;
    }
    return &it->second;
  }

  void ServeRevision(RepoKind kind, const std::string& repo_id, const std::string& rev, const std::string& token,
                     const httplib::Request& req, httplib::Response& res) const {
    const Repo* repo = Access(kind, repo_id, token, /*resolve=*/false, res);
    if (repo == nullptr) return;
    const Commit* commit = FindCommit(*repo, rev, res);
    if (commit == nullptr) return;
    const bool blobs = req.get_param_value("blobs") == "true";
    nlohmann::json siblings = nlohmann::json::array();
    for (const auto& [path, f] : commit->files) {
      nlohmann::json s{{"rfilename", path}};
      if (blobs) {
        s["blobId"] = f.blob_id;
        s["size"] = f.bytes->size();
        if (f.lfs) s["lfs"] = {{"sha256", f.sha256}, {"size", f.bytes->size()}, {"pointerSize", f.pointer_size}};
      }
      siblings.push_back(std::move(s));
    }
    const size_t slash = repo_id.find('/');
    nlohmann::json doc{{"_id", commit->sha.substr(0, 24)},
                       {"id", repo_id},
                       {"author", slash == std::string::npos ? repo_id : repo_id.substr(0, slash)},
                       {"sha", commit->sha},
                       {"lastModified", "2024-01-01T00:00:00.000Z"},
                       {"private", private_repos.count(repo_id) > 0},
                       {"disabled", false},
                       {"tags", nlohmann::json::array()},
                       {"siblings", std::move(siblings)}};
    doc["gated"] = gated.count(repo_id) > 0 ? nlohmann::json("auto") : nlohmann::json(false);
    if (kind == RepoKind::kModel) doc["modelId"] = repo_id;
    if (!commit->card_data.empty()) doc["cardData"] = nlohmann::json::parse(commit->card_data);
    res.status = 200;
    res.set_content(doc.dump(), "application/json");
  }

  void ServeTree(RepoKind kind, const std::string& repo_id, const std::string& rev, const std::string& dir,
                 const std::string& token, const std::string& raw_path, const httplib::Request& req,
                 httplib::Response& res) const {
    const Repo* repo = Access(kind, repo_id, token, /*resolve=*/false, res);
    if (repo == nullptr) return;
    const Commit* commit = FindCommit(*repo, rev, res);
    if (commit == nullptr) return;
    const bool recursive = req.get_param_value("recursive") == "true" || req.get_param_value("recursive") == "True";
    const std::string prefix = dir.empty() ? "" : dir + "/";
    // Entries: every file and every directory below `dir` (direct children only unless recursive).
    std::map<std::string, nlohmann::json> entries;
    bool dir_exists = dir.empty();
    for (const auto& [path, f] : commit->files) {
      if (path.compare(0, prefix.size(), prefix) != 0) continue;
      dir_exists = true;
      const std::string rest = path.substr(prefix.size());
      auto add_dir = [&](const std::string& sub) {
        entries.emplace(sub, nlohmann::json{{"type", "directory"}, {"oid", Sha1Hex("tree " + sub)}, {"size", 0},
                                            {"path", sub}});
      };
      if (recursive) {
        for (size_t pos = rest.find('/'); pos != std::string::npos; pos = rest.find('/', pos + 1)) {
          add_dir(prefix + rest.substr(0, pos));
        }
      } else if (const size_t pos = rest.find('/'); pos != std::string::npos) {
        add_dir(prefix + rest.substr(0, pos));
        continue;
      }
      nlohmann::json e{{"type", "file"}, {"oid", f.blob_id}, {"size", f.bytes->size()}, {"path", path}};
      if (f.lfs) e["lfs"] = {{"oid", f.sha256}, {"size", f.bytes->size()}, {"pointerSize", f.pointer_size}};
      entries.emplace(path, std::move(e));
    }
    if (!dir_exists) {
      Error(res, 404, "EntryNotFound", "Entry not found");
      return;
    }
    size_t cursor = 0;
    if (req.has_param("cursor")) cursor = std::stoul(req.get_param_value("cursor"));
    const size_t page = tree_page_size > 0 ? static_cast<size_t>(tree_page_size) : entries.size();
    nlohmann::json out = nlohmann::json::array();
    size_t index = 0;
    for (auto& [path, e] : entries) {
      if (index >= cursor && index < cursor + page) out.push_back(e);
      ++index;
    }
    if (cursor + page < entries.size()) {
      res.set_header("Link", "<" + Endpoint() + raw_path + "?recursive=" + (recursive ? "true" : "false") +
                                 "&cursor=" + std::to_string(cursor + page) + ">; rel=\"next\"");
    }
    res.status = 200;
    res.set_content(out.dump(), "application/json");
  }

  // Sends a file body, applying the injected drop / corruption / throttle when one is armed.
  void SendBody(std::string body, httplib::Response& res) {
    if (corrupt_count > 0) {
      --corrupt_count;
      if (!body.empty()) body[body.size() / 2] = static_cast<char>(body[body.size() / 2] ^ 0x5a);
    }
    size_t limit = body.size();
    if (drop_count > 0) {
      --drop_count;
      limit = std::min(limit, drop_bytes);
    }
    if (limit == body.size() && throttle_chunk == 0) {
      res.set_content(body, "application/octet-stream");
      return;
    }
    auto shared = std::make_shared<const std::string>(std::move(body));
    const size_t chunk = throttle_chunk > 0 ? throttle_chunk : shared->size();
    const std::chrono::milliseconds delay = throttle_chunk > 0 ? throttle_delay : std::chrono::milliseconds(0);
    res.set_content_provider(shared->size(), "application/octet-stream",
                             [shared, limit, chunk, delay](size_t offset, size_t length, httplib::DataSink& sink) {
                               if (offset >= limit) return false;  // closes the connection mid-body
                               if (offset > 0 && delay.count() > 0) std::this_thread::sleep_for(delay);
                               const size_t n = std::min({length, chunk, limit - offset});
                               return sink.write(shared->data() + offset, n);
                             });
  }

  // 200 with the bytes, or 206 / 416 for a single "bytes=" range (unless ranges are ignored).
  void ServeBytes(const std::string& bytes, const httplib::Request& req, httplib::Response& res) {
    res.set_header("Accept-Ranges", "bytes");
    const std::string range = req.get_header_value("Range");
    const size_t size = bytes.size();
    if (!ignore_range && range.compare(0, 6, "bytes=") == 0 && range.find(',') == std::string::npos) {
      const std::string spec = range.substr(6);
      const size_t dash = spec.find('-');
      bool ok = dash != std::string::npos;
      size_t first = 0;
      size_t last = size == 0 ? 0 : size - 1;
      try {
        if (ok && dash == 0) {  // suffix: the last N bytes
          const size_t n = std::stoul(spec.substr(1));
          first = n >= size ? 0 : size - n;
        } else if (ok) {
          first = std::stoul(spec.substr(0, dash));
          if (dash + 1 < spec.size()) last = std::min(last, static_cast<size_t>(std::stoul(spec.substr(dash + 1))));
        }
      } catch (const std::exception&) {
        ok = false;
      }
      if (ok) {
        if (first >= size || first > last) {
          res.status = 416;
          res.set_header("Content-Range", "bytes */" + std::to_string(size));
          res.set_content("", "text/plain");
          return;
        }
        res.status = 206;
        res.set_header("Content-Range",
                       "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(size));
        SendBody(bytes.substr(first, last - first + 1), res);
        return;
      }
    }
    res.status = 200;
    SendBody(bytes, res);
  }

  void ServeResolve(RepoKind kind, const std::string& repo_id, const std::string& rev, const std::string& path,
                    const std::string& token, const httplib::Request& req, httplib::Response& res) {
    if (fail_resolve_count > 0) {
      --fail_resolve_count;
      if (fail_resolve_status == 429) res.set_header("Retry-After", "0");
      Error(res, fail_resolve_status, "", "injected failure");
      return;
    }
    const Repo* repo = Access(kind, repo_id, token, /*resolve=*/true, res);
    if (repo == nullptr) return;
    const Commit* commit = FindCommit(*repo, rev, res);
    if (commit == nullptr) return;
    auto it = commit->files.find(path);
    if (it == commit->files.end()) {
      Error(res, 404, "EntryNotFound", "Entry not found");
      return;
    }
    const File& f = it->second;
    res.set_header("X-Repo-Commit", commit->sha);
    res.set_header("ETag", "\"" + f.oid() + "\"");
    if (f.lfs) {
      res.set_header("X-Linked-Etag", "\"" + f.sha256 + "\"");
      res.set_header("X-Linked-Size", std::to_string(f.bytes->size()));
    }
    if (redirect_relative) {
      res.status = 302;
      res.set_header("Location", "/blobs/" + f.oid());
      res.set_content("", "text/plain");
      return;
    }
    ServeBytes(*f.bytes, req, res);
  }

  void Route(const httplib::Request& req, httplib::Response& res) {
    const std::string raw_path = req.target.substr(0, req.target.find('?'));
    std::vector<std::string> segs;
    {
      std::stringstream in(raw_path);
      std::string seg;
      while (std::getline(in, seg, '/')) {
        if (!seg.empty()) segs.push_back(PercentDecode(seg));
      }
    }
    std::string token;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.compare(0, 7, "Bearer ") == 0) token = auth.substr(7);

    std::lock_guard<std::mutex> lock(mu);
    if (auto canned = overrides.find(raw_path); canned != overrides.end()) {
      res.status = canned->second.status;
      res.set_content(canned->second.body, canned->second.content_type);
      return;
    }
    // /api/{models,datasets}/{repo}/{revision|tree}/...
    if (segs.size() >= 4 && segs[0] == "api" && (segs[1] == "models" || segs[1] == "datasets")) {
      const RepoKind kind = segs[1] == "datasets" ? RepoKind::kDataset : RepoKind::kModel;
      size_t op = std::string::npos;
      if (segs.size() >= 6 && (segs[4] == "revision" || segs[4] == "tree")) op = 4;
      else if (segs[3] == "revision" || segs[3] == "tree") op = 3;
      if (op != std::string::npos && op + 1 < segs.size()) {
        const std::string repo_id = op == 4 ? segs[2] + "/" + segs[3] : segs[2];
        if (segs[op] == "revision") {
          ServeRevision(kind, repo_id, Join(segs, op + 1, "/"), token, req, res);
        } else {
          ServeTree(kind, repo_id, segs[op + 1], Join(segs, op + 2, "/"), token, raw_path, req, res);
        }
        return;
      }
    }
    if (segs.size() == 2 && segs[0] == "blobs") {
      auto it = blobs.find(segs[1]);
      if (it == blobs.end()) {
        Error(res, 404, "", "Not Found");
        return;
      }
      res.set_header("ETag", "\"" + segs[1] + "\"");
      ServeBytes(*it->second, req, res);
      return;
    }
    // [datasets/]{repo}/resolve/{rev}/{path}
    {
      const bool dataset = !segs.empty() && segs[0] == "datasets";
      const size_t base = dataset ? 1 : 0;
      size_t op = std::string::npos;
      if (segs.size() >= base + 5 && segs[base + 2] == "resolve") op = base + 2;
      else if (segs.size() >= base + 4 && segs[base + 1] == "resolve") op = base + 1;
      if (op != std::string::npos) {
        const std::string repo_id = op == base + 2 ? segs[base] + "/" + segs[base + 1] : segs[base];
        ServeResolve(dataset ? RepoKind::kDataset : RepoKind::kModel, repo_id, segs[op + 1],
                     Join(segs, op + 2, "/"), token, req, res);
        return;
      }
    }
    Error(res, 404, "", "Not Found");
  }

  void Handle(const httplib::Request& req, httplib::Response& res) {
    int fail = 0;
    std::chrono::milliseconds stall{0};
    {
      std::lock_guard<std::mutex> lock(mu);
      ++requests;
      targets.push_back(req.method + " " + req.target);
      if (req.has_header("Authorization")) auth_headers.push_back(req.get_header_value("Authorization"));
      if (req.has_header("Range")) {
        ranges.emplace_back(req.method + " " + req.target.substr(0, req.target.find('?')), req.get_header_value("Range"));
      }
      if (fail_count > 0) {
        --fail_count;
        fail = fail_status;
      } else if (stall_count > 0) {
        --stall_count;
        stall = stall_delay;
      }
    }
    // httplib would apply the Range header to whatever the handler returns; ranges are answered here instead.
    const_cast<httplib::Request&>(req).ranges.clear();
    if (fail != 0) {
      if (fail == 429) res.set_header("Retry-After", "0");
      Error(res, fail, "", "injected failure");
      return;
    }
    if (stall.count() > 0) std::this_thread::sleep_for(stall);
    try {
      Route(req, res);
    } catch (const std::exception& e) {
      Error(res, 500, "", std::string("fake hub error: ") + e.what());
    }
  }
};

FakeHub::FakeHub() : state_(std::make_unique<State>()) {
  State* s = state_.get();
  s->server.Get(".*", [s](const httplib::Request& req, httplib::Response& res) { s->Handle(req, res); });
  s->port = s->server.bind_to_any_port("127.0.0.1");
  if (s->port <= 0) {
    ADD_FAILURE() << "FakeHub: cannot bind a port on 127.0.0.1";
    return;
  }
  s->thread = std::thread([s] { s->server.listen_after_bind(); });
  // stop() is a no-op until the accept loop runs, so wait for it.
  while (!s->server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

FakeHub::~FakeHub() {
  state_->server.stop();
  if (state_->thread.joinable()) state_->thread.join();
}

std::string FakeHub::endpoint() const { return state_->Endpoint(); }

std::string FakeHub::AddCommit(RepoKind kind, const std::string& repo_id,
                               const std::map<std::string, std::string>& files, const std::string& branch) {
  return state_->AddCommit(kind, repo_id, files, branch);
}

std::string FakeHub::AddCommitFromDir(RepoKind kind, const std::string& repo_id, const std::string& dir,
                                      const std::string& branch) {
  namespace fs = std::filesystem;
  std::map<std::string, std::string> files;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, ec), end;
  if (ec) {
    ADD_FAILURE() << "FakeHub: cannot read " << dir << ": " << ec.message();
    return "";
  }
  for (; it != end; it.increment(ec)) {
    if (ec) {
      ADD_FAILURE() << "FakeHub: cannot read " << dir << ": " << ec.message();
      return "";
    }
    if (!it->is_regular_file()) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    if (!in) {
      ADD_FAILURE() << "FakeHub: cannot read " << it->path();
      return "";
    }
    files[fs::relative(it->path(), dir).generic_string()] = content.str();
  }
  return AddCommit(kind, repo_id, files, branch);
}

void FakeHub::SetCardData(RepoKind kind, const std::string& repo_id, const std::string& card_json,
                          const std::string& branch) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto repo = state_->repos.find({kind, repo_id});
  ASSERT_NE(repo, state_->repos.end()) << "SetCardData: no repo " << repo_id;
  auto ref = repo->second.refs.find(branch);
  ASSERT_NE(ref, repo->second.refs.end()) << "SetCardData: " << repo_id << " has no branch " << branch;
  ASSERT_TRUE(nlohmann::json::accept(card_json)) << "SetCardData: not JSON: " << card_json;
  repo->second.commits.at(ref->second).card_data = card_json;
}

void FakeHub::SetGated(const std::string& repo_id, bool gated) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (gated) state_->gated.insert(repo_id);
  else state_->gated.erase(repo_id);
}

void FakeHub::SetPrivate(const std::string& repo_id, bool is_private) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (is_private) state_->private_repos.insert(repo_id);
  else state_->private_repos.erase(repo_id);
}

void FakeHub::AllowToken(const std::string& token) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->allowed_tokens.insert(token);
}

void FakeHub::FailNextRequests(int http_status, int count) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->fail_status = http_status;
  state_->fail_count = count;
}

void FakeHub::StallNextRequests(int count, std::chrono::milliseconds delay) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->stall_count = count;
  state_->stall_delay = delay;
}

void FakeHub::RedirectResolveRelative(bool on) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->redirect_relative = on;
}

void FakeHub::IgnoreRange(bool on) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->ignore_range = on;
}

void FakeHub::FailNextResolves(int http_status, int count) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->fail_resolve_status = http_status;
  state_->fail_resolve_count = count;
}

void FakeHub::DropNextBodies(int count, size_t bytes) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->drop_count = count;
  state_->drop_bytes = bytes;
}

void FakeHub::CorruptNextBodies(int count) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->corrupt_count = count;
}

void FakeHub::ThrottleBodies(size_t chunk, std::chrono::milliseconds delay) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->throttle_chunk = chunk;
  state_->throttle_delay = delay;
}

void FakeHub::SetTreePageSize(int entries) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->tree_page_size = entries;
}

void FakeHub::OverrideResponse(const std::string& path, int status, const std::string& content_type,
                               const std::string& body) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->overrides[path] = State::Canned{status, content_type, body};
}

int FakeHub::request_count() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->requests;
}

std::vector<std::string> FakeHub::authorization_headers() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->auth_headers;
}

std::vector<std::string> FakeHub::request_targets() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->targets;
}

std::vector<std::pair<std::string, std::string>> FakeHub::range_requests() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->ranges;
}

}  // namespace tuneforge::testing
