// EmbeddedPostgres: initdb / pg_ctl run as child processes (as the postgres user when we are root), the socket in a
// private directory, and recovery from what a killed run leaves behind (stale postmaster.pid, orphaned server).
#include "common/embedded_postgres.h"

#include <fcntl.h>
#include <spawn.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/pg_pool.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;

constexpr char kPackagesRoot[] = "/usr/lib/postgresql";
constexpr char kInstallHint[] =
    "install postgresql (apt-get install postgresql), set TUNEFORGE_PG_BIN_DIR to the directory holding pg_ctl, "
    "or pass --database-url to use an existing server";
constexpr char kServerUser[] = "postgres";
constexpr int kDefaultPort = 5432;
constexpr size_t kMaxSocketPath = 107;  // sizeof(sockaddr_un::sun_path) - 1
constexpr size_t kMaxOutput = 4000;     // of initdb / pg_ctl output quoted in an error

std::string ErrnoText(int err) { return std::strerror(err); }

bool IsExecutable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// Last `kMaxOutput` bytes, trimmed, for error messages.
std::string Tail(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.size() > kMaxOutput) text = text.substr(text.size() - kMaxOutput);
  return std::string(text);
}

struct ChildResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string output;  // stdout and stderr together (empty when they went to a file)
};

// Runs argv (argv[0] an absolute path) and waits for it. Output is captured through a pipe, or, when
// `output_fd` >= 0, goes to that descriptor (pg_ctl start: the server inherits it and outlives the call, so a pipe
// would never see EOF).
absl::StatusOr<ChildResult> RunChild(const std::vector<std::string>& argv, int output_fd = -1) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  int pipe_fds[2] = {-1, -1};
  if (output_fd < 0 && ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("cannot create a pipe to run ", argv[0], ": ", ErrnoText(errno)));
  }
  const int out = output_fd >= 0 ? output_fd : pipe_fds[1];
  // posix_spawn rather than fork: glibc's runs no fork handlers, so a library's handlers (Arrow's, once it has
  // thread pools) can neither deadlock nor run against state torn down at exit, when destructors stop the server.
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, out, 1);
  ::posix_spawn_file_actions_adddup2(&actions, out, 2);
  // The server must not inherit our sockets, pipes and lock files; our cwd may be unreadable for the postgres user.
  ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  ::posix_spawn_file_actions_addchdir_np(&actions, "/");
  sigset_t none, pipe_only;
  sigemptyset(&none);
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &pipe_only);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  if (spawned != 0) {
    if (pipe_fds[0] >= 0) ::close(pipe_fds[0]), ::close(pipe_fds[1]);
    return absl::ResourceExhaustedError(absl::StrCat("cannot start ", argv[0], ": ", ErrnoText(spawned)));
  }
  ChildResult result;
  if (output_fd < 0) {
    ::close(pipe_fds[1]);
    char buf[4096];
    while (true) {
      ssize_t n = ::read(pipe_fds[0], buf, sizeof(buf));
      if (n > 0) {
        result.output.append(buf, static_cast<size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        break;
      }
    }
    ::close(pipe_fds[0]);
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return absl::InternalError(absl::StrCat("waitpid for ", argv[0], ": ", ErrnoText(errno)));
  }
  result.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return result;
}

std::string FindRunuser() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH"); path != nullptr) dirs = absl::StrSplit(path, ':', absl::SkipEmpty());
  for (const char* d : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) dirs.push_back(d);
  for (const std::string& d : dirs) {
    std::string candidate = d + "/runuser";
    if (IsExecutable(candidate)) return candidate;
  }
  return "";
}

struct ServerUser {
  bool switch_user = false;  // we are root: run initdb / pg_ctl through runuser
  std::string runuser;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

absl::StatusOr<ServerUser> ResolveServerUser() {
  ServerUser user;
  user.uid = ::geteuid();
  user.gid = ::getegid();
  if (user.uid != 0) return user;
  user.switch_user = true;
  struct passwd pw;
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(kServerUser, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return absl::FailedPreconditionError(
        "PostgreSQL refuses to run as root and there is no 'postgres' user to run it as; install postgresql "
        "(apt-get install postgresql creates the user), run tuneforge as a non-root user, or pass --database-url");
  }
  user.uid = pw.pw_uid;
  user.gid = pw.pw_gid;
  int ngroups = 64;
  user.groups.resize(ngroups);
  if (::getgrouplist(kServerUser, pw.pw_gid, user.groups.data(), &ngroups) < 0) {
    user.groups.resize(ngroups);
    ::getgrouplist(kServerUser, pw.pw_gid, user.groups.data(), &ngroups);
  }
  user.groups.resize(ngroups);
  user.runuser = FindRunuser();
  if (user.runuser.empty()) {
    return absl::FailedPreconditionError(
        "running as root, PostgreSQL must be started as the 'postgres' user, but runuser was not found; install "
        "util-linux, run tuneforge as a non-root user, or pass --database-url");
  }
  return user;
}

// initdb / pg_ctl argv, through runuser when we are root.
std::vector<std::string> AsServerUser(const ServerUser& user, std::vector<std::string> argv) {
  if (!user.switch_user) return argv;
  std::vector<std::string> full = {user.runuser, "-u", kServerUser, "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

bool CanSearch(const struct stat& st, const ServerUser& user) {
  if (st.st_uid == user.uid) return (st.st_mode & S_IXUSR) != 0;
  if (std::find(user.groups.begin(), user.groups.end(), st.st_gid) != user.groups.end()) {
    return (st.st_mode & S_IXGRP) != 0;
  }
  return (st.st_mode & S_IXOTH) != 0;
}

// The postgres user must be able to walk down to the data directory. Grants o+x (search, not read) on the
// ancestors that lack it, one by one, and says so.
absl::Status EnsureServerUserCanReach(const fs::path& data_dir, const ServerUser& user) {
  std::vector<fs::path> ancestors;
  for (fs::path p = data_dir.parent_path(); !p.empty(); p = p.parent_path()) {
    ancestors.push_back(p);
    if (p == p.root_path()) break;
  }
  std::reverse(ancestors.begin(), ancestors.end());
  for (const fs::path& dir : ancestors) {
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    if (CanSearch(st, user)) continue;
    mode_t mode = (st.st_mode & 07777) | S_IXOTH;
    if (::chmod(dir.c_str(), mode) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the postgres user cannot reach the data directory ", data_dir.string(), " because ", dir.string(),
          " lacks search permission, and granting it failed: ", ErrnoText(errno),
          "; run `chmod o+x ", dir.string(), "` or choose a TUNEFORGE_HOME the postgres user can reach"));
    }
    spdlog::warn("granted search permission (o+x, not read) on {} so that the postgres user can reach the "
                 "PostgreSQL data directory {}",
                 dir.string(), data_dir.string());
  }
  return absl::OkStatus();
}

std::optional<std::string> ReadSmallFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "15" from PG_VERSION or from "pg_ctl (PostgreSQL) 15.5 (Debian 15.5-0+deb12u1)"; "9.6" for old releases.
std::string MajorVersion(absl::string_view version) {
  version = absl::StripAsciiWhitespace(version);
  std::vector<std::string> parts = absl::StrSplit(version, '.');
  if (parts.empty()) return "";
  int first = 0;
  if (!absl::SimpleAtoi(parts[0], &first)) return "";
  if (first < 10 && parts.size() > 1) return absl::StrCat(parts[0], ".", parts[1]);
  return parts[0];
}

// Orders "9.6" < "14" < "15".
bool VersionLess(const std::string& a, const std::string& b) {
  double x = 0, y = 0;
  if (!absl::SimpleAtod(a, &x)) x = -1;
  if (!absl::SimpleAtod(b, &y)) y = -1;
  return x < y;
}

absl::Status CheckBinDir(const std::string& dir, const std::string& origin) {
  for (const char* tool : {"initdb", "pg_ctl"}) {
    if (!IsExecutable(dir + "/" + tool)) {
      return absl::FailedPreconditionError(absl::StrCat("PostgreSQL bin directory ", dir, " (", origin, ") has no ",
                                                        tool, "; ", kInstallHint));
    }
  }
  return absl::OkStatus();
}

// options.bin_dir, else $TUNEFORGE_PG_BIN_DIR, else /usr/lib/postgresql/<version>/bin: the version of an existing
// cluster when installed, otherwise the newest.
absl::StatusOr<std::string> FindBinDir(const std::string& requested, const std::string& cluster_version) {
  if (!requested.empty()) {
    RETURN_IF_ERROR(CheckBinDir(requested, "bin_dir"));
    return requested;
  }
  if (const char* env = std::getenv("TUNEFORGE_PG_BIN_DIR"); env != nullptr && *env != '\0') {
    RETURN_IF_ERROR(CheckBinDir(env, "TUNEFORGE_PG_BIN_DIR"));
    return std::string(env);
  }
  std::vector<std::string> versions;
  std::error_code ec;
  for (fs::directory_iterator it(kPackagesRoot, ec), end; !ec && it != end; it.increment(ec)) {
    std::string version = it->path().filename().string();
    std::string bin = it->path().string() + "/bin";
    if (!MajorVersion(version).empty() && CheckBinDir(bin, "").ok()) versions.push_back(version);
  }
  if (versions.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no PostgreSQL server binaries (initdb, pg_ctl) found in ", kPackagesRoot, "/*/bin; ",
                     kInstallHint));
  }
  std::sort(versions.begin(), versions.end(), VersionLess);
  std::string chosen = versions.back();
  if (!cluster_version.empty() &&
      std::find(versions.begin(), versions.end(), cluster_version) != versions.end()) {
    chosen = cluster_version;
  }
  return absl::StrCat(kPackagesRoot, "/", chosen, "/bin");
}

std::string PercentEncode(absl::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// postgresql.conf string literal.
std::string ConfQuote(absl::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "''";
    else if (c == '\\') out += "\\\\";
    else out.push_back(c);
  }
  return out + "'";
}

absl::Status WriteFileAs(const fs::path& path, const std::string& content, const ServerUser& user) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) return absl::FailedPreconditionError(absl::StrCat("cannot write ", path.string()));
  if (user.switch_user && ::chown(path.c_str(), user.uid, user.gid) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot chown ", path.string(), " to postgres: ",
                                                      ErrnoText(errno)));
  }
  return absl::OkStatus();
}

// A directory only we (and the server user) may enter: the socket lives there and the server trusts every
// connection that reaches it.
absl::Status EnsurePrivateDir(const std::string& dir, const ServerUser& user) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create the socket directory ", dir, ": ",
                                                      ErrnoText(errno)));
  }
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("socket directory ", dir,
                                                      " is not a directory (a symlink?); remove it and retry"));
  }
  if (st.st_uid != ::geteuid() && st.st_uid != user.uid) {
    return absl::FailedPreconditionError(absl::StrCat("socket directory ", dir, " belongs to uid ", st.st_uid,
                                                      ", not to us or the postgres user; remove it and retry"));
  }
  if (::chmod(dir.c_str(), 0700) != 0 ||
      (user.switch_user && ::chown(dir.c_str(), user.uid, user.gid) != 0)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot restrict the socket directory ", dir, ": ",
                                                      ErrnoText(errno)));
  }
  return absl::OkStatus();
}

// Whether `pid` is a live PostgreSQL server of `data_dir` (a postmaster works in its data directory). A pid of a
// process that is gone, or that now belongs to something else, is not.
bool IsServerOf(pid_t pid, const fs::path& data_dir) {
  if (pid <= 0) return false;
  std::string proc = absl::StrCat("/proc/", pid);
  char exe[4096];
  ssize_t n = ::readlink((proc + "/exe").c_str(), exe, sizeof(exe) - 1);
  if (n <= 0) return false;
  std::string name = fs::path(std::string(exe, static_cast<size_t>(n))).filename().string();
  if (name != "postgres" && name != "postmaster") return false;
  std::error_code ec;
  return fs::equivalent(proc + "/cwd", data_dir, ec);
}

std::optional<pid_t> ReadPostmasterPid(const fs::path& data_dir) {
  std::optional<std::string> content = ReadSmallFile(data_dir / "postmaster.pid");
  if (!content.has_value()) return std::nullopt;
  int pid = 0;
  std::string first_line = content->substr(0, content->find('\n'));
  if (!absl::SimpleAtoi(first_line, &pid)) return 0;
  return static_cast<pid_t>(pid);
}

off_t FileSize(int fd) {
  struct stat st;
  return ::fstat(fd, &st) == 0 ? st.st_size : 0;
}

std::string ReadFrom(const fs::path& path, off_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(offset);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

EmbeddedPostgres::EmbeddedPostgres(EmbeddedPostgresOptions options) : options_(std::move(options)) {}

EmbeddedPostgres::~EmbeddedPostgres() {
  absl::Status s = Stop();
  if (!s.ok()) spdlog::error("stopping the embedded PostgreSQL: {}", s.ToString());
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> EmbeddedPostgres::Start(const EmbeddedPostgresOptions& options) {
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("embedded PostgreSQL: data_dir is empty; set TUNEFORGE_HOME");
  }
  EmbeddedPostgresOptions resolved = options;
  std::error_code ec;
  fs::path abs = fs::absolute(options.data_dir, ec).lexically_normal();
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("embedded PostgreSQL: data_dir ", options.data_dir,
                                                   " cannot be made absolute: ", ec.message()));
  }
  resolved.data_dir = abs.string();
  while (resolved.data_dir.size() > 1 && resolved.data_dir.back() == '/') resolved.data_dir.pop_back();
  // pg_ctl hands the data directory to a shell inside double quotes, and the settings file quotes it again.
  for (char c : resolved.data_dir) {
    if (c == '"' || c == '\\' || c == '$' || c == '`' || static_cast<unsigned char>(c) < 0x20) {
      return absl::InvalidArgumentError(absl::StrCat("embedded PostgreSQL: data_dir ", resolved.data_dir,
                                                     " contains a quote, backslash, '$', '`' or control character,"
                                                     " which pg_ctl cannot handle; choose another TUNEFORGE_HOME"));
    }
  }
  if (resolved.database.empty()) return absl::InvalidArgumentError("embedded PostgreSQL: database name is empty");
  std::unique_ptr<EmbeddedPostgres> pg(new EmbeddedPostgres(std::move(resolved)));
  RETURN_IF_ERROR(pg->Init());
  RETURN_IF_ERROR(pg->StartServer());
  RETURN_IF_ERROR(pg->CreateDatabase(pg->options_.database));
  return pg;
}

absl::Status EmbeddedPostgres::Init() {
  const fs::path data_dir(options_.data_dir);
  ASSIGN_OR_RETURN(ServerUser user, ResolveServerUser());

  std::error_code ec;
  bool exists = fs::exists(data_dir, ec);
  if (exists && !fs::is_directory(data_dir, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("PostgreSQL data directory ", data_dir.string(),
                                                   " exists and is not a directory; choose another TUNEFORGE_HOME"));
  }
  std::string cluster_version;
  if (std::optional<std::string> v = ReadSmallFile(data_dir / "PG_VERSION"); v.has_value()) {
    cluster_version = std::string(absl::StripAsciiWhitespace(*v));
  }
  ASSIGN_OR_RETURN(options_.bin_dir, FindBinDir(options_.bin_dir, cluster_version));

  if (!cluster_version.empty()) {
    ASSIGN_OR_RETURN(ChildResult version, RunChild({options_.bin_dir + "/pg_ctl", "--version"}));
    std::string binary_version;
    if (size_t at = version.output.find("(PostgreSQL) "); at != std::string::npos) {
      binary_version = MajorVersion(version.output.substr(at + 13, version.output.find_first_of(" \n", at + 13) -
                                                                      (at + 13)));
    }
    if (binary_version != cluster_version) {
      return absl::FailedPreconditionError(absl::StrCat(
          "PostgreSQL data directory ", data_dir.string(), " was created by PostgreSQL ", cluster_version,
          " but the binaries in ", options_.bin_dir, " are version ",
          binary_version.empty() ? "unknown" : binary_version, "; install PostgreSQL ", cluster_version,
          " and set TUNEFORGE_PG_BIN_DIR to its bin directory, or upgrade the data with pg_upgrade"));
    }
  }

  if (!exists) {
    fs::create_directories(data_dir, ec);
    if (ec) {
      return absl::FailedPreconditionError(absl::StrCat("cannot create the PostgreSQL data directory ",
                                                        data_dir.string(), ": ", ec.message()));
    }
  }
  if (user.switch_user) RETURN_IF_ERROR(EnsureServerUserCanReach(data_dir, user));

  if (cluster_version.empty()) {
    if (!fs::is_empty(data_dir, ec)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "PostgreSQL data directory ", data_dir.string(),
          " is not empty but holds no cluster (no PG_VERSION); empty it or choose another TUNEFORGE_HOME"));
    }
    if (::chmod(data_dir.c_str(), 0700) != 0 ||
        (user.switch_user && ::chown(data_dir.c_str(), user.uid, user.gid) != 0)) {
      return absl::FailedPreconditionError(absl::StrCat("cannot hand the data directory ", data_dir.string(),
                                                        " to the postgres user: ", ErrnoText(errno)));
    }
    std::vector<std::string> initdb = {options_.bin_dir + "/initdb", "-D", data_dir.string(), "-U", kServerUser,
                                       "-A", "trust", "-E", "UTF8", "--no-locale"};
    if (!options_.durable) initdb.push_back("--no-sync");
    spdlog::info("creating a PostgreSQL cluster in {} ({})", data_dir.string(), options_.bin_dir);
    ASSIGN_OR_RETURN(ChildResult result, RunChild(AsServerUser(user, initdb)));
    if (result.exit_code != 0) {
      return absl::FailedPreconditionError(absl::StrCat("initdb failed (exit ", result.exit_code, ") for ",
                                                        data_dir.string(), ": ", Tail(result.output), "; ",
                                                        kInstallHint));
    }
  } else {
    struct stat st;
    if (user.switch_user && ::stat(data_dir.c_str(), &st) == 0 && st.st_uid != user.uid) {
      return absl::FailedPreconditionError(absl::StrCat("PostgreSQL data directory ", data_dir.string(),
                                                        " does not belong to the postgres user; run `chown -R "
                                                        "postgres:postgres ",
                                                        data_dir.string(), "`"));
    }
  }

  // One owner per data directory; a killed owner releases the lock with its last breath.
  std::string lock_path = (data_dir / "tuneforge.lock").string();
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot open ", lock_path, ": ", ErrnoText(errno)));
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL data directory ", data_dir.string(), " is in use by another tuneforge process (", lock_path,
        " is locked); stop it, or give this process its own TUNEFORGE_HOME or a --database-url"));
  }
  std::string pid_text = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(lock_fd_, 0) == 0) {
    ssize_t ignored = ::pwrite(lock_fd_, pid_text.data(), pid_text.size(), 0);
    (void)ignored;
  }

  socket_dir_ = (data_dir / "run").string();
  if (socket_dir_.size() + absl::StrCat("/.s.PGSQL.", port_).size() > kMaxSocketPath) {
    std::string short_dir = absl::StrCat("/tmp/tuneforge-pg-", Sha256Hex(data_dir.string()).substr(0, 16));
    spdlog::info("the socket path under {} would exceed the {}-byte unix socket limit; using {} instead",
                 socket_dir_, kMaxSocketPath, short_dir);
    socket_dir_ = short_dir;
  }
  RETURN_IF_ERROR(EnsurePrivateDir(socket_dir_, user));

  // Our settings live in their own file, rewritten on every start; postgresql.conf includes it once, at its end,
  // so ALTER SYSTEM (postgresql.auto.conf, read later) still wins.
  const fs::path conf = data_dir / "postgresql.conf";
  std::optional<std::string> conf_text = ReadSmallFile(conf);
  if (!conf_text.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(conf.string(), " is missing; the cluster in ",
                                                      data_dir.string(), " is damaged"));
  }
  constexpr char kInclude[] = "include_if_exists = 'tuneforge.conf'";
  if (!absl::StrContains(*conf_text, kInclude)) {
    std::ofstream out(conf, std::ios::binary | std::ios::app);
    out << "\n" << kInclude << "\t# written by tuneforge on every start\n";
    if (!out) return absl::FailedPreconditionError(absl::StrCat("cannot append to ", conf.string()));
  }
  const char* on_off = options_.durable ? "on" : "off";
  std::string settings = absl::StrCat(
      "# Written by tuneforge on every start; put your own settings in postgresql.conf or use ALTER SYSTEM.\n",
      "listen_addresses = ''\n", "unix_socket_directories = ", ConfQuote(socket_dir_), "\n", "port = ", port_, "\n",
      "fsync = ", on_off, "\n", "synchronous_commit = ", on_off, "\n", "full_page_writes = ", on_off, "\n");
  RETURN_IF_ERROR(WriteFileAs(data_dir / "tuneforge.conf", settings, user));
  return absl::OkStatus();
}

absl::Status EmbeddedPostgres::StartServer() {
  const fs::path data_dir(options_.data_dir);
  ASSIGN_OR_RETURN(ServerUser user, ResolveServerUser());

  // What a killed run leaves: a postmaster.pid whose process is gone (or now someone else's), or a server that
  // outlived its owner. We hold the data directory lock, so no live tuneforge process owns either.
  if (std::optional<pid_t> pid = ReadPostmasterPid(data_dir); pid.has_value()) {
    if (IsServerOf(*pid, data_dir)) {
      spdlog::warn("a PostgreSQL server (pid {}) is still running on {}, left by a previous run; restarting it",
                   *pid, data_dir.string());
      ASSIGN_OR_RETURN(ChildResult stop,
                       RunChild(AsServerUser(user, {options_.bin_dir + "/pg_ctl", "-D", data_dir.string(), "-m",
                                                    "fast", "-w", "-t", "60", "stop"})));
      if (stop.exit_code != 0) {
        return absl::UnavailableError(absl::StrCat(
            "PostgreSQL server pid ", *pid, " left running on ", data_dir.string(), " by a previous run would not stop: ",
            Tail(stop.output), "; stop it (pg_ctl -D ", data_dir.string(), " stop) and retry"));
      }
    } else {
      spdlog::info("removing the stale postmaster.pid left by a killed run in {} (pid {} is no server of it)",
                   data_dir.string(), *pid);
      std::error_code ec;
      fs::remove(data_dir / "postmaster.pid", ec);
      fs::remove(fs::path(socket_dir_) / absl::StrCat(".s.PGSQL.", port_, ".lock"), ec);
      fs::remove(fs::path(socket_dir_) / absl::StrCat(".s.PGSQL.", port_), ec);
    }
  }

  // The server inherits pg_ctl's stdout/stderr: they go to server.log, which also holds what we quote on failure.
  const fs::path log_path = data_dir / "server.log";
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot open ", log_path.string(), ": ", ErrnoText(errno)));
  }
  if (user.switch_user && ::fchown(log_fd, user.uid, user.gid) != 0) {
    spdlog::warn("cannot chown {} to postgres: {}", log_path.string(), ErrnoText(errno));
  }
  const std::vector<std::string> start = AsServerUser(
      user, {options_.bin_dir + "/pg_ctl", "-D", data_dir.string(), "-w", "-t", "60", "start"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  absl::Status status;
  while (true) {
    off_t offset = FileSize(log_fd);
    absl::StatusOr<ChildResult> result = RunChild(start, log_fd);
    if (!result.ok()) {
      status = result.status();
      break;
    }
    if (result->exit_code == 0) {
      running_ = true;
      status = absl::OkStatus();
      break;
    }
    std::string output = ReadFrom(log_path, offset);
    // Processes of a killed server may hold its shared memory for a moment after the postmaster died.
    bool transient = absl::StrContains(output, "pre-existing shared memory block") ||
                     (absl::StrContains(output, "lock file") && absl::StrContains(output, "already exists"));
    if (transient && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      continue;
    }
    status = absl::UnavailableError(absl::StrCat("PostgreSQL did not start (pg_ctl exit ", result->exit_code,
                                                 ") on ", data_dir.string(), ": ", Tail(output), "; see ",
                                                 log_path.string(), ", or pass --database-url"));
    break;
  }
  ::close(log_fd);
  if (status.ok()) {
    spdlog::info("PostgreSQL running on {} (socket {}/.s.PGSQL.{}{})", data_dir.string(), socket_dir_, port_,
                 options_.durable ? "" : ", not durable");
  }
  return status;
}

absl::Status EmbeddedPostgres::StartAgain() {
  if (running_) return absl::OkStatus();
  if (lock_fd_ < 0) return absl::FailedPreconditionError("embedded PostgreSQL was never initialized");
  return StartServer();
}

absl::Status EmbeddedPostgres::Stop() {
  if (!running_) return absl::OkStatus();
  ASSIGN_OR_RETURN(ServerUser user, ResolveServerUser());
  ASSIGN_OR_RETURN(ChildResult stop, RunChild(AsServerUser(user, {options_.bin_dir + "/pg_ctl", "-D",
                                                                   options_.data_dir, "-m", "fast", "-w", "-t",
                                                                   "60", "stop"})));
  if (stop.exit_code == 0) {
    running_ = false;
    spdlog::info("PostgreSQL on {} stopped", options_.data_dir);
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(ChildResult status,
                   RunChild(AsServerUser(user, {options_.bin_dir + "/pg_ctl", "-D", options_.data_dir, "status"})));
  if (status.exit_code == 3) {  // "no server running": it died on its own
    running_ = false;
    spdlog::warn("PostgreSQL on {} had already stopped: {}", options_.data_dir, Tail(stop.output));
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat("could not stop PostgreSQL on ", options_.data_dir, " (pg_ctl exit ",
                                             stop.exit_code, "): ", Tail(stop.output)));
}

std::string EmbeddedPostgres::UrlFor(const std::string& database) const {
  return absl::StrCat("postgresql://", kServerUser, "@/", PercentEncode(database), "?host=",
                      PercentEncode(socket_dir_), "&port=", port_);
}

absl::Status EmbeddedPostgres::CreateDatabase(const std::string& name) {
  if (name.empty() || name.size() > 63) {
    return absl::InvalidArgumentError(absl::StrCat("database name '", name, "' must have 1 to 63 bytes"));
  }
  if (!running_) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create database ", name, ": the PostgreSQL on ",
                                                      options_.data_dir, " is not running"));
  }
  try {
    pqxx::connection conn(UrlFor("postgres"));
    pqxx::nontransaction tx(conn);
    if (!tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", name).empty()) return absl::OkStatus();
    tx.exec("CREATE DATABASE " + tx.quote_name(name));
    return absl::OkStatus();
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == "42P04") return absl::OkStatus();  // created concurrently
    return StatusFromDatabaseException(e);
  } catch (const std::exception& e) {
    return StatusFromDatabaseException(e);
  }
}

}  // namespace tuneforge
