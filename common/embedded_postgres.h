// A PostgreSQL server owned by this process: initdb + pg_ctl from the system's PostgreSQL binaries, listening
// only on a unix socket. tuneforge-metadata runs one when no --database-url is given; the tests run throwaway ones.
#ifndef TUNEFORGE_COMMON_EMBEDDED_POSTGRES_H_
#define TUNEFORGE_COMMON_EMBEDDED_POSTGRES_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tuneforge {

struct EmbeddedPostgresOptions {
  std::string data_dir;  // the cluster directory (PGDATA), e.g. $TUNEFORGE_HOME/postgres; created if missing
  // Directory holding initdb / pg_ctl. Empty: $TUNEFORGE_PG_BIN_DIR, else the newest /usr/lib/postgresql/*/bin
  // (the one matching an existing cluster's PG_VERSION when that is installed).
  std::string bin_dir;
  std::string database = "tuneforge";  // created on start when missing
  bool durable = true;  // false: fsync, synchronous_commit and full_page_writes off (tests; data may be lost on a crash)
};

class EmbeddedPostgres {
 public:
  // Runs initdb when data_dir has no PG_VERSION (trust auth, superuser `postgres`, UTF8), then
  // `pg_ctl -w -t 60 start` with listen_addresses='' and the socket in <data_dir>/run (or, when that path is too
  // long for a unix socket, in a short /tmp directory named after a hash of data_dir), and creates `database`.
  // Existing data is reused; a stale postmaster.pid or an orphaned server from a killed run does not prevent start.
  // As root, initdb and pg_ctl run as the `postgres` user. Errors: INVALID_ARGUMENT (unusable data_dir),
  // FAILED_PRECONDITION (no PostgreSQL installed, data_dir in use by another process, wrong version or owner),
  // UNAVAILABLE (the server did not start); each carries initdb / pg_ctl output and what to do.
  static absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> Start(const EmbeddedPostgresOptions& options);

  ~EmbeddedPostgres();  // Stop(); errors are logged
  EmbeddedPostgres(const EmbeddedPostgres&) = delete;
  EmbeddedPostgres& operator=(const EmbeddedPostgres&) = delete;

  // `pg_ctl -m fast stop`; idempotent, and OK when the server already died.
  absl::Status Stop();
  // Starts the server again after Stop() (same data, socket and URLs).
  absl::Status StartAgain();
  bool running() const { return running_; }

  // libpq URI of `database`: "postgresql://postgres@/tuneforge?host=<socket dir>&port=<port>".
  std::string url() const { return UrlFor(options_.database); }
  std::string UrlFor(const std::string& database) const;
  // CREATE DATABASE unless it exists. INVALID_ARGUMENT for an empty or over-long (> 63 bytes) name.
  absl::Status CreateDatabase(const std::string& name);

  const std::string& data_dir() const { return options_.data_dir; }
  const std::string& socket_dir() const { return socket_dir_; }
  int port() const { return port_; }

 private:
  explicit EmbeddedPostgres(EmbeddedPostgresOptions options);
  absl::Status Init();
  absl::Status StartServer();

  EmbeddedPostgresOptions options_;  // data_dir and bin_dir absolute
  std::string socket_dir_;
  int port_ = 5432;
  int lock_fd_ = -1;  // flock on <data_dir>/tuneforge.lock while this object lives
  bool running_ = false;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_EMBEDDED_POSTGRES_H_
