// PgPool against a real PostgreSQL: transactions, the status each kind of database error becomes, concurrency
// limits, and the database going away and coming back under a live pool.
#include "common/pg_pool.h"

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/status_matchers.h"
#include "tests/support/test_postgres.h"

namespace tuneforge {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;
using ::tuneforge::testing::TestPostgres;

std::unique_ptr<PgPool> NewPool(const std::string& url, int size = 4, std::function<void(pqxx::connection&)> on_connect = nullptr,
                                std::chrono::milliseconds acquire_timeout = std::chrono::milliseconds(5000)) {
  PgPoolOptions options;
  options.url = url;
  options.size = size;
  options.acquire_timeout = acquire_timeout;
  options.on_connect = std::move(on_connect);
  absl::StatusOr<std::unique_ptr<PgPool>> pool = PgPool::Create(std::move(options));
  EXPECT_THAT(pool, IsOk());
  return pool.ok() ? std::move(pool).value() : nullptr;
}

absl::Status Exec(PgPool& pool, const std::string& sql) {
  return pool.Run([&](pqxx::work& tx) {
    tx.exec(sql);
    return absl::OkStatus();
  });
}

int64_t Count(PgPool& pool, const std::string& table) {
  int64_t n = -1;
  EXPECT_THAT(pool.Run([&](pqxx::work& tx) {
    n = tx.exec1("SELECT count(*) FROM " + table)[0].as<int64_t>();
    return absl::OkStatus();
  }),
              IsOk());
  return n;
}

TEST(PgPoolTest, RunCommitsWhenFnSucceedsAndRollsBackWhenItFails) {
  std::unique_ptr<PgPool> pool = NewPool(TestPostgres::Get().NewDatabase());
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE items (name text PRIMARY KEY)"), IsOk());
  ASSERT_THAT(pool->Run([](pqxx::work& tx) {
    tx.exec_params("INSERT INTO items VALUES ($1)", "kept");
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_THAT(pool->Run([](pqxx::work& tx) {
    tx.exec_params("INSERT INTO items VALUES ($1)", "dropped");
    return absl::NotFoundError("model 'x' not found");
  }),
              StatusIs(absl::StatusCode::kNotFound, "model 'x' not found"));
  std::vector<std::string> names;
  ASSERT_THAT(pool->Run([&](pqxx::work& tx) {
    for (const pqxx::row& row : tx.exec("SELECT name FROM items ORDER BY name")) names.push_back(row[0].c_str());
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_THAT(names, ::testing::ElementsAre("kept"));
}

TEST(PgPoolTest, EachKindOfDatabaseErrorGetsItsCode) {
  std::unique_ptr<PgPool> pool = NewPool(TestPostgres::Get().NewDatabase());
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE models (id int PRIMARY KEY, name text NOT NULL UNIQUE);"
                          "CREATE TABLE jobs (id int PRIMARY KEY, model_id int NOT NULL REFERENCES models(id),"
                          " steps int CHECK (steps > 0));"
                          "INSERT INTO models VALUES (1, 'llama')"),
              IsOk());
  EXPECT_THAT(Exec(*pool, "INSERT INTO models VALUES (2, 'llama')"),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("duplicate key value violates unique constraint"),
                             HasSubstr("Key (name)=(llama) already exists"))));
  EXPECT_THAT(Exec(*pool, "INSERT INTO jobs VALUES (1, 99, 10)"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("violates foreign key constraint")));
  EXPECT_THAT(Exec(*pool, "DELETE FROM models WHERE id = 1; INSERT INTO jobs VALUES (1, 1, 10)"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("foreign key")));
  EXPECT_THAT(Exec(*pool, "INSERT INTO jobs VALUES (1, 1, 0)"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("violates check constraint")));
  EXPECT_THAT(Exec(*pool, "INSERT INTO models VALUES (3, NULL)"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not-null constraint")));
  EXPECT_THAT(Exec(*pool, "SELECT 1 / 0"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("division by zero")));
  EXPECT_THAT(Exec(*pool, "SELECT 'abc'::int"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid input syntax for type integer")));
  // One line, without the caret drawing libpq adds.
  EXPECT_THAT(Exec(*pool, "SELEKT 1"),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("SQLSTATE 42601"), HasSubstr("syntax error at or near \"SELEKT\""),
                             Not(HasSubstr("\n")), Not(HasSubstr("^")), Not(HasSubstr("ERROR:")))));
  EXPECT_THAT(Exec(*pool, "SELECT * FROM no_such_table"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("SQLSTATE 42P01")));
  EXPECT_THAT(Exec(*pool, "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$"),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("retry")));
  EXPECT_THAT(Exec(*pool, "DO $$ BEGIN RAISE EXCEPTION 'stuck' USING ERRCODE = 'deadlock_detected'; END $$"),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("stuck")));
  EXPECT_THAT(Exec(*pool, "SET LOCAL statement_timeout = 50; SELECT pg_sleep(2)"),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("statement timeout")));
  // Nothing above left the pool unusable.
  EXPECT_EQ(Count(*pool, "models"), 1);
}

TEST(PgPoolTest, ExceptionsOtherThanDatabaseErrorsBecomeInternal) {
  std::unique_ptr<PgPool> pool = NewPool(TestPostgres::Get().NewDatabase(), 1);
  ASSERT_NE(pool, nullptr);
  EXPECT_THAT(pool->Run([](pqxx::work&) -> absl::Status { throw std::runtime_error("boom"); }),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("boom")));
  EXPECT_THAT(pool->Run([](pqxx::work& tx) {
    tx.exec1("SELECT NULL::int")[0].as<int>();  // NULL read as int: a conversion bug
    return absl::OkStatus();
  }),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("bug in tuneforge")));
  EXPECT_THAT(pool->Run([](pqxx::work& tx) {
    tx.exec1("SELECT 1 WHERE false");  // exec1 wants exactly one row
    return absl::OkStatus();
  }),
              StatusIs(absl::StatusCode::kInternal, Not(HasSubstr("\n"))));
  EXPECT_THAT(Exec(*pool, "SELECT 1"), IsOk());
}

TEST(PgPoolTest, MapsExceptionsAndHidesTheSecret) {
  EXPECT_THAT(StatusFromDatabaseException(pqxx::broken_connection("server closed the connection unexpectedly")),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("database is unavailable: server closed the connection unexpectedly"),
                             HasSubstr("retrying will work once it is back"))));
  EXPECT_THAT(StatusFromDatabaseException(pqxx::in_doubt_error("lost")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("may or may not have been saved")));
  EXPECT_THAT(StatusFromDatabaseException(pqxx::deadlock_detected("deadlock detected")),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("deadlock detected")));
  EXPECT_THAT(StatusFromDatabaseException(pqxx::sql_error("ERROR:  too many clients\n", "", "53300")),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("too many clients")));
  EXPECT_THAT(StatusFromDatabaseException(
                  pqxx::sql_error("FATAL:  terminating connection due to administrator command\n", "", "57P01")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("terminating connection")));
  EXPECT_THAT(StatusFromDatabaseException(pqxx::broken_connection("password hunter2 rejected"), "hunter2"),
              StatusIs(absl::StatusCode::kUnavailable, AllOf(HasSubstr("password *** rejected"),
                                                             Not(HasSubstr("hunter2")))));
  EXPECT_THAT(StatusFromDatabaseException(std::logic_error("odd")),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("odd")));
}

TEST(PgPoolTest, DescribesUrlsWithoutThePassword) {
  EXPECT_EQ(DescribeDatabaseUrl("postgresql://bob:s3cret@db.internal:6432/meta?sslmode=require"),
            "database \"meta\" on db.internal port 6432 as user bob");
  EXPECT_EQ(DescribeDatabaseUrl("postgresql://postgres@/tuneforge?host=%2Ftmp%2Fpg%20run&port=5432"),
            "database \"tuneforge\" on /tmp/pg run port 5432 as user postgres");
  EXPECT_EQ(DescribeDatabaseUrl("host=/var/run/postgresql dbname=meta user=svc password='it''s'"),
            "database \"meta\" on /var/run/postgresql as user svc");
  EXPECT_EQ(DescribeDatabaseUrl("postgres://"), "database \"(default)\" on the default socket");
}

TEST(PgPoolTest, CreateFailsUnavailableNamingTheServerButNotThePassword) {
  PgPoolOptions options;
  options.url = "postgresql://bob:s3cret@/meta?host=/nonexistent-tuneforge-socket-dir&port=5999";
  EXPECT_THAT(PgPool::Create(options),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("cannot connect to PostgreSQL database \"meta\" on "
                                       "/nonexistent-tuneforge-socket-dir port 5999 as user bob"),
                             HasSubstr("--database-url"), Not(HasSubstr("s3cret")))));
  options.url = TestPostgres::Get().server().UrlFor("no_such_database");
  EXPECT_THAT(PgPool::Create(options),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("database \"no_such_database\" does not exist")));
  options.url = TestPostgres::Get().NewDatabase();
  options.size = 0;
  EXPECT_THAT(PgPool::Create(options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 1")));
}

TEST(PgPoolTest, OnConnectPreparesStatementsForEveryConnection) {
  std::atomic<int> connects{0};
  std::unique_ptr<PgPool> pool = NewPool(TestPostgres::Get().NewDatabase(), 2, [&](pqxx::connection& conn) {
    conn.prepare("double_it", "SELECT $1::int * 2");
    ++connects;
  });
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(connects.load(), 1);  // Create opened the first one
  int doubled = 0;
  ASSERT_THAT(pool->Run([&](pqxx::work& tx) {
    doubled = tx.exec_prepared1("double_it", 21)[0].as<int>();
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_EQ(doubled, 42);

  // A failing on_connect fails the pool with the database's reason.
  PgPoolOptions options;
  options.url = TestPostgres::Get().NewDatabase();
  options.on_connect = [](pqxx::connection& conn) { conn.prepare("bad", "SELEKT 1"); conn.prepare_now("bad"); };
  EXPECT_THAT(PgPool::Create(options),
              StatusIs(absl::StatusCode::kInternal, AllOf(HasSubstr("setting up a new connection"),
                                                          HasSubstr("SQLSTATE 42601"))));
}

TEST(PgPoolTest, EightThreadsShareTwoConnections) {
  std::atomic<int> connects{0};
  std::unique_ptr<PgPool> pool =
      NewPool(TestPostgres::Get().NewDatabase(), 2, [&](pqxx::connection&) { ++connects; });
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE counter (n int NOT NULL); INSERT INTO counter VALUES (0)"), IsOk());
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  std::vector<std::future<absl::Status>> results;
  for (int t = 0; t < 8; ++t) {
    results.push_back(std::async(std::launch::async, [&] {
      for (int i = 0; i < 10; ++i) {
        absl::Status s = pool->Run([&](pqxx::work& tx) {
          int now = ++inside;
          int seen = most_inside.load();
          while (now > seen && !most_inside.compare_exchange_weak(seen, now)) {
          }
          tx.exec("UPDATE counter SET n = n + 1");
          tx.exec("SELECT pg_sleep(0.002)");
          --inside;
          return absl::OkStatus();
        });
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    }));
  }
  for (auto& r : results) EXPECT_THAT(r.get(), IsOk());
  int n = 0;
  ASSERT_THAT(pool->Run([&](pqxx::work& tx) {
    n = tx.exec1("SELECT n FROM counter")[0].as<int>();
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_EQ(n, 80);
  EXPECT_EQ(most_inside.load(), 2);
  EXPECT_EQ(connects.load(), 2);
}

TEST(PgPoolTest, WaitingTooLongForAConnectionIsResourceExhausted) {
  std::unique_ptr<PgPool> pool =
      NewPool(TestPostgres::Get().NewDatabase(), 1, nullptr, std::chrono::milliseconds(200));
  ASSERT_NE(pool, nullptr);
  std::promise<void> holding;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::future<absl::Status> holder = std::async(std::launch::async, [&] {
    return pool->Run([&](pqxx::work&) {
      holding.set_value();
      released.wait();
      return absl::OkStatus();
    });
  });
  holding.get_future().wait();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(Exec(*pool, "SELECT 1"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("all 1 database connections"), HasSubstr("200 ms"), HasSubstr("pool size"),
                             Not(HasSubstr(pool->description())), Not(HasSubstr("user")))));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  release.set_value();
  EXPECT_THAT(holder.get(), IsOk());
  EXPECT_THAT(Exec(*pool, "SELECT 1"), IsOk());
}

TEST(PgPoolTest, RunOnConnectionWorksOutsideTransactions) {
  std::unique_ptr<PgPool> pool = NewPool(TestPostgres::Get().NewDatabase(), 1);
  ASSERT_NE(pool, nullptr);
  std::string got;
  ASSERT_THAT(pool->RunOnConnection([&](pqxx::connection& conn) {
    pqxx::nontransaction tx(conn);
    tx.exec("SELECT pg_advisory_lock(7)");
    got = tx.exec1("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7")[0].c_str();
    tx.exec("SELECT pg_advisory_unlock(7)");
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_EQ(got, "1");
  EXPECT_THAT(pool->RunOnConnection([](pqxx::connection& conn) {
    pqxx::nontransaction tx(conn);
    tx.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)");
    return absl::OkStatus();
  }),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("duplicate key")));
  EXPECT_THAT(pool->RunOnConnection([](pqxx::connection&) { return absl::PermissionDeniedError("no"); }),
              StatusIs(absl::StatusCode::kPermissionDenied, "no"));
}

TEST(PgPoolTest, RunReadOnlyRunsEachStatementOnItsOwnAndRetriesOnANewConnection) {
  const std::string url = TestPostgres::Get().NewDatabase();
  std::unique_ptr<PgPool> pool = NewPool(url, 1);
  ASSERT_NE(pool, nullptr);
  int64_t first = 0, second = 0;
  ASSERT_THAT(pool->RunReadOnly([&](pqxx::transaction_base& tx) {
    first = tx.exec1("SELECT txid_current()")[0].as<int64_t>();
    second = tx.exec1("SELECT txid_current()")[0].as<int64_t>();
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_NE(first, second);  // no transaction block around them
  EXPECT_THAT(pool->RunReadOnly([](pqxx::transaction_base&) { return absl::NotFoundError("no"); }),
              StatusIs(absl::StatusCode::kNotFound, "no"));
  EXPECT_THAT(pool->RunReadOnly([](pqxx::transaction_base& tx) {
    tx.exec("SELEKT 1");
    return absl::OkStatus();
  }),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("SQLSTATE 42601")));

  // The server ends the session in the middle of the read: it runs again on a new connection.
  int attempts = 0;
  std::string answer;
  ASSERT_THAT(pool->RunReadOnly([&](pqxx::transaction_base& tx) {
    if (++attempts == 1) {
      const std::string pid = tx.exec1("SELECT pg_backend_pid()")[0].c_str();
      pqxx::connection other(url);
      pqxx::nontransaction(other).exec("SELECT pg_terminate_backend(" + pid + ", 5000)");
    }
    answer = tx.exec1("SELECT 'answered'")[0].c_str();
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(answer, "answered");
}

// Stops the shared server: keep these last-but-independent (StartServer restores it).
TEST(PgPoolTest, DatabaseGoingAwayIsUnavailableAndThePoolRecoversWhenItIsBack) {
  std::atomic<int> connects{0};
  std::unique_ptr<PgPool> pool =
      NewPool(TestPostgres::Get().NewDatabase(), 2, [&](pqxx::connection&) { ++connects; });
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)"), IsOk());

  ASSERT_THAT(TestPostgres::Get().StopServer(), IsOk());
  const auto unavailable = StatusIs(absl::StatusCode::kUnavailable,
                                    AllOf(HasSubstr("database is unavailable"),
                                          HasSubstr("retrying will work once it is back")));
  EXPECT_THAT(Exec(*pool, "SELECT 1"), unavailable);
  EXPECT_THAT(Exec(*pool, "SELECT 1"), unavailable);  // reconnecting fails the same way
  EXPECT_THAT(pool->RunOnConnection([](pqxx::connection&) { return absl::OkStatus(); }), unavailable);

  ASSERT_THAT(TestPostgres::Get().StartServer(), IsOk());
  EXPECT_EQ(Count(*pool, "kept"), 1);
  EXPECT_GE(connects.load(), 2);
}

TEST(PgPoolTest, StaleConnectionsAfterARestartAreReplacedTransparently) {
  std::atomic<int> connects{0};
  std::unique_ptr<PgPool> pool =
      NewPool(TestPostgres::Get().NewDatabase(), 1, [&](pqxx::connection&) { ++connects; });
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)"), IsOk());
  ASSERT_EQ(connects.load(), 1);

  // The pooled connection never saw the restart.
  ASSERT_THAT(TestPostgres::Get().StopServer(), IsOk());
  ASSERT_THAT(TestPostgres::Get().StartServer(), IsOk());
  EXPECT_EQ(Count(*pool, "kept"), 1);
  EXPECT_EQ(connects.load(), 2);

  ASSERT_THAT(TestPostgres::Get().StopServer(), IsOk());
  ASSERT_THAT(TestPostgres::Get().StartServer(), IsOk());
  std::string who;
  EXPECT_THAT(pool->RunOnConnection([&](pqxx::connection& conn) {
    pqxx::nontransaction tx(conn);
    who = tx.exec1("SELECT current_user")[0].c_str();
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_EQ(who, "postgres");
  EXPECT_EQ(connects.load(), 3);
}

}  // namespace
}  // namespace tuneforge
