// What repositories see of a transaction: the libpqxx work object and small row helpers.
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
  explicit Tx(pqxx::work& work) : work_(work) {}
  pqxx::work& work() { return work_; }

 private:
  pqxx::work& work_;
};

// Column readers: NULL reads as the empty value.
inline std::string Str(const pqxx::row& row, const char* column) {
  const pqxx::field f = row[column];
  return f.is_null() ? std::string() : f.as<std::string>();
}
inline int64_t Int(const pqxx::row& row, const char* column) {
  const pqxx::field f = row[column];
  return f.is_null() ? 0 : f.as<int64_t>();
}
inline double Double(const pqxx::row& row, const char* column) {
  const pqxx::field f = row[column];
  return f.is_null() ? 0.0 : f.as<double>();
}
inline bool Bool(const pqxx::row& row, const char* column) {
  const pqxx::field f = row[column];
  return !f.is_null() && f.as<bool>();
}
inline nlohmann::json Json(const pqxx::row& row, const char* column) {
  const pqxx::field f = row[column];
  return f.is_null() ? nlohmann::json() : nlohmann::json::parse(f.c_str());
}
// Columns named <name>_us hold microseconds since the epoch.
inline absl::Time Micros(const pqxx::row& row, const char* column) {
  return absl::FromUnixMicros(Int(row, column));
}

// NULL when empty, for optional uuid/text parameters.
inline std::optional<std::string> NullIfEmpty(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_STORE_INTERNAL_H_
