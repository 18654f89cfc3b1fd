// Formatting of shared records for user-facing messages.
#include "services/metadata/records.h"

#include "absl/strings/str_cat.h"

namespace tuneforge {

std::string DescribeDependents(const std::vector<DependentRecord>& dependents, size_t max_listed) {
  std::string out;
  for (size_t i = 0; i < dependents.size() && i < max_listed; ++i) {
    if (i > 0) out += ", ";
    absl::StrAppend(&out, dependents[i].kind, " '", dependents[i].name, "' (", dependents[i].id, ")");
  }
  if (dependents.size() > max_listed) absl::StrAppend(&out, " and ", dependents.size() - max_listed, " more");
  return out;
}

}  // namespace tuneforge
