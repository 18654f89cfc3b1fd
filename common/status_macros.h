// Early-return helpers for absl::Status / absl::StatusOr (our abseil has no status macros).
#ifndef TUNEFORGE_COMMON_STATUS_MACROS_H_
#define TUNEFORGE_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TF_CONCAT_INNER_(a, b) a##b
#define TF_CONCAT_(a, b) TF_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status tf_status_ = (expr);                \
    if (!tf_status_.ok()) return tf_status_;           \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, F());` assigns the value of a StatusOr or returns its status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(TF_CONCAT_(tf_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

#endif  // TUNEFORGE_COMMON_STATUS_MACROS_H_
