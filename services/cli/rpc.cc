// The CLI's channel, call deadlines, and grpc::Status -> absl::Status (the codes map one to one).
#include "services/cli/rpc.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tuneforge::cli {

std::shared_ptr<grpc::Channel> OpenChannel(const std::string& server) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);  // a database export can be large
  // A watch that lost its server retries every few seconds; gRPC's default backoff grows to two minutes.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 3000);
  return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), arguments);
}

std::unique_ptr<grpc::ClientContext> CommandContext::NewCallContext() const {
  auto call = std::make_unique<grpc::ClientContext>();
  call->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(global.timeout));
  return call;
}

absl::Status CommandContext::FromRpc(const grpc::Status& status) const {
  if (status.ok()) return absl::OkStatus();
  std::string message = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      // The server itself answers UNAVAILABLE when its database or the Hub is down; then the channel is up.
      if (channel->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY) {
        const std::string& server = global.server;
        size_t colon = server.rfind(':');
        std::string start = absl::StartsWith(server, "unix:") || colon == std::string::npos
                                ? "tuneforge-metadata"
                                : absl::StrCat("tuneforge-metadata --port ", server.substr(colon + 1));
        message =
            absl::StrCat("the tuneforge-metadata server at ", server, " is not reachable (", message,
                         "). Start it with '", start, "', or point --server or TUNEFORGE_SERVER at a running server");
      }
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      message = absl::StrCat(message, " (no answer from ", global.server, " within --timeout ",
                             absl::FormatDuration(global.timeout), "; raise it for slow calls)");
      break;
    default:
      break;
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), message);
}

}  // namespace tuneforge::cli
