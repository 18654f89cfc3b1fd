// The per-binary test PostgreSQL. Also removes what killed test runs left behind: servers and temp dirs whose
// owning test process is gone.
#include "tests/support/test_postgres.h"

#include "spdlog/spdlog.h"

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tuneforge::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kPrefix[] = "tuneforge-testpg-";

std::string TempRoot() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

int ReadPid(const fs::path& file) {
  std::ifstream in(file);
  int pid = 0;
  std::string line;
  if (std::getline(in, line) && absl::SimpleAtoi(line, &pid)) return pid;
  return 0;
}

// A killed test binary may linger as a zombie until its parent reaps it: that counts as dead.
bool Alive(int pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  return paren == std::string::npos || paren + 2 >= text.size() || text[paren + 2] != 'Z';
}

// Servers of test binaries that were killed (timeouts, ^C) would otherwise run forever.
void RemoveLeftovers() {
  std::error_code ec;
  for (fs::directory_iterator it(TempRoot(), ec), end; !ec && it != end; it.increment(ec)) {
    if (!absl::StartsWith(it->path().filename().string(), kPrefix)) continue;
    int owner = ReadPid(it->path() / "owner.pid");
    if (owner == 0 || Alive(owner)) continue;
    int postmaster = ReadPid(it->path() / "data" / "postmaster.pid");
    if (Alive(postmaster)) {
      ::kill(postmaster, SIGINT);  // fast shutdown
      for (int i = 0; i < 50 && Alive(postmaster); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::error_code ignored;
    fs::remove_all(it->path(), ignored);
  }
}

}  // namespace

TestPostgres& TestPostgres::Get() {
  // The server is stopped by the instance's destructor at exit, and stopping logs: construct spdlog's
  // registry first so that it is destroyed after the instance (statics die in reverse order).
  spdlog::default_logger();
  static TestPostgres instance;
  static std::once_flag once;
  std::call_once(once, [] {
    RemoveLeftovers();
    std::string templ = TempRoot() + "/" + kPrefix + "XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      std::fprintf(stderr, "TestPostgres: mkdtemp %s failed\n", templ.c_str());
      std::abort();
    }
    instance.dir_ = templ;
    fs::permissions(templ, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
    std::ofstream(fs::path(templ) / "owner.pid") << ::getpid() << "\n";
    EmbeddedPostgresOptions options;
    options.data_dir = templ + "/data";
    options.database = "tuneforge_test";
    options.durable = false;
    absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> server = EmbeddedPostgres::Start(options);
    if (!server.ok()) {
      std::fprintf(stderr, "TestPostgres: cannot start the test PostgreSQL: %s\n", server.status().ToString().c_str());
      std::error_code ec;
      fs::remove_all(templ, ec);
      std::abort();
    }
    instance.server_ = std::move(server).value();
  });
  return instance;
}

TestPostgres::~TestPostgres() {
  server_.reset();  // stops the server
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string TestPostgres::NewDatabase() {
  std::string name;
  {
    std::lock_guard<std::mutex> lock(mu_);
    name = absl::StrCat("test_", ++databases_);
  }
  absl::Status status = server_->CreateDatabase(name);
  if (!status.ok()) ADD_FAILURE() << "TestPostgres: creating database " << name << ": " << status;
  return server_->UrlFor(name);
}

absl::Status TestPostgres::StopServer() { return server_->Stop(); }

absl::Status TestPostgres::StartServer() { return server_->StartAgain(); }

}  // namespace tuneforge::testing
