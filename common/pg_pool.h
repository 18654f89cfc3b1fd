// A fixed-size pool of libpqxx connections that runs callbacks in transactions and turns every libpqxx exception
// into an absl::Status (the storage layer's exception boundary).
#ifndef TUNEFORGE_COMMON_PG_POOL_H_
#define TUNEFORGE_COMMON_PG_POOL_H_

#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tuneforge {

// Maps an exception thrown by libpqxx (or by code running inside a transaction) to the most specific code:
// lost connection -> UNAVAILABLE, unique_violation -> ALREADY_EXISTS, foreign_key_violation -> FAILED_PRECONDITION,
// check / not-null violations and data exceptions (22xxx) -> INVALID_ARGUMENT, serialization failures and
// deadlocks (40xxx) -> ABORTED, other SQL errors -> INTERNAL with the SQLSTATE. `secret` (the password) is
// removed from the message.
absl::Status StatusFromDatabaseException(const std::exception& e, absl::string_view secret = {});

// "database \"tuneforge\" on /run/pg port 5432 as user postgres" for messages; never contains the password.
std::string DescribeDatabaseUrl(const std::string& url);

struct PgPoolOptions {
  std::string url;  // libpq URI or key=value string
  int size = 8;     // connections at most; opened on demand, the first one by Create
  std::chrono::milliseconds acquire_timeout{5000};  // waiting for a free connection longer -> RESOURCE_EXHAUSTED
  // Called on every new connection (e.g. to prepare statements); an exception fails that connection.
  std::function<void(pqxx::connection&)> on_connect;
};

class PgPool {
 public:
  // Opens the first connection. UNAVAILABLE naming the server (never the password) when it cannot be made;
  // INVALID_ARGUMENT for a size < 1.
  static absl::StatusOr<std::unique_ptr<PgPool>> Create(PgPoolOptions options);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // Runs `fn` in a transaction on a pooled connection; commits when it returns OK, rolls back otherwise.
  // Exceptions never escape (see StatusFromDatabaseException); a lost connection is dropped and the next use
  // reconnects. A connection found broken before `fn` ran anything is replaced and `fn` runs once more.
  // All connections busy for longer than acquire_timeout -> RESOURCE_EXHAUSTED.
  absl::Status Run(const std::function<absl::Status(pqxx::work&)>& fn);

  // Runs `fn` outside a transaction block: each statement commits on its own, so a read that one statement answers
  // costs one round trip instead of three (BEGIN, the statement, COMMIT). For reads only: a connection found broken
  // is replaced and `fn` runs once more, as in Run.
  absl::Status RunReadOnly(const std::function<absl::Status(pqxx::transaction_base&)>& fn);

  // Like Run, without a transaction block (LISTEN, session advisory locks, CREATE DATABASE ...). No retry; session
  // state `fn` leaves behind (locks, LISTEN, SET) stays on the pooled connection, so undo it before returning.
  absl::Status RunOnConnection(const std::function<absl::Status(pqxx::connection&)>& fn);

  int size() const { return options_.size; }
  const std::string& description() const { return description_; }  // DescribeDatabaseUrl(url)

 private:
  explicit PgPool(PgPoolOptions options);
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect();
  // A connection for exclusive use: an idle one that still looks alive, else a new one while under `size`.
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Acquire();
  void Release(std::unique_ptr<pqxx::connection> conn, bool broken);
  // Runs `body` on `conn`, turning what libpqxx throws into a status (sets *broken when the connection is lost;
  // `what` names the kind of call in the message about a non-standard exception).
  absl::Status Guard(pqxx::connection& conn, bool* broken, const char* what,
                     const std::function<absl::Status()>& body) const;

  PgPoolOptions options_;
  std::string password_;  // only to redact it from messages
  std::string description_;

  std::mutex mu_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  int open_ = 0;  // connections handed out or idle
};

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_PG_POOL_H_
