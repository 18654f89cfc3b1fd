// One throwaway PostgreSQL per test binary (EmbeddedPostgres, not durable, in a temp dir), started on first use
// and stopped at exit; each test takes a fresh database from it.
#ifndef TUNEFORGE_TESTS_SUPPORT_TEST_POSTGRES_H_
#define TUNEFORGE_TESTS_SUPPORT_TEST_POSTGRES_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "common/embedded_postgres.h"

namespace tuneforge::testing {

class TestPostgres {
 public:
  // Starts the server on first use; a server that cannot start aborts the test binary with the reason.
  static TestPostgres& Get();

  std::string NewDatabase();   // CREATE DATABASE with a unique name; returns its URL
  absl::Status StopServer();   // for "database went away" tests
  absl::Status StartServer();  // same data dir: the socket and every URL stay valid
  EmbeddedPostgres& server() { return *server_; }

  ~TestPostgres();

 private:
  TestPostgres() = default;
  std::mutex mu_;
  std::string dir_;  // temp dir holding the data directory; removed at exit
  std::unique_ptr<EmbeddedPostgres> server_;
  int databases_ = 0;
};

}  // namespace tuneforge::testing

#endif  // TUNEFORGE_TESTS_SUPPORT_TEST_POSTGRES_H_
