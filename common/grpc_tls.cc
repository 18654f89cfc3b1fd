// PEM files read once at start-up and handed to gRPC's SSL credentials.
#include "common/grpc_tls.h"

#include <grpcpp/security/server_credentials.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tuneforge {

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, "='", path, "' cannot be read; give a PEM file"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string pem = ss.str();
  if (!absl::StrContains(pem, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(flag, "='", path, "' is not a PEM file (no -----BEGIN line)"));
  }
  return pem;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFiles(const ServerTlsFiles& files,
                                                                                   const std::string& flag_prefix) {
  if (files.cert.empty() && files.key.empty()) {
    if (!files.client_ca.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(flag_prefix, "client-ca needs ", flag_prefix, "cert and ",
                                                     flag_prefix, "key: mutual TLS is TLS first"));
    }
    return grpc::InsecureServerCredentials();
  }
  if (files.cert.empty() || files.key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag_prefix, "cert and ", flag_prefix, "key go together: give both to serve TLS, or neither"));
  }
  grpc::SslServerCredentialsOptions options(files.client_ca.empty()
                                                ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  auto cert = ReadPem(files.cert, flag_prefix + "cert");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(files.key, flag_prefix + "key");
  if (!key.ok()) return key.status();
  pair.cert_chain = *cert;
  pair.private_key = *key;
  options.pem_key_cert_pairs.push_back(std::move(pair));
  if (!files.client_ca.empty()) {
    auto ca = ReadPem(files.client_ca, flag_prefix + "client-ca");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  return grpc::SslServerCredentials(options);
}

bool UsesTls(const ClientTlsFiles& files) { return !files.ca.empty() || !files.cert.empty() || !files.key.empty(); }

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromFiles(const ClientTlsFiles& files) {
  if (!UsesTls(files)) return grpc::InsecureChannelCredentials();
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError("--cert and --key go together: give both for mutual TLS, or neither");
  }
  grpc::SslCredentialsOptions options;
  if (!files.ca.empty()) {  // otherwise the system's roots
    auto ca = ReadPem(files.ca, "--ca");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  if (!files.cert.empty()) {
    auto cert = ReadPem(files.cert, "--cert");
    if (!cert.ok()) return cert.status();
    auto key = ReadPem(files.key, "--key");
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *cert;
    options.pem_private_key = *key;
  }
  return grpc::SslCredentials(options);
}

}  // namespace tuneforge
