// Store: what clients see of database failures (no server, socket, user or SQL), while the services' own statuses
// pass through unchanged.
#include "services/metadata/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>

#include "common/pg_pool.h"
#include "services/metadata/store_internal.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_postgres.h"

namespace tuneforge::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = TestPostgres::Get().NewDatabase();
    ASSERT_THAT(MigrateDatabase(url_), IsOk());
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(url_, 1);
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
  }

  std::string url_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, TheServicesOwnStatusesPassThrough) {
  EXPECT_THAT(store_->InTransaction([](Tx&) { return absl::NotFoundError("model 'x' not found"); }),
              StatusIs(absl::StatusCode::kNotFound, "model 'x' not found"));
  EXPECT_THAT(store_->InTransaction([](Tx&) { return absl::InternalError("a rule's own message"); }),
              StatusIs(absl::StatusCode::kInternal, "a rule's own message"));
}

TEST_F(StoreTest, AnSqlErrorShowsNoSql) {
  EXPECT_THAT(store_->InTransaction([](Tx& tx) {
                tx.work().exec("SELEKT secret_column FROM models");
                return absl::OkStatus();
              }),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("internal database error"), Not(HasSubstr("SELEKT")),
                             Not(HasSubstr("secret_column")), Not(HasSubstr("SQLSTATE")))));
}

TEST_F(StoreTest, AnExhaustedPoolNamesNoServerSocketOrUser) {
  std::promise<void> holding, release;
  std::shared_future<void> released = release.get_future().share();
  std::future<absl::Status> holder = std::async(std::launch::async, [&] {
    return store_->InTransaction([&](Tx&) {
      holding.set_value();
      released.wait();
      return absl::OkStatus();
    });
  });
  holding.get_future().wait();
  const absl::Status busy = store_->InTransaction([](Tx&) { return absl::OkStatus(); });
  release.set_value();
  EXPECT_THAT(holder.get(), IsOk());
  EXPECT_THAT(busy, StatusIs(absl::StatusCode::kResourceExhausted,
                             AllOf(HasSubstr("the database is busy"), HasSubstr("--pool-size"),
                                   Not(HasSubstr(DescribeDatabaseUrl(url_))), Not(HasSubstr("/tmp")),
                                   Not(HasSubstr("postgres")), Not(HasSubstr("user")))));
}

}  // namespace
}  // namespace tuneforge::testing
