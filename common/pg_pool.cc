// PgPool and the libpqxx exception -> absl::Status mapping. Connections are opened on demand up to `size`, checked
// for a dead socket before reuse, and dropped when they break; libpqxx's own silent reconnects are turned off so
// that on_connect sees every new session.
#include "common/pg_pool.h"

#include <poll.h>

#include <utility>
#include <vector>

#include <pqxx/except>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace tuneforge {
namespace {

struct UrlParts {
  std::string user, password, host, port, dbname;
};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

void SetPart(UrlParts& parts, absl::string_view key, std::string value) {
  if (key == "user") parts.user = std::move(value);
  else if (key == "password") parts.password = std::move(value);
  else if (key == "host" || key == "hostaddr") parts.host = std::move(value);
  else if (key == "port") parts.port = std::move(value);
  else if (key == "dbname") parts.dbname = std::move(value);
}

// The parts of a libpq URI ("postgresql://user:pw@host:port/db?host=...") or key=value string that messages need.
// Lenient: what it cannot read stays empty.
UrlParts ParseUrl(absl::string_view url) {
  UrlParts parts;
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "postgresql://") || absl::ConsumePrefix(&rest, "postgres://")) {
    absl::string_view query;
    if (size_t q = rest.find('?'); q != absl::string_view::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    absl::string_view authority = rest.substr(0, rest.find('/'));
    if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
      parts.dbname = PercentDecode(rest.substr(slash + 1));
    }
    if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
      absl::string_view userinfo = authority.substr(0, at);
      authority = authority.substr(at + 1);
      size_t colon = userinfo.find(':');
      parts.user = PercentDecode(userinfo.substr(0, colon));
      if (colon != absl::string_view::npos) parts.password = PercentDecode(userinfo.substr(colon + 1));
    }
    size_t colon = authority.rfind(':');
    if (colon != absl::string_view::npos && authority.find(']', colon) == absl::string_view::npos) {
      parts.port = std::string(authority.substr(colon + 1));
      authority = authority.substr(0, colon);
    }
    parts.host = PercentDecode(authority);
    for (absl::string_view param : absl::StrSplit(query, '&', absl::SkipEmpty())) {
      size_t eq = param.find('=');
      if (eq == absl::string_view::npos) continue;
      SetPart(parts, PercentDecode(param.substr(0, eq)), PercentDecode(param.substr(eq + 1)));
    }
    return parts;
  }
  // key = value pairs; values may be single-quoted with backslash escapes.
  size_t i = 0;
  auto skip_space = [&] {
    while (i < url.size() && absl::ascii_isspace(static_cast<unsigned char>(url[i]))) ++i;
  };
  while (true) {
    skip_space();
    if (i >= url.size()) break;
    size_t key_start = i;
    while (i < url.size() && url[i] != '=' && !absl::ascii_isspace(static_cast<unsigned char>(url[i]))) ++i;
    std::string key(url.substr(key_start, i - key_start));
    skip_space();
    if (i >= url.size() || url[i] != '=') break;
    ++i;
    skip_space();
    std::string value;
    if (i < url.size() && url[i] == '\'') {
      ++i;
      while (i < url.size() && url[i] != '\'') {
        if (url[i] == '\\' && i + 1 < url.size()) ++i;
        value.push_back(url[i++]);
      }
      ++i;
    } else {
      while (i < url.size() && !absl::ascii_isspace(static_cast<unsigned char>(url[i]))) {
        if (url[i] == '\\' && i + 1 < url.size()) ++i;
        value.push_back(url[i++]);
      }
    }
    SetPart(parts, key, std::move(value));
  }
  return parts;
}

std::string Redact(std::string text, absl::string_view secret) {
  if (secret.empty()) return text;
  return absl::StrReplaceAll(text, {{secret, "***"}});
}

// libpq messages are multi-line ("ERROR:  ...\nDETAIL:  ...\nLINE 1: ...\n   ^"): one line, without the severity
// prefix and the caret drawing.
std::string OneLine(absl::string_view what) {
  std::vector<std::string> kept;
  for (absl::string_view line : absl::StrSplit(what, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "LINE ") || line.find_first_not_of("^ ") == absl::string_view::npos) {
      continue;
    }
    for (absl::string_view prefix : {"ERROR:", "FATAL:", "PANIC:"}) {
      if (absl::ConsumePrefix(&line, prefix)) line = absl::StripLeadingAsciiWhitespace(line);
    }
    kept.emplace_back(line);
  }
  std::string out = absl::StrJoin(kept, "; ");
  return out.empty() ? "no details from the database client" : out;
}

absl::Status Unavailable(absl::string_view message) {
  return absl::UnavailableError(
      absl::StrCat("database is unavailable: ", message, "; retrying will work once it is back"));
}

// An idle pooled connection whose server went away has a readable socket (the server's goodbye, then EOF).
// Consuming that input shows whether the session is still alive; ordinary pending NOTIFYs are harmless.
bool LooksAlive(pqxx::connection& conn) {
  if (!conn.is_open()) return false;
  try {
    for (int round = 0; round < 3; ++round) {
      int fd = conn.sock();
      if (fd < 0) return false;
      struct pollfd p = {fd, POLLIN, 0};
      int ready = ::poll(&p, 1, 0);
      if (ready == 0) return true;
      if (ready < 0) return false;
      conn.get_notifs();
      if (!conn.is_open()) return false;
    }
  } catch (const std::exception&) {
    return false;
  }
  return conn.is_open();
}

}  // namespace

absl::Status StatusFromDatabaseException(const std::exception& e, absl::string_view secret) {
  const std::string message = Redact(OneLine(e.what()), secret);
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) return Unavailable(message);
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "lost the database connection while committing, so the change may or may not have been saved: ", message,
        "; check its result before retrying"));
  }
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) {
    return absl::AbortedError(absl::StrCat("transaction aborted by a concurrent one: ", message, "; retry it"));
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e); sql != nullptr) {
    const std::string& state = sql->sqlstate();
    if (state == "23505" || state == "23P01") return absl::AlreadyExistsError(message);
    if (state == "23503" || state == "23001") return absl::FailedPreconditionError(message);
    if (state == "23514" || state == "23502" || absl::StartsWith(state, "22")) {
      return absl::InvalidArgumentError(message);
    }
    if (absl::StartsWith(state, "40")) {
      return absl::AbortedError(absl::StrCat("transaction aborted by a concurrent one: ", message, "; retry it"));
    }
    if (absl::StartsWith(state, "08") || absl::StartsWith(state, "57P")) return Unavailable(message);
    if (absl::StartsWith(state, "53")) {
      return absl::ResourceExhaustedError(absl::StrCat("database server is out of resources: ", message));
    }
    if (state == "57014") return absl::DeadlineExceededError(absl::StrCat("database statement cancelled: ", message));
    return absl::InternalError(
        absl::StrCat("database error (SQLSTATE ", state.empty() ? "unknown" : state, "): ", message));
  }
  if (dynamic_cast<const pqxx::usage_error*>(&e) != nullptr ||
      dynamic_cast<const pqxx::conversion_error*>(&e) != nullptr ||
      dynamic_cast<const pqxx::range_error*>(&e) != nullptr ||
      dynamic_cast<const pqxx::argument_error*>(&e) != nullptr) {
    return absl::InternalError(absl::StrCat("database client misuse (a bug in tuneforge): ", message));
  }
  return absl::InternalError(absl::StrCat("unexpected error in database code: ", message));
}

std::string DescribeDatabaseUrl(const std::string& url) {
  UrlParts parts = ParseUrl(url);
  std::string where = parts.host.empty() ? "the default socket" : parts.host;
  if (!parts.port.empty()) absl::StrAppend(&where, " port ", parts.port);
  std::string out = absl::StrCat("database \"", parts.dbname.empty() ? "(default)" : parts.dbname, "\" on ", where);
  if (!parts.user.empty()) absl::StrAppend(&out, " as user ", parts.user);
  return Redact(out, parts.password);
}

PgPool::PgPool(PgPoolOptions options) : options_(std::move(options)) {
  password_ = ParseUrl(options_.url).password;
  description_ = DescribeDatabaseUrl(options_.url);
}

PgPool::~PgPool() {
  std::lock_guard<std::mutex> lock(mu_);
  idle_.clear();
}

absl::StatusOr<std::unique_ptr<PgPool>> PgPool::Create(PgPoolOptions options) {
  if (options.size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("database pool size must be at least 1, got ", options.size));
  }
  std::unique_ptr<PgPool> pool(new PgPool(std::move(options)));
  absl::StatusOr<std::unique_ptr<pqxx::connection>> first = pool->Connect();
  if (!first.ok()) return first.status();
  pool->open_ = 1;
  pool->idle_.push_back(std::move(first).value());
  return pool;
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> PgPool::Connect() {
  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = std::make_unique<pqxx::connection>(options_.url);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL ", description_, ": ",
                                               Redact(OneLine(e.what()), password_),
                                               "; check --database-url and that the server is running"));
  }
  // libpqxx 6 would otherwise reconnect behind our back, skipping on_connect.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
  if (options_.on_connect) {
    try {
      options_.on_connect(*conn);
    } catch (const std::exception& e) {
      absl::Status s = StatusFromDatabaseException(e, password_);
      return absl::Status(s.code(), absl::StrCat("setting up a new connection to ", description_, ": ", s.message()));
    }
  }
  return conn;
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> PgPool::Acquire() {
  const auto deadline = std::chrono::steady_clock::now() + options_.acquire_timeout;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (!idle_.empty()) {
      std::unique_ptr<pqxx::connection> conn = std::move(idle_.back());
      idle_.pop_back();
      lock.unlock();
      if (LooksAlive(*conn)) return conn;
      spdlog::info("dropping a pooled connection to {}: the server closed it", description_);
      conn.reset();
      lock.lock();
      --open_;
      continue;
    }
    if (open_ < options_.size) {
      ++open_;
      lock.unlock();
      absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Connect();
      if (!conn.ok()) {
        lock.lock();
        --open_;
        lock.unlock();
        freed_.notify_one();
        if (conn.status().code() == absl::StatusCode::kUnavailable) return Unavailable(conn.status().message());
        return conn.status();
      }
      return conn;
    }
    if (freed_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= options_.size) {
      spdlog::warn("all {} connections to {} stayed busy for {} ms", options_.size, description_,
                   options_.acquire_timeout.count());
      // The message goes to clients: it names no server, socket or user (the log line above does).
      return absl::ResourceExhaustedError(absl::StrCat(
          "all ", options_.size, " database connections stayed busy for ", options_.acquire_timeout.count(),
          " ms; retry later, or raise the database pool size"));
    }
  }
}

void PgPool::Release(std::unique_ptr<pqxx::connection> conn, bool broken) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (broken) {
      --open_;
    } else {
      idle_.push_back(std::move(conn));
    }
  }
  freed_.notify_one();
  conn.reset();  // a broken one is closed outside the lock
}

absl::Status PgPool::Guard(pqxx::connection& conn, bool* broken, const char* what,
                           const std::function<absl::Status()>& body) const {
  try {
    return body();
  } catch (const std::exception& e) {
    absl::Status status = StatusFromDatabaseException(e, password_);
    *broken = dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr || !conn.is_open() ||
              status.code() == absl::StatusCode::kUnavailable;
    if (*broken && status.code() != absl::StatusCode::kUnavailable) return Unavailable(status.message());
    return status;
  } catch (...) {
    *broken = !conn.is_open();
    return absl::InternalError(absl::StrCat("a non-standard exception escaped a database ", what));
  }
}

absl::Status PgPool::Run(const std::function<absl::Status(pqxx::work&)>& fn) {
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<std::unique_ptr<pqxx::connection>> acquired = Acquire();
    if (!acquired.ok()) return acquired.status();
    std::unique_ptr<pqxx::connection> conn = std::move(acquired).value();
    bool started = false;
    bool broken = false;
    const absl::Status status = Guard(*conn, &broken, "transaction", [&] {
      pqxx::work tx(*conn);
      started = true;
      absl::Status result = fn(tx);
      if (result.ok()) {
        tx.commit();
      } else {
        try {
          tx.abort();
        } catch (const std::exception&) {
          broken = !conn->is_open();
        }
      }
      return result;
    });
    Release(std::move(conn), broken);
    if (broken && !started && attempt == 0) {
      spdlog::info("connection to {} was broken before use ({}); retrying on a new one", description_,
                   std::string(status.message()));
      continue;
    }
    return status;
  }
}

absl::Status PgPool::RunReadOnly(const std::function<absl::Status(pqxx::transaction_base&)>& fn) {
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<std::unique_ptr<pqxx::connection>> acquired = Acquire();
    if (!acquired.ok()) return acquired.status();
    std::unique_ptr<pqxx::connection> conn = std::move(acquired).value();
    bool broken = false;
    const absl::Status status = Guard(*conn, &broken, "read", [&] {
      pqxx::nontransaction tx(*conn);
      return fn(tx);
    });
    Release(std::move(conn), broken);
    if (broken && attempt == 0) {
      spdlog::info("connection to {} broke during a read ({}); retrying on a new one", description_,
                   std::string(status.message()));
      continue;
    }
    return status;
  }
}

absl::Status PgPool::RunOnConnection(const std::function<absl::Status(pqxx::connection&)>& fn) {
  absl::StatusOr<std::unique_ptr<pqxx::connection>> acquired = Acquire();
  if (!acquired.ok()) return acquired.status();
  std::unique_ptr<pqxx::connection> conn = std::move(acquired).value();
  bool broken = false;
  const absl::Status status = Guard(*conn, &broken, "call", [&] {
    absl::Status result = fn(*conn);
    broken = !conn->is_open();
    return result;
  });
  Release(std::move(conn), broken);
  return status;
}

}  // namespace tuneforge
