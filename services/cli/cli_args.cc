// Parses the tuneforge command line against the command table and writes the --help texts from it.
#include "services/cli/cli_args.h"

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace tuneforge::cli {

namespace {

constexpr char kUsagePayload[] = "type.tuneforge.dev/cli.usage";

const std::vector<Option>& GlobalFlags() {
  static const auto* flags = new std::vector<Option>{
      {"server", "HOST:PORT", "tuneforge-metadata to talk to (default $TUNEFORGE_SERVER, else localhost:50051)"},
      {"timeout", "DURATION", "deadline of each call: seconds, or 30s, 2m (default 60s); jobs watch waits for ever"},
      {"output", "text|json", "text: tables and key: value blocks; json: the response message as JSON (default text)"},
      {"api-token-file", "FILE",
       "bearer token for tuneforge-metadata (default $TUNEFORGE_API_TOKEN_FILE, else $TUNEFORGE_API_TOKEN, else "
       "<$TUNEFORGE_HOME or ~/.tuneforge>/admin-token when it exists and --server is on this machine)"},
      {"ca", "FILE", "PEM CA bundle: talk TLS to the server and check its certificate (default $TUNEFORGE_CA)"},
      {"cert", "FILE", "PEM client certificate for mutual TLS, with --key (default $TUNEFORGE_CERT)"},
      {"key", "FILE", "PEM private key of --cert (default $TUNEFORGE_KEY)"},
  };
  return *flags;
}

const Option* FindOption(const std::vector<Option>& options, const std::string& name) {
  for (const Option& option : options) {
    if (option.name == name) return &option;
  }
  return nullptr;
}

std::string FlagSyntax(const Option& flag) {
  return flag.value_name.empty() ? absl::StrCat("--", flag.name) : absl::StrCat("--", flag.name, " ", flag.value_name);
}

// Two-column block: "  left   right", the right column aligned.
std::string Columns(const std::vector<std::pair<std::string, std::string>>& rows) {
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  std::string out;
  for (const auto& [left, right] : rows) {
    absl::StrAppend(&out, "  ", left, std::string(width - left.size() + 3, ' '), right, "\n");
  }
  return out;
}

std::string GlobalFlagsHelp() {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const Option& flag : GlobalFlags()) rows.emplace_back(FlagSyntax(flag), flag.help);
  rows.emplace_back("--help, -h", "show help for any command or group");
  return Columns(rows);
}

std::string NormalizeServer(std::string server) {
  // "host" alone means the default port; scheme forms (unix:, dns:///) are passed to gRPC as they are.
  if (server.find(':') == std::string::npos) absl::StrAppend(&server, ":50051");
  return server;
}

// Checks the positionals and flags collected for `command`.
absl::Status CheckArguments(const Command& command, const std::vector<std::string>& positionals, ParsedArgs* args) {
  const std::string name = absl::StrCat("'tuneforge ", command.group, " ", command.verb, "'");
  if (positionals.size() > command.args.size()) {
    return UsageError(absl::StrCat("unexpected argument '", positionals[command.args.size()], "' for ", name));
  }
  for (size_t i = 0; i < positionals.size(); ++i) args->values[command.args[i].name].push_back(positionals[i]);
  for (const Option& arg : command.args) {
    if (arg.required && !args->Has(arg.name)) return UsageError(absl::StrCat(name, " needs ", arg.name));
  }
  for (const Option& flag : command.flags) {
    if (flag.required && !args->Has(flag.name)) {
      return UsageError(absl::StrCat(name, " needs --", flag.name, " ", flag.value_name));
    }
    if (!flag.repeated && args->Has(flag.name) && args->values[flag.name].size() > 1) {
      return UsageError(absl::StrCat("--", flag.name, " is given more than once"));
    }
  }
  for (const std::vector<std::string>& group : command.exactly_one) {
    std::vector<std::string> given, shown;
    for (const std::string& option : group) {
      std::string label = FindOption(command.args, option) != nullptr ? option : absl::StrCat("--", option);
      shown.push_back(label);
      if (args->Has(option)) given.push_back(label);
    }
    if (given.size() != 1) {
      return UsageError(absl::StrCat(name, " needs exactly one of ", absl::StrJoin(shown, ", "),
                                     given.empty() ? "" : absl::StrCat("; got ", absl::StrJoin(given, " and "))));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& label, const std::string& text) {
  double seconds = 0;
  absl::Duration duration;
  if (absl::SimpleAtod(text, &seconds)) {
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &duration)) {
    return UsageError(absl::StrCat(label, " '", text, "' is not a duration; write seconds (30) or 30s, 2m, 1h"));
  }
  if (duration <= absl::ZeroDuration()) return UsageError(absl::StrCat(label, " '", text, "' must be positive"));
  return duration;
}

std::string ParsedArgs::Get(const std::string& name) const {
  auto it = values.find(name);
  return it == values.end() || it->second.empty() ? "" : it->second.back();
}

absl::Status UsageError(const std::string& message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayload, absl::Cord("1"));
  return status;
}

bool IsUsageError(const absl::Status& status) { return status.GetPayload(kUsagePayload).has_value(); }

CommandLine ParseCommandLine(const std::vector<Command>& commands, int argc, char** argv) {
  CommandLine line;
  const char* env_server = std::getenv("TUNEFORGE_SERVER");
  line.global.server = env_server != nullptr && *env_server != '\0' ? env_server : kDefaultServer;
  for (const auto& [env, target] : {std::pair<const char*, std::string*>{"TUNEFORGE_API_TOKEN_FILE", &line.global.api_token_file},
                                    {"TUNEFORGE_CA", &line.global.ca},
                                    {"TUNEFORGE_CERT", &line.global.cert},
                                    {"TUNEFORGE_KEY", &line.global.key}}) {
    if (const char* value = std::getenv(env); value != nullptr) *target = value;
  }
  std::vector<std::string> positionals;
  absl::Status first_error;
  auto fail = [&](absl::Status status) {
    if (first_error.ok()) first_error = std::move(status);
  };
  bool only_positionals = false;
  bool group_known = false;
  for (int i = 1; i < argc; ++i) {
    const std::string token = argv[i];
    if (!only_positionals && token == "--") {
      only_positionals = true;
      continue;
    }
    if (!only_positionals && (token == "--help" || token == "-h")) {
      line.help = true;
      continue;
    }
    if (only_positionals || token.size() < 2 || token[0] != '-') {
      if (line.group.empty()) {
        line.group = token;
        group_known = std::any_of(commands.begin(), commands.end(), [&](const Command& c) { return c.group == token; });
        if (!group_known) fail(UsageError(absl::StrCat("unknown command '", token, "'")));
      } else if (line.command == nullptr && group_known) {
        for (const Command& command : commands) {
          if (command.group == line.group && command.verb == token) line.command = &command;
        }
        if (line.command == nullptr) fail(UsageError(absl::StrCat("unknown command '", line.group, " ", token, "'")));
      } else {
        positionals.push_back(token);
      }
      continue;
    }
    // A flag: --name, --name=value or --name value. Only the name is ever echoed back: values may be secrets.
    std::string name = token.substr(token[1] == '-' ? 2 : 1);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const Option* flag = FindOption(GlobalFlags(), name);
    const bool global = flag != nullptr;
    if (flag == nullptr && line.command != nullptr) flag = FindOption(line.command->flags, name);
    if (flag == nullptr) {
      if (name == "token") {
        fail(
            UsageError("--token is not accepted: a token on the command line ends up in shell history and process "
                       "lists; put it in a file and pass --token-file FILE, or set HF_TOKEN"));
      } else if (line.command == nullptr) {
        fail(UsageError(
            absl::StrCat("unknown flag --", name, line.group.empty() ? "" : " (flags go after the command)")));
      } else {
        fail(UsageError(absl::StrCat("unknown flag --", name, " for 'tuneforge ", line.command->group, " ",
                                     line.command->verb, "'")));
      }
      // A value that follows belongs to the unknown flag; it must not be read as a positional.
      if (!value.has_value() && i + 1 < argc && argv[i + 1][0] != '-') ++i;
      continue;
    }
    if (flag->value_name.empty()) {
      if (value.has_value()) fail(UsageError(absl::StrCat("--", name, " takes no value")));
      value = "true";
    } else if (!value.has_value()) {
      if (i + 1 >= argc) {
        fail(UsageError(absl::StrCat("--", name, " needs a value (", flag->value_name, ")")));
        continue;
      }
      value = argv[++i];
    }
    if (!global) {
      line.args.values[name].push_back(*value);
    } else if (name == "server") {
      line.global.server = *value;
    } else if (name == "timeout") {
      absl::StatusOr<absl::Duration> timeout = ParseDurationFlag("--timeout", *value);
      if (timeout.ok())
        line.global.timeout = *timeout;
      else
        fail(timeout.status());
    } else if (name == "api-token-file") {
      line.global.api_token_file = *value;
    } else if (name == "ca") {
      line.global.ca = *value;
    } else if (name == "cert") {
      line.global.cert = *value;
    } else if (name == "key") {
      line.global.key = *value;
    } else if (name == "output") {
      if (*value == "json" || *value == "text")
        line.global.json = *value == "json";
      else
        fail(UsageError(absl::StrCat("--output '", *value, "' is not one of: text, json")));
    }
  }
  line.global.server = NormalizeServer(line.global.server);
  if (line.help) return line;
  if (!first_error.ok()) {
    line.error = first_error;
  } else if (line.group.empty()) {
    line.error = UsageError("no command given");
  } else if (line.command == nullptr) {
    line.error = UsageError(absl::StrCat("'", line.group, "' needs a command"));
  } else {
    line.error = CheckArguments(*line.command, positionals, &line.args);
  }
  return line;
}

std::string UsageHint(const std::vector<Command>& commands, const CommandLine& line) {
  if (line.command != nullptr) {
    return absl::StrCat("usage: ", UsageLine(*line.command), "\nrun 'tuneforge ", line.command->group, " ",
                        line.command->verb, " --help' for details\n");
  }
  std::vector<std::string> verbs;
  for (const Command& command : commands) {
    if (command.group == line.group) verbs.push_back(command.verb);
  }
  if (!verbs.empty()) {
    return absl::StrCat("usage: tuneforge ", line.group, " <", absl::StrJoin(verbs, "|"), "> ...\nrun 'tuneforge ",
                        line.group, " --help' for details\n");
  }
  std::vector<std::string> groups;
  for (const Command& command : commands) {
    if (std::find(groups.begin(), groups.end(), command.group) == groups.end()) groups.push_back(command.group);
  }
  return absl::StrCat("usage: tuneforge <", absl::StrJoin(groups, "|"),
                      "> <command> [arguments] [flags]\nrun 'tuneforge --help' for details\n");
}

std::string UsageLine(const Command& command) {
  std::string out = absl::StrCat("tuneforge ", command.group, " ", command.verb);
  for (const Option& arg : command.args) {
    absl::StrAppend(&out, " ", arg.required ? arg.name : absl::StrCat("[", arg.name, "]"));
  }
  std::string optional;
  for (const Option& flag : command.flags) {
    std::string syntax = FlagSyntax(flag);
    if (flag.repeated) absl::StrAppend(&syntax, " ...");
    if (flag.required)
      absl::StrAppend(&out, " ", syntax);
    else
      absl::StrAppend(&optional, " [", syntax, "]");
  }
  // Long lists of optional flags are left to the Flags section of --help.
  constexpr size_t kMaxWidth = 100;
  return out.size() + optional.size() <= kMaxWidth || optional.empty() ? out + optional : out + " [flags]";
}

std::string CommandHelp(const Command& command) {
  std::string out = absl::StrCat("tuneforge ", command.group, " ", command.verb, ": ", command.summary,
                                 "\n\nUsage: ", UsageLine(command), "\n");
  if (!command.details.empty()) absl::StrAppend(&out, "\n", command.details, "\n");
  if (!command.args.empty()) {
    std::vector<std::pair<std::string, std::string>> rows;
    for (const Option& arg : command.args) rows.emplace_back(arg.name, arg.help);
    absl::StrAppend(&out, "\nArguments:\n", Columns(rows));
  }
  if (!command.flags.empty()) {
    std::vector<std::pair<std::string, std::string>> rows;
    for (const Option& flag : command.flags) {
      std::string help = flag.help;
      if (flag.required) absl::StrAppend(&help, " (required)");
      if (flag.repeated) absl::StrAppend(&help, " (repeatable)");
      rows.emplace_back(FlagSyntax(flag), help);
    }
    absl::StrAppend(&out, "\nFlags:\n", Columns(rows));
  }
  for (const std::vector<std::string>& group : command.exactly_one) {
    std::vector<std::string> shown;
    for (const std::string& option : group) {
      shown.push_back(FindOption(command.args, option) != nullptr ? option : absl::StrCat("--", option));
    }
    absl::StrAppend(&out, "  Give exactly one of ", absl::StrJoin(shown, ", "), ".\n");
  }
  absl::StrAppend(&out, "\nGlobal flags:\n", GlobalFlagsHelp());
  absl::StrAppend(&out, "\nExample:\n  ", absl::StrReplaceAll(command.example, {{"\n", "\n  "}}), "\n");
  return out;
}

std::string GroupHelp(const std::vector<Command>& commands, const std::string& group) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const Command& command : commands) {
    if (command.group == group) rows.emplace_back(absl::StrCat(command.group, " ", command.verb), command.summary);
  }
  if (rows.empty()) return TopLevelHelp(commands);
  return absl::StrCat("Usage: tuneforge ", group, " <command> [arguments] [flags]\n\nCommands:\n", Columns(rows),
                      "\nGlobal flags:\n", GlobalFlagsHelp(), "\nRun 'tuneforge ", group,
                      " <command> --help' for a command's arguments, flags and an example.\n");
}

std::string TopLevelHelp(const std::vector<Command>& commands) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const Command& command : commands)
    rows.emplace_back(absl::StrCat(command.group, " ", command.verb), command.summary);
  return absl::StrCat(
      "tuneforge: the operator CLI of tuneforge (a gRPC client of tuneforge-metadata).\n\n"
      "Usage: tuneforge <group> <command> [arguments] [flags]\n\nCommands:\n",
      Columns(rows), "\nGlobal flags (anywhere on the line):\n", GlobalFlagsHelp(),
      "\nEnvironment:\n"
      "  TUNEFORGE_SERVER   default for --server\n"
      "  TUNEFORGE_API_TOKEN  the bearer token itself, when no --api-token-file is given\n"
      "  HF_TOKEN           Hugging Face token for --hf sources when no --token-file is given\n"
      "\nExit codes: 0 success; 1 the server answered with an error (printed as 'error: CODE: message'),\n"
      "or a watched job ended in a state other than SUCCEEDED; 2 the command line is wrong.\n"
      "\nExample:\n  tuneforge models add demo-llama ./demo-llama && tuneforge models list --output json\n"
      "\nRun 'tuneforge <group> <command> --help' for a command's arguments, flags and an example.\n");
}

}  // namespace tuneforge::cli
