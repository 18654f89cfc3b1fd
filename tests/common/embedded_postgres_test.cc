// EmbeddedPostgres against the system's PostgreSQL binaries: start, stop, restart with the same data, recovery from
// killed runs, unix-socket-only URLs, and the errors an operator sees.
#include "common/embedded_postgres.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::ScratchDir;
using ::tuneforge::testing::StatusIs;

EmbeddedPostgresOptions TestOptions(const std::string& data_dir) {
  EmbeddedPostgresOptions options;
  options.data_dir = data_dir;
  options.database = "app";
  options.durable = false;
  return options;
}

std::string QueryOne(const std::string& url, const std::string& sql) {
  pqxx::connection conn(url);
  pqxx::nontransaction tx(conn);
  pqxx::result r = tx.exec(sql);
  return r.empty() || r[0][0].is_null() ? "" : r[0][0].as<std::string>();
}

int PostmasterPid(const std::string& data_dir) {
  std::ifstream in(fs::path(data_dir) / "postmaster.pid");
  int pid = 0;
  in >> pid;
  return pid;
}

void WaitUntilGone(int pid) {
  for (int i = 0; i < 200 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_NE(::kill(pid, 0), 0) << "process " << pid << " did not die";
}

TEST(EmbeddedPostgresTest, StartsOnAUnixSocketAndServesTheDatabaseByUrl) {
  ScratchDir scratch;
  const std::string data_dir = scratch.path() + "/pg";
  absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(TestOptions(data_dir));
  ASSERT_THAT(pg, IsOk());
  EXPECT_TRUE(fs::exists(data_dir + "/PG_VERSION"));
  EXPECT_EQ((*pg)->socket_dir(), data_dir + "/run");
  EXPECT_TRUE(fs::exists(data_dir + "/run/.s.PGSQL." + std::to_string((*pg)->port())));
  EXPECT_EQ((*pg)->url(), "postgresql://postgres@/app?host=" + data_dir + "/run&port=" +
                              std::to_string((*pg)->port()));
  EXPECT_EQ(QueryOne((*pg)->url(), "SELECT current_database()"), "app");
  EXPECT_EQ(QueryOne((*pg)->url(), "SHOW listen_addresses"), "");
  EXPECT_EQ(QueryOne((*pg)->url(), "SHOW fsync"), "off");
  EXPECT_EQ(QueryOne((*pg)->url(), "SHOW server_encoding"), "UTF8");

  ASSERT_THAT((*pg)->CreateDatabase("other"), IsOk());
  ASSERT_THAT((*pg)->CreateDatabase("other"), IsOk());  // exists: fine
  EXPECT_EQ(QueryOne((*pg)->UrlFor("other"), "SELECT current_database()"), "other");
  EXPECT_THAT((*pg)->CreateDatabase(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1 to 63 bytes")));
  EXPECT_THAT((*pg)->CreateDatabase(std::string(64, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1 to 63 bytes")));
}

TEST(EmbeddedPostgresTest, DurableByDefault) {
  ScratchDir scratch;
  EmbeddedPostgresOptions options;
  options.data_dir = scratch.path() + "/pg";
  absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(options);
  ASSERT_THAT(pg, IsOk());
  EXPECT_EQ(QueryOne((*pg)->url(), "SELECT current_database()"), "tuneforge");
  EXPECT_EQ(QueryOne((*pg)->url(), "SHOW fsync"), "on");
  EXPECT_EQ(QueryOne((*pg)->url(), "SHOW synchronous_commit"), "on");
}

TEST(EmbeddedPostgresTest, StopIsIdempotentAndRestartKeepsTheData) {
  ScratchDir scratch;
  const std::string data_dir = scratch.path() + "/pg";
  std::string url;
  {
    absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(TestOptions(data_dir));
    ASSERT_THAT(pg, IsOk());
    url = (*pg)->url();
    {
      pqxx::connection conn(url);
      pqxx::work tx(conn);
      tx.exec("CREATE TABLE kept (v text)");
      tx.exec("INSERT INTO kept VALUES ('survives')");
      tx.commit();
    }
    ASSERT_THAT((*pg)->Stop(), IsOk());
    EXPECT_FALSE((*pg)->running());
    ASSERT_THAT((*pg)->Stop(), IsOk());
    EXPECT_THROW(pqxx::connection{url}, pqxx::broken_connection);

    ASSERT_THAT((*pg)->StartAgain(), IsOk());
    EXPECT_EQ((*pg)->url(), url);
    EXPECT_EQ(QueryOne(url, "SELECT v FROM kept"), "survives");
  }  // destructor stops it
  EXPECT_FALSE(fs::exists(data_dir + "/postmaster.pid"));

  absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> again = EmbeddedPostgres::Start(TestOptions(data_dir));
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ((*again)->url(), url);
  EXPECT_EQ(QueryOne(url, "SELECT v FROM kept"), "survives");
}

TEST(EmbeddedPostgresTest, StartsAfterThePostmasterWasKilled) {
  ScratchDir scratch;
  const std::string data_dir = scratch.path() + "/pg";
  EmbeddedPostgresOptions options = TestOptions(data_dir);
  options.durable = true;  // without synchronous_commit a killed server may lose the last commits
  absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(options);
  ASSERT_THAT(pg, IsOk());
  const std::string url = (*pg)->url();
  QueryOne(url, "CREATE TABLE kept AS SELECT 42 AS v");
  const int pid = PostmasterPid(data_dir);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  WaitUntilGone(pid);
  EXPECT_TRUE(fs::exists(data_dir + "/postmaster.pid"));  // stale
  EXPECT_THAT((*pg)->Stop(), IsOk());                      // already dead: nothing to do
  pg->reset();

  absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> again = EmbeddedPostgres::Start(options);
  ASSERT_THAT(again, IsOk());
  EXPECT_NE(PostmasterPid(data_dir), pid);
  EXPECT_EQ(QueryOne(url, "SELECT v FROM kept"), "42");
}

TEST(EmbeddedPostgresTest, StartsWhenPostmasterPidNamesAnUnrelatedProcess) {
  ScratchDir scratch;
  const std::string data_dir = scratch.path() + "/pg";
  {
    absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(TestOptions(data_dir));
    ASSERT_THAT(pg, IsOk());
  }
  // A reboot can hand the old pid to anything; here it is this test process.
  {
    std::ofstream out(data_dir + "/postmaster.pid");
    out << ::getpid() << "\n" << data_dir << "\n";
  }
  absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(TestOptions(data_dir));
  ASSERT_THAT(pg, IsOk());
  EXPECT_EQ(QueryOne((*pg)->url(), "SELECT 1"), "1");
}

TEST(EmbeddedPostgresTest, RestartsAServerOrphanedByAKilledOwner) {
  ScratchDir scratch;
  const std::string data_dir = scratch.path() + "/pg";
  // The child plays a tuneforge process that dies without stopping its server.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(TestOptions(data_dir));
    if (!pg.ok()) _exit(1);
    try {
      pqxx::connection conn((*pg)->url());
      pqxx::work tx(conn);
      tx.exec("CREATE TABLE kept AS SELECT 'orphan' AS v");
      tx.commit();
    } catch (...) {
      _exit(2);
    }
    _exit(0);  // no destructors: the server keeps running
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "child status " << wstatus;
  const int orphan = PostmasterPid(data_dir);
  ASSERT_GT(orphan, 0);
  ASSERT_EQ(::kill(orphan, 0), 0) << "the orphaned server should still run";

  absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(TestOptions(data_dir));
  ASSERT_THAT(pg, IsOk());
  EXPECT_NE(PostmasterPid(data_dir), orphan);
  WaitUntilGone(orphan);
  EXPECT_EQ(QueryOne((*pg)->url(), "SELECT v FROM kept"), "orphan");
}

TEST(EmbeddedPostgresTest, RefusesADataDirectoryInUseByAnotherInstance) {
  ScratchDir scratch;
  const std::string data_dir = scratch.path() + "/pg";
  absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> first = EmbeddedPostgres::Start(TestOptions(data_dir));
  ASSERT_THAT(first, IsOk());
  EXPECT_THAT(EmbeddedPostgres::Start(TestOptions(data_dir)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use by another tuneforge process")));
  EXPECT_EQ(QueryOne((*first)->url(), "SELECT 1"), "1");  // untouched
}

TEST(EmbeddedPostgresTest, LongDataDirectoryGetsAShortSocketDirectory) {
  ScratchDir scratch;
  const std::string data_dir = scratch.path() + "/" + std::string(60, 'a') + "/" + std::string(60, 'b') + "/pg";
  absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(TestOptions(data_dir));
  ASSERT_THAT(pg, IsOk());
  EXPECT_THAT((*pg)->socket_dir(), StartsWith("/tmp/tuneforge-pg-"));
  EXPECT_LT((*pg)->socket_dir().size() + 20, 107u);
  EXPECT_EQ(QueryOne((*pg)->url(), "SELECT current_database()"), "app");
  const std::string socket_dir = (*pg)->socket_dir();
  ASSERT_THAT((*pg)->Stop(), IsOk());
  ASSERT_THAT((*pg)->StartAgain(), IsOk());
  EXPECT_EQ((*pg)->socket_dir(), socket_dir);
  EXPECT_EQ(QueryOne((*pg)->url(), "SELECT 1"), "1");
  pg->reset();
  std::error_code ec;
  fs::remove_all(socket_dir, ec);
}

TEST(EmbeddedPostgresTest, MissingBinariesSayWhatToInstall) {
  ScratchDir scratch;
  EmbeddedPostgresOptions options = TestOptions(scratch.path() + "/pg");
  options.bin_dir = scratch.path();
  EXPECT_THAT(EmbeddedPostgres::Start(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("has no initdb"), HasSubstr("apt-get install postgresql"),
                                        HasSubstr("--database-url"))));
}

TEST(EmbeddedPostgresTest, BinDirFromTheEnvironmentIsChecked) {
  ScratchDir scratch;
  ASSERT_EQ(::setenv("TUNEFORGE_PG_BIN_DIR", scratch.path().c_str(), 1), 0);
  absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(TestOptions(scratch.path() + "/pg"));
  ::unsetenv("TUNEFORGE_PG_BIN_DIR");
  EXPECT_THAT(pg, StatusIs(absl::StatusCode::kFailedPrecondition,
                           AllOf(HasSubstr("(TUNEFORGE_PG_BIN_DIR) has no initdb"), HasSubstr("apt-get install"))));
}

TEST(EmbeddedPostgresTest, RefusesAClusterOfAnotherMajorVersion) {
  ScratchDir scratch;
  const std::string data_dir = scratch.path() + "/pg";
  ASSERT_THAT(EmbeddedPostgres::Start(TestOptions(data_dir)), IsOk());  // created, then stopped
  { std::ofstream(data_dir + "/PG_VERSION") << "9.4\n"; }
  EXPECT_THAT(EmbeddedPostgres::Start(TestOptions(data_dir)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("was created by PostgreSQL 9.4"), HasSubstr("TUNEFORGE_PG_BIN_DIR"),
                             HasSubstr("pg_upgrade"))));
}

TEST(EmbeddedPostgresTest, RefusesANonEmptyDirectoryThatIsNoCluster) {
  ScratchDir scratch;
  scratch.WriteFile("pg/notes.txt", "mine");
  EXPECT_THAT(EmbeddedPostgres::Start(TestOptions(scratch.path() + "/pg")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no PG_VERSION")));
  EXPECT_TRUE(fs::exists(scratch.path() + "/pg/notes.txt"));
}

TEST(EmbeddedPostgresTest, RefusesPathsPgCtlCannotQuote) {
  ScratchDir scratch;
  EXPECT_THAT(EmbeddedPostgres::Start(TestOptions(scratch.path() + "/p\"g")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("choose another TUNEFORGE_HOME")));
  EXPECT_THAT(EmbeddedPostgres::Start(TestOptions("")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data_dir is empty")));
}

TEST(EmbeddedPostgresTest, InitdbFailureIsReportedWithItsOutput) {
  ScratchDir scratch;
  // A fake initdb that fails the way a broken installation would.
  const std::string bin = scratch.path() + "/bin";
  scratch.WriteFile("bin/initdb", "#!/bin/sh\necho 'initdb: error: simulated breakage' >&2\nexit 1\n");
  scratch.WriteFile("bin/pg_ctl", "#!/bin/sh\nexit 1\n");
  fs::permissions(bin + "/initdb", fs::perms::all);
  fs::permissions(bin + "/pg_ctl", fs::perms::all);
  EmbeddedPostgresOptions options = TestOptions(scratch.path() + "/pg");
  options.bin_dir = bin;
  EXPECT_THAT(EmbeddedPostgres::Start(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("initdb failed (exit 1)"), HasSubstr("simulated breakage"))));
}

TEST(EmbeddedPostgresTest, AsRootGrantsSearchPermissionOnBlockingAncestorsOnly) {
  if (::geteuid() != 0) GTEST_SKIP() << "only root switches to the postgres user";
  ScratchDir scratch;
  const std::string locked = scratch.path() + "/locked";
  fs::create_directories(locked);
  ASSERT_EQ(::chmod(locked.c_str(), 0700), 0);
  absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(TestOptions(locked + "/pg"));
  ASSERT_THAT(pg, IsOk());
  struct stat st;
  ASSERT_EQ(::stat(locked.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0701u);  // o+x added, no read
  EXPECT_EQ(QueryOne((*pg)->url(), "SELECT current_user"), "postgres");
  pg->reset();

  // A cluster restored as root is not silently chowned.
  ASSERT_EQ(::chown((locked + "/pg").c_str(), 0, 0), 0);
  EXPECT_THAT(EmbeddedPostgres::Start(TestOptions(locked + "/pg")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("chown -R postgres:postgres")));
}

}  // namespace
}  // namespace tuneforge
