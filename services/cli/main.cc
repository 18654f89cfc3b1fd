// tuneforge: the operator CLI. Parses the command line against the command table, runs the command against
// tuneforge-metadata, prints errors as "error: CODE: message". Exit codes: 0 ok, 1 server error or failed job,
// 2 wrong command line.
#include <iostream>

#include "services/cli/commands.h"

int main(int argc, char** argv) {
  using namespace tuneforge::cli;
  const std::vector<Command> commands = AllCommands();
  const CommandLine line = ParseCommandLine(commands, argc, argv);
  if (line.help) {
    std::cout << (line.command != nullptr ? CommandHelp(*line.command) : GroupHelp(commands, line.group));
    return 0;
  }
  if (!line.error.ok()) {
    PrintError(std::cerr, line.error);
    std::cerr << UsageHint(commands, line);
    return 2;
  }
  absl::Status status = absl::OkStatus();
  CommandContext context{line.global, nullptr, &std::cout, &std::cerr};
  if (absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = OpenChannel(line.global.server, line.global);
      !channel.ok()) {
    status = channel.status();
  } else if (absl::StatusOr<std::string> token = ResolveApiToken(line.global); !token.ok()) {
    status = token.status();
  } else {
    context.channel = *channel;
    context.api_token = *token;
    status = line.command->run(context, *line.command, line.args);
  }
  std::cout.flush();
  if (status.ok()) return context.exit_code;
  PrintError(std::cerr, status);
  if (!IsUsageError(status)) return 1;
  std::cerr << UsageHint(commands, line);
  return 2;
}
