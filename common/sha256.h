// Streaming SHA-256 (OpenSSL EVP) for fingerprints and file checksums; hex output is lowercase.
#ifndef TUNEFORGE_COMMON_SHA256_H_
#define TUNEFORGE_COMMON_SHA256_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tuneforge {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view bytes);
  // Finishes the digest; the object must not be updated afterwards.
  std::string HexDigest();

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
};

std::string Sha256Hex(std::string_view bytes);

// Hashes a file in 1 MiB chunks. NOT_FOUND / PERMISSION_DENIED / DATA_LOSS name the path.
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_SHA256_H_
