// gRPC credentials from PEM files: TLS (and mutual TLS) for the services' ports and the channels to them, or
// plaintext when no file is given.
#ifndef TUNEFORGE_COMMON_GRPC_TLS_H_
#define TUNEFORGE_COMMON_GRPC_TLS_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tuneforge {

struct ServerTlsFiles {
  std::string cert;       // PEM certificate chain; empty: plaintext
  std::string key;        // PEM private key of `cert`
  std::string client_ca;  // PEM CA bundle; set: clients must present a certificate it signed
};

struct ClientTlsFiles {
  std::string ca;    // PEM CA bundle the server's certificate must chain to; empty with cert/key empty: plaintext
  std::string cert;  // PEM client certificate (mutual TLS), with `key`
  std::string key;
};

// Each file must exist and hold PEM; the errors name the flag (`flag_prefix` + "cert", ...) and the path.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFiles(const ServerTlsFiles& files,
                                                                                   const std::string& flag_prefix);
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromFiles(const ClientTlsFiles& files);

bool UsesTls(const ClientTlsFiles& files);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_GRPC_TLS_H_
