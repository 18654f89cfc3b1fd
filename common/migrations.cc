// Migration file names, sequence checks and ApplyMigrations: one transaction under an advisory lock, so concurrent
// starts of the metadata service apply each migration exactly once.
#include "common/migrations.h"

#include <algorithm>
#include <map>
#include <utility>

#include <pqxx/pqxx>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/pg_pool.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace tuneforge {
namespace {

std::string Label(int version, const std::string& name) { return absl::StrFormat("V%03d__%s", version, name); }

struct AppliedMigration {
  std::string name;
  std::string checksum;
};

}  // namespace

absl::StatusOr<Migration> MigrationFromFile(const std::string& file_name, std::string sql) {
  absl::string_view base = file_name;
  if (size_t slash = base.rfind('/'); slash != absl::string_view::npos) base = base.substr(slash + 1);
  const std::string bad = absl::StrCat(
      "migration file '", file_name,
      "': the name must look like V001__create_models.sql ('V', a version number from 1, two underscores, a name of "
      "letters, digits and '_', '.sql'); rename it");
  absl::string_view rest = base;
  if (!absl::ConsumePrefix(&rest, "V") || !absl::ConsumeSuffix(&rest, ".sql")) return absl::InvalidArgumentError(bad);
  size_t sep = rest.find("__");
  if (sep == absl::string_view::npos || sep == 0) return absl::InvalidArgumentError(bad);
  absl::string_view digits = rest.substr(0, sep);
  absl::string_view name = rest.substr(sep + 2);
  int version = 0;
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return absl::ascii_isdigit(c); }) ||
      !absl::SimpleAtoi(digits, &version) || version < 1) {
    return absl::InvalidArgumentError(bad);
  }
  if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
      })) {
    return absl::InvalidArgumentError(bad);
  }
  if (absl::StripAsciiWhitespace(sql).empty()) {
    return absl::InvalidArgumentError(absl::StrCat("migration file '", file_name, "' is empty; give it SQL"));
  }
  return Migration{version, std::string(name), std::move(sql)};
}

absl::Status CheckMigrationSequence(const std::vector<Migration>& migrations) {
  std::vector<const Migration*> sorted;
  for (const Migration& m : migrations) sorted.push_back(&m);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Migration* a, const Migration* b) { return a->version < b->version; });
  int expected = 1;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const Migration& m = *sorted[i];
    if (i > 0 && m.version == sorted[i - 1]->version) {
      return absl::InvalidArgumentError(absl::StrCat("two migrations have version ", m.version, ": ",
                                                     Label(m.version, sorted[i - 1]->name), " and ",
                                                     Label(m.version, m.name), "; renumber one of them"));
    }
    if (m.version != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "migrations must be numbered 1, 2, 3, ... without gaps: ", Label(m.version, m.name), " follows ",
          expected == 1 ? std::string("nothing") : Label(sorted[i - 1]->version, sorted[i - 1]->name), "; add V",
          absl::StrFormat("%03d", expected), " or renumber"));
    }
    ++expected;
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ApplyMigrations(const std::string& url, const std::vector<Migration>& migrations) {
  RETURN_IF_ERROR(CheckMigrationSequence(migrations));
  std::vector<Migration> sorted = migrations;
  std::sort(sorted.begin(), sorted.end(), [](const Migration& a, const Migration& b) { return a.version < b.version; });

  ASSIGN_OR_RETURN(std::unique_ptr<PgPool> pool, PgPool::Create(PgPoolOptions{url, 1, std::chrono::milliseconds(5000), nullptr}));
  int version_after = 0;
  std::vector<std::string> applied_now;
  absl::Status status = pool->Run([&](pqxx::work& tx) -> absl::Status {
    applied_now.clear();
    // Held until commit: a second process waits here, then finds everything applied.
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
    tx.exec(absl::StrCat("CREATE TABLE IF NOT EXISTS ", kMigrationsTable,
                         " (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())"));
    std::map<int, AppliedMigration> applied;
    for (const pqxx::row& row : tx.exec(absl::StrCat("SELECT version, name, checksum FROM ", kMigrationsTable))) {
      applied[row[0].as<int>()] = AppliedMigration{row[1].as<std::string>(), row[2].as<std::string>()};
    }
    const int known = sorted.empty() ? 0 : sorted.back().version;
    if (!applied.empty() && applied.rbegin()->first > known) {
      const auto& [newest, info] = *applied.rbegin();
      return absl::FailedPreconditionError(absl::StrCat(
          "the database is at schema version ", newest, " (", Label(newest, info.name),
          ") but this tuneforge binary only knows migrations up to version ", known,
          "; run a tuneforge release at least as new as the one that migrated this database"));
    }
    for (const Migration& m : sorted) {
      const std::string checksum = Sha256Hex(m.sql);
      if (auto it = applied.find(m.version); it != applied.end()) {
        if (it->second.checksum != checksum) {
          return absl::FailedPreconditionError(absl::StrCat(
              "migration ", Label(m.version, m.name), " was changed after it was applied to this database (sha256 ",
              it->second.checksum, " applied, ", checksum,
              " now); migrations are append-only; restore the file and add a new V### file instead"));
        }
        continue;
      }
      try {
        tx.exec(m.sql);
      } catch (const std::exception& e) {
        absl::Status s = StatusFromDatabaseException(e);
        return absl::Status(s.code(),
                            absl::StrCat("migration ", Label(m.version, m.name), " failed, nothing was applied: ",
                                         s.message()));
      }
      tx.exec_params(absl::StrCat("INSERT INTO ", kMigrationsTable, " (version, name, checksum) VALUES ($1, $2, $3)"),
                     m.version, m.name, checksum);
      applied_now.push_back(Label(m.version, m.name));
    }
    version_after = known;
    return absl::OkStatus();
  });
  RETURN_IF_ERROR(status);
  for (const std::string& label : applied_now) spdlog::info("applied migration {}", label);
  return version_after;
}

}  // namespace tuneforge
