// Migrations: file names, sequence rules, and ApplyMigrations against a real PostgreSQL (fresh, re-applied,
// changed after the fact, newer database, failing migration, and several processes starting at once).
#include "common/migrations.h"

#include <future>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "common/sha256.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_postgres.h"

namespace tuneforge {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;
using ::tuneforge::testing::TestPostgres;

MATCHER_P(IsOkAndHolds, value, "") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status().ToString();
    return false;
  }
  *result_listener << "value is " << *arg;
  return *arg == value;
}

std::vector<Migration> TwoMigrations() {
  return {
      {1, "create_things",
       "CREATE TABLE things (id serial PRIMARY KEY, name text NOT NULL);\n"
       "CREATE TABLE side_effects (note text NOT NULL);\n"
       "SELECT pg_sleep(0.2);"},  // widens the window for concurrent appliers
      {2, "seed", "INSERT INTO side_effects VALUES ('seeded');"},
  };
}

std::string Query(const std::string& url, const std::string& sql) {
  pqxx::connection conn(url);
  pqxx::nontransaction tx(conn);
  pqxx::result r = tx.exec(sql);
  std::string out;
  for (const pqxx::row& row : r) {
    for (const pqxx::field& f : row) out += std::string(f.is_null() ? "NULL" : f.c_str()) + "|";
    out += "\n";
  }
  return out;
}

TEST(MigrationFromFileTest, ParsesVersionAndName) {
  absl::StatusOr<Migration> m = MigrationFromFile("V001__init.sql", "CREATE TABLE a (x int);");
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->version, 1);
  EXPECT_EQ(m->name, "init");
  EXPECT_EQ(m->sql, "CREATE TABLE a (x int);");
  m = MigrationFromFile("migrations/V012__add_Jobs_2.sql", "SELECT 1;");
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->version, 12);
  EXPECT_EQ(m->name, "add_Jobs_2");
}

TEST(MigrationFromFileTest, RejectsBadNames) {
  for (const std::string name : {"V1_init.sql", "001__init.sql", "V000__init.sql", "V001__.sql", "V001__bad-name.sql",
                                 "V001__init.txt", "Vabc__init.sql", "V__init.sql", "v001__init.sql",
                                 "V001__init.sql.bak", "V-1__init.sql"}) {
    EXPECT_THAT(MigrationFromFile(name, "SELECT 1;"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("'" + name + "'"), HasSubstr("V001__create_models.sql"))))
        << name;
  }
  EXPECT_THAT(MigrationFromFile("V001__init.sql", "  \n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'V001__init.sql' is empty")));
}

TEST(CheckMigrationSequenceTest, RequiresOneToNWithoutGapsOrDuplicates) {
  EXPECT_THAT(CheckMigrationSequence({}), IsOk());
  EXPECT_THAT(CheckMigrationSequence({{2, "b", "x"}, {1, "a", "x"}, {3, "c", "x"}}), IsOk());
  EXPECT_THAT(CheckMigrationSequence({{1, "a", "x"}, {2, "b", "x"}, {2, "c", "x"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("two migrations have version 2"), HasSubstr("V002__b"), HasSubstr("V002__c"))));
  EXPECT_THAT(CheckMigrationSequence({{1, "a", "x"}, {2, "b", "x"}, {4, "d", "x"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("V004__d follows V002__b"), HasSubstr("add V003"))));
  EXPECT_THAT(CheckMigrationSequence({{2, "b", "x"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("add V001")));
}

TEST(ApplyMigrationsTest, AppliesAFreshDatabaseAndRecordsEachMigration) {
  const std::string url = TestPostgres::Get().NewDatabase();
  const std::vector<Migration> migrations = TwoMigrations();
  EXPECT_THAT(ApplyMigrations(url, migrations), IsOkAndHolds(2));
  EXPECT_EQ(Query(url, "SELECT version, name, checksum, applied_at <= now() FROM tuneforge_schema_migrations "
                       "ORDER BY version"),
            "1|create_things|" + Sha256Hex(migrations[0].sql) + "|t|\n2|seed|" + Sha256Hex(migrations[1].sql) +
                "|t|\n");
  EXPECT_EQ(Query(url, "SELECT note FROM side_effects"), "seeded|\n");
  EXPECT_EQ(Query(url, "SELECT to_regclass('things') IS NOT NULL"), "t|\n");
}

TEST(ApplyMigrationsTest, ReapplyingIsANoOpAndNewFilesAreAppended) {
  const std::string url = TestPostgres::Get().NewDatabase();
  std::vector<Migration> migrations = TwoMigrations();
  ASSERT_THAT(ApplyMigrations(url, migrations), IsOkAndHolds(2));
  const std::string recorded = Query(url, "SELECT version, applied_at FROM tuneforge_schema_migrations");
  EXPECT_THAT(ApplyMigrations(url, migrations), IsOkAndHolds(2));
  EXPECT_EQ(Query(url, "SELECT version, applied_at FROM tuneforge_schema_migrations"), recorded);
  EXPECT_EQ(Query(url, "SELECT count(*) FROM side_effects"), "1|\n");

  migrations.push_back({3, "more", "INSERT INTO side_effects VALUES ('more');"});
  EXPECT_THAT(ApplyMigrations(url, migrations), IsOkAndHolds(3));
  EXPECT_EQ(Query(url, "SELECT note FROM side_effects ORDER BY note"), "more|\nseeded|\n");
  EXPECT_EQ(Query(url, "SELECT max(version) FROM tuneforge_schema_migrations"), "3|\n");
}

TEST(ApplyMigrationsTest, EmptyListOnAnEmptyDatabaseIsVersionZero) {
  const std::string url = TestPostgres::Get().NewDatabase();
  EXPECT_THAT(ApplyMigrations(url, {}), IsOkAndHolds(0));
}

TEST(ApplyMigrationsTest, RefusesAnAppliedMigrationThatChanged) {
  const std::string url = TestPostgres::Get().NewDatabase();
  std::vector<Migration> migrations = TwoMigrations();
  ASSERT_THAT(ApplyMigrations(url, migrations), IsOk());
  migrations[1].sql = "INSERT INTO side_effects VALUES ('edited');";
  migrations.push_back({3, "more", "INSERT INTO side_effects VALUES ('more');"});
  EXPECT_THAT(ApplyMigrations(url, migrations),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("V002__seed was changed after it was applied"),
                             HasSubstr("migrations are append-only; restore the file and add a new V### file"))));
  EXPECT_EQ(Query(url, "SELECT note FROM side_effects"), "seeded|\n");  // V003 did not run either
}

TEST(ApplyMigrationsTest, RefusesADatabaseNewerThanTheBinary) {
  const std::string url = TestPostgres::Get().NewDatabase();
  std::vector<Migration> migrations = TwoMigrations();
  migrations.push_back({3, "more", "INSERT INTO side_effects VALUES ('more');"});
  ASSERT_THAT(ApplyMigrations(url, migrations), IsOkAndHolds(3));
  migrations.pop_back();
  EXPECT_THAT(ApplyMigrations(url, migrations),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("schema version 3 (V003__more)"), HasSubstr("only knows migrations up to "
                                                                                   "version 2"))));
}

TEST(ApplyMigrationsTest, AFailingMigrationRollsBackEverything) {
  const std::string url = TestPostgres::Get().NewDatabase();
  std::vector<Migration> migrations = TwoMigrations();
  migrations.push_back({3, "broken", "CREATE TABLE oops (;"});
  EXPECT_THAT(ApplyMigrations(url, migrations),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("migration V003__broken failed, nothing was applied"),
                             HasSubstr("SQLSTATE 42601"))));
  EXPECT_EQ(Query(url, "SELECT to_regclass('things') IS NULL, to_regclass('tuneforge_schema_migrations') IS NULL"),
            "t|t|\n");
  migrations.pop_back();
  EXPECT_THAT(ApplyMigrations(url, migrations), IsOkAndHolds(2));
}

TEST(ApplyMigrationsTest, ConcurrentAppliersApplyEachMigrationOnce) {
  for (int round = 0; round < 3; ++round) {
    const std::string url = TestPostgres::Get().NewDatabase();
    const std::vector<Migration> migrations = TwoMigrations();
    std::vector<std::future<absl::StatusOr<int>>> appliers;
    for (int i = 0; i < 4; ++i) {
      appliers.push_back(std::async(std::launch::async, [&] { return ApplyMigrations(url, migrations); }));
    }
    for (auto& a : appliers) EXPECT_THAT(a.get(), IsOkAndHolds(2));
    EXPECT_EQ(Query(url, "SELECT count(*) FROM tuneforge_schema_migrations"), "2|\n");
    EXPECT_EQ(Query(url, "SELECT count(*) FROM side_effects"), "1|\n");
  }
}

TEST(ApplyMigrationsTest, BadSequenceOrUnreachableDatabase) {
  EXPECT_THAT(ApplyMigrations(TestPostgres::Get().NewDatabase(), {{2, "b", "SELECT 1"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("add V001")));
  EXPECT_THAT(ApplyMigrations("postgresql://postgres@/x?host=/nonexistent-tuneforge-dir&port=5999", TwoMigrations()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot connect to PostgreSQL database \"x\"")));
}

}  // namespace
}  // namespace tuneforge
