// The one place where absl::Status becomes grpc::Status (codes map one to one).
#ifndef TUNEFORGE_COMMON_GRPC_STATUS_H_
#define TUNEFORGE_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace tuneforge {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_GRPC_STATUS_H_
