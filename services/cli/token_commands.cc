// tuneforge tokens create|list|revoke|whoami: the bearer tokens of tuneforge-metadata (tuneforge.v1.Tokens).
// A new token's secret goes to standard output once, alone on its line, so that it can be redirected to a file.
#include "absl/strings/str_cat.h"
#include "services/cli/commands.h"
#include "tuneforge/v1/tokens.grpc.pb.h"

namespace tuneforge::cli {

namespace {

using v1::Tokens;

absl::Status RunCreate(CommandContext& context, const Command& command, const ParsedArgs& args) {
  v1::CreateTokenRequest request;
  RETURN_IF_ERROR(BindRequest(command, args, &request));
  if (args.Has("ttl")) {
    ASSIGN_OR_RETURN(absl::Duration ttl, ParseDurationFlag("--ttl", args.Get("ttl")));
    request.set_ttl_seconds(absl::ToInt64Seconds(ttl));
  }
  v1::CreateTokenResponse response;
  RETURN_IF_ERROR(CallUnary(context, &Tokens::Stub::CreateToken, request, &response));
  if (context.global.json) {
    PrintResponse(context, response, View{}, "");
  } else {
    *context.out << response.secret() << "\n";
  }
  *context.err << "created token '" << response.token().name() << "' (" << response.token().prefix()
               << "...); the secret above is shown only now: store it, e.g. tuneforge tokens create ... > token "
               << "&& chmod 600 token, and pass it with --api-token-file\n";
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> TokenCommands() {
  const std::vector<Column> columns = {{"NAME", "name"},           {"ROLE", "role"},
                                       {"PREFIX", "prefix"},       {"CREATED", "create_time"},
                                       {"BY", "created_by"},       {"EXPIRES", "expire_time"},
                                       {"LAST USED", "last_use_time"}, {"REVOKED", "revoke_time"}};
  return {
      Command{"tokens",
              "create",
              "create a bearer token with a role (admin only); prints its secret once",
              "Roles: viewer (get, list, watch, preview), operator (also add, start, cancel, export, remove),\n"
              "admin (also admin and tokens), trainer (tuneforge-trainer's WorkerQueue calls only).\n"
              "The server keeps only a hash: a lost secret cannot be shown again; revoke it and create another.",
              "tuneforge tokens create ci-bot --role operator --ttl 720h > ci-bot.token && chmod 600 ci-bot.token",
              {{"NAME", "", "unique name (letters, digits, . _ -)", "name", Binding::kField, true}},
              {{"role", "ROLE", "viewer, operator, admin or trainer", "role", Binding::kField, true},
               {"description", "TEXT", "free text shown with the token", "description"},
               {"ttl", "DURATION", "expire after this long: 3600, 90m, 720h (default never)", "", Binding::kNone}},
              {},
              RunCreate},
      Command{"tokens",
              "list",
              "list the active tokens (admin only), never their secrets",
              "",
              "tuneforge tokens list\ntuneforge tokens list --all",
              {},
              {{"all", "", "also revoked and expired tokens", "include_inactive"}},
              {},
              UnaryCommand(&Tokens::Stub::ListTokens, View{"tokens", columns, {}, ""})},
      Command{"tokens",
              "revoke",
              "revoke a token by name or id (admin only); calls with it fail from then on",
              "",
              "tuneforge tokens revoke ci-bot",
              {{"NAME", "", "name or id of the token", "token", Binding::kField, true}},
              {},
              {},
              UnaryCommand(&Tokens::Stub::RevokeToken, View{"token", {}, {}, "revoked token {}"})},
      Command{"tokens",
              "whoami",
              "show the token this CLI sends and its role",
              "",
              "tuneforge tokens whoami",
              {},
              {},
              {},
              UnaryCommand(&Tokens::Stub::GetCaller, View{})},
  };
}

}  // namespace tuneforge::cli
