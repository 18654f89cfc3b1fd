// The CLI's channel, call deadlines, and grpc::Status -> absl::Status (the codes map one to one).
#include "services/cli/rpc.h"

#include <chrono>
#include <cstdlib>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_tls.h"

namespace tuneforge::cli {

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& server, const GlobalOptions& global) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentialsFromFiles({global.ca, global.cert, global.key});
  if (!credentials.ok()) return UsageError(std::string(credentials.status().message()));
  grpc::ChannelArguments arguments;
  // Database documents come in 1 MiB pieces; a page of up to 1000 records may still pass gRPC's default of 4 MiB.
  arguments.SetMaxReceiveMessageSize(-1);
  // A watch that lost its server retries every few seconds; gRPC's default backoff grows to two minutes.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 3000);
  return grpc::CreateCustomChannel(server, *credentials, arguments);
}

bool IsLocalServer(const std::string& server) {
  if (absl::StartsWith(server, "unix:")) return true;
  std::string host = server.substr(0, server.rfind(':'));
  if (absl::StartsWith(host, "dns:///")) host = host.substr(7);
  return host == "localhost" || host == "[::1]" || host == "::1" || absl::StartsWith(host, "127.");
}

absl::StatusOr<std::string> ResolveApiToken(const GlobalOptions& global) {
  std::string path = global.api_token_file;
  bool required = !path.empty();
  if (path.empty()) {
    if (const char* token = std::getenv("TUNEFORGE_API_TOKEN"); token != nullptr && *token != '\0') {
      return std::string(absl::StripAsciiWhitespace(token));
    }
    // The local admin token goes only to a server on this machine; any other needs a token named explicitly.
    if (!IsLocalServer(global.server)) return std::string();
    const char* home = std::getenv("TUNEFORGE_HOME");
    const char* user_home = std::getenv("HOME");
    if (home != nullptr && *home != '\0') {
      path = absl::StrCat(home, "/admin-token");
    } else if (user_home != nullptr && *user_home != '\0') {
      path = absl::StrCat(user_home, "/.tuneforge/admin-token");
    } else {
      return std::string();
    }
  }
  std::ifstream in(path);
  if (!in) {
    if (!required) return std::string();
    return UsageError(absl::StrCat("cannot read the API token file ", path, "; check --api-token-file"));
  }
  std::string token;
  std::getline(in, token);
  token = std::string(absl::StripAsciiWhitespace(token));
  if (token.empty()) return UsageError(absl::StrCat("the API token file ", path, " is empty"));
  return token;
}

void CommandContext::Authenticate(grpc::ClientContext* call) const {
  if (!api_token.empty()) call->AddMetadata("authorization", absl::StrCat("Bearer ", api_token));
}

std::unique_ptr<grpc::ClientContext> CommandContext::NewCallContext() const {
  auto call = std::make_unique<grpc::ClientContext>();
  call->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(global.timeout));
  Authenticate(call.get());
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
