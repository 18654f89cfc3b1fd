// Shared secrets kept in files (the worker token): read, or created with a random value and mode 0600.
#ifndef TUNEFORGE_COMMON_SECRET_FILE_H_
#define TUNEFORGE_COMMON_SECRET_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tuneforge {

// The file's content without surrounding whitespace. Empty content -> INVALID_ARGUMENT; missing -> NOT_FOUND;
// readable by group or others -> PERMISSION_DENIED saying to chmod 600. The secret never appears in a message.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

// ReadSecretFile, or when the file does not exist, writes 32 random bytes as hex (mode 0600, atomically) first.
absl::StatusOr<std::string> ReadOrCreateSecretFile(const std::string& path);

// `bytes` random bytes (OpenSSL's generator) as lowercase hex.
absl::StatusOr<std::string> RandomHexSecret(size_t bytes);

// Replaces the file with `secret` and a newline, atomically, mode 0600.
absl::Status WriteSecretFile(const std::string& path, const std::string& secret);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_SECRET_FILE_H_
