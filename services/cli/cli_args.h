// The tuneforge CLI's command table types and its command-line parser: global flags, "<group> <verb>",
// positional arguments and per-command flags, checked against the table before anything is sent.
#ifndef TUNEFORGE_SERVICES_CLI_CLI_ARGS_H_
#define TUNEFORGE_SERVICES_CLI_CLI_ARGS_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tuneforge::cli {

// How an argument's value reaches the request message (see request_binding.h).
enum class Binding {
  kField,       // the request field `field`: string, number, bool or enum; repeated fields take comma lists
  kLocalPath,   // like kField, made absolute first (the server resolves paths on its own filesystem)
  kHubRepo,     // "org/name[@revision]" into `field`.repo_id and `field`.revision
  kSecretFile,  // the first line of a file into `field`; never printed
  kJsonFile,    // a file holding a JSON object, into the google.protobuf.Struct `field`
  kKeyValue,    // "key=value" into the Struct `field`; with no field the key's first part names the Struct field
  kNone,        // read by the command itself
};

// A positional argument (upper-case name) or a flag (name without the dashes).
struct Option {
  std::string name = "";
  std::string value_name = "";  // what a flag's value looks like, "" for a switch; unused for positionals
  std::string help = "";
  std::string field = "";  // request field path, e.g. "huggingface.repo_id"
  Binding binding = Binding::kField;
  bool required = false;
  bool repeated = false;
};

// What the user gave, by option name. Switches hold "true".
struct ParsedArgs {
  std::map<std::string, std::vector<std::string>> values;

  bool Has(const std::string& name) const { return values.count(name) > 0; }
  // The last value given, or "" when absent.
  std::string Get(const std::string& name) const;
};

struct GlobalOptions {
  std::string server;  // host:port
  absl::Duration timeout = absl::Seconds(60);
  bool json = false;
  // --api-token-file, else $TUNEFORGE_API_TOKEN_FILE; empty: $TUNEFORGE_API_TOKEN or <home>/admin-token.
  std::string api_token_file;
  // TLS: --ca (the server's CA), --cert and --key (mutual TLS); else $TUNEFORGE_CA, $TUNEFORGE_CERT, $TUNEFORGE_KEY.
  std::string ca, cert, key;
};

struct Command;
struct CommandContext;
using RunFn = std::function<absl::Status(CommandContext&, const Command&, const ParsedArgs&)>;

// One row of the command table: everything the parser, the help text and the runner need.
struct Command {
  std::string group;  // "models"
  std::string verb;   // "add"
  std::string summary;
  std::string details;  // extra paragraphs for --help
  std::string example;  // one or more command lines
  std::vector<Option> args;
  std::vector<Option> flags;
  // Each inner list names options (args or flags) of which exactly one must be given.
  std::vector<std::vector<std::string>> exactly_one;
  RunFn run;
};

struct CommandLine {
  GlobalOptions global;
  absl::Status error;  // a usage error; group and command are still set as far as they were understood
  bool help = false;
  std::string group;  // may be set without a command (`tuneforge models --help`)
  const Command* command = nullptr;
  ParsedArgs args;
};

// Server default when neither --server nor TUNEFORGE_SERVER is given: tuneforge-metadata's default port.
inline constexpr char kDefaultServer[] = "localhost:50051";

// Parses argv against the table. With --help anywhere, help is set and errors are ignored.
CommandLine ParseCommandLine(const std::vector<Command>& commands, int argc, char** argv);

// A duration as users write it: seconds (30, 1.5) or 30s, 2m, 1h. `label` names the flag in the error.
absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& label, const std::string& text);

// Help texts. `group` may name a group; an empty or unknown group gives the top-level help.
std::string TopLevelHelp(const std::vector<Command>& commands);
std::string GroupHelp(const std::vector<Command>& commands, const std::string& group);
std::string CommandHelp(const Command& command);
// "tuneforge models add NAME [PATH] [--hf REPO[@REVISION]] ..."
std::string UsageLine(const Command& command);
// What to print after a usage error: the usage of the command (or the group's commands) and where help is.
std::string UsageHint(const std::vector<Command>& commands, const CommandLine& line);

// An error in what the user typed (exit code 2); everything else is an RPC or job error (exit code 1).
absl::Status UsageError(const std::string& message);
bool IsUsageError(const absl::Status& status);

}  // namespace tuneforge::cli

#endif  // TUNEFORGE_SERVICES_CLI_CLI_ARGS_H_
