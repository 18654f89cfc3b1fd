// What repositories see of a transaction: the libpqxx transaction object (a transaction block, or for Store::Read
// statements that each run on their own) and small row helpers.
#ifndef TUNEFORGE_SERVICES_METADATA_STORE_INTERNAL_H_
#define TUNEFORGE_SERVICES_METADATA_STORE_INTERNAL_H_

#include <pqxx/pqxx>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace tuneforge {

class Tx {
 public:
  explicit Tx(pqxx::transaction_base& work) : work_(work) {}
  pqxx::transaction_base& work() { return work_; }

 private:
  pqxx::transaction_base& work_;
};

// Column readers: NULL reads as the empty value. The pqxx::field forms serve rows mapped in bulk, with the column
// positions looked up once per result (result.column_number): a lookup by name for every row and column (libpq's
// PQfnumber copies and lower-cases the name, then compares it with each column) costs more than reading the value.
inline std::string Str(const pqxx::field& f) { return f.is_null() ? std::string() : std::string(f.c_str(), f.size()); }
inline int64_t Int(const pqxx::field& f) { return f.is_null() ? 0 : f.as<int64_t>(); }
inline double Double(const pqxx::field& f) { return f.is_null() ? 0.0 : f.as<double>(); }
inline bool Bool(const pqxx::field& f) { return !f.is_null() && f.as<bool>(); }
inline nlohmann::json Json(const pqxx::field& f) {
  return f.is_null() ? nlohmann::json() : nlohmann::json::parse(f.c_str(), f.c_str() + f.size());
}
// Columns named <name>_us hold microseconds since the epoch.
inline absl::Time Micros(const pqxx::field& f) { return absl::FromUnixMicros(Int(f)); }

inline std::string Str(const pqxx::row& row, const char* column) { return Str(row[column]); }
inline int64_t Int(const pqxx::row& row, const char* column) { return Int(row[column]); }
inline double Double(const pqxx::row& row, const char* column) { return Double(row[column]); }
inline bool Bool(const pqxx::row& row, const char* column) { return Bool(row[column]); }
inline nlohmann::json Json(const pqxx::row& row, const char* column) { return Json(row[column]); }
inline absl::Time Micros(const pqxx::row& row, const char* column) { return Micros(row[column]); }

// NULL when empty, for optional uuid/text parameters.
inline std::optional<std::string> NullIfEmpty(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_STORE_INTERNAL_H_
