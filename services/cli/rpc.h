// What a command runs with (the channel, the global options, the output streams) and the one place where
// a grpc::Status becomes the absl::Status a command returns, with advice when the server is not reachable.
#ifndef TUNEFORGE_SERVICES_CLI_RPC_H_
#define TUNEFORGE_SERVICES_CLI_RPC_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "services/cli/cli_args.h"

namespace tuneforge::cli {

struct CommandContext {
  GlobalOptions global;
  std::shared_ptr<grpc::Channel> channel;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Set by commands whose outcome is not an error but must not exit 0 (a watched job that failed).
  int exit_code = 0;
  // Sent as "authorization: Bearer <api_token>" when set. Never printed.
  std::string api_token;

  // Adds the bearer token, if any, to a call.
  void Authenticate(grpc::ClientContext* call) const;
  // A ClientContext with the --timeout deadline and the bearer token.
  std::unique_ptr<grpc::ClientContext> NewCallContext() const;
  // The command's view of a finished call. UNAVAILABLE while the channel is not connected means there is no
  // server at --server: the message says so and how to start one.
  absl::Status FromRpc(const grpc::Status& status) const;
};

// A channel to `server` with no message size limit: TLS when the global options name a CA or a client
// certificate, plaintext otherwise. INVALID_ARGUMENT names a TLS file that cannot be used.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& server, const GlobalOptions& global);

// The bearer token for tuneforge-metadata: the first line of --api-token-file ($TUNEFORGE_API_TOKEN_FILE), else
// $TUNEFORGE_API_TOKEN, else <$TUNEFORGE_HOME or ~/.tuneforge>/admin-token when it exists and the server is on this
// machine (loopback or a unix socket), else none ("").
absl::StatusOr<std::string> ResolveApiToken(const GlobalOptions& global);

// Whether `server` (host:port, unix:PATH or dns:///host:port) is on this machine.
bool IsLocalServer(const std::string& server);

template <typename Stub, typename Request, typename Response>
using UnaryMethod = grpc::Status (Stub::*)(grpc::ClientContext*, const Request&, Response*);

// Calls one unary RPC of the service whose stub is `Stub`.
template <typename Stub, typename Request, typename Response>
absl::Status CallUnary(const CommandContext& context, UnaryMethod<Stub, Request, Response> method,
                       const Request& request, Response* response) {
  Stub stub(context.channel);
  std::unique_ptr<grpc::ClientContext> call = context.NewCallContext();
  return context.FromRpc((stub.*method)(call.get(), request, response));
}

}  // namespace tuneforge::cli

#endif  // TUNEFORGE_SERVICES_CLI_RPC_H_
