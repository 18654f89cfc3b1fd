// The tuneforge command table and the pieces its rows are built from: option helpers, and the generic
// runner of a unary RPC (bind the request from the arguments, call, print the response as its View says).
#ifndef TUNEFORGE_SERVICES_CLI_COMMANDS_H_
#define TUNEFORGE_SERVICES_CLI_COMMANDS_H_

#include <functional>
#include <string>
#include <vector>

#include "common/status_macros.h"
#include "services/cli/cli_args.h"
#include "services/cli/output.h"
#include "services/cli/request_binding.h"
#include "services/cli/rpc.h"
#include "tuneforge/v1/jobs.pb.h"

namespace tuneforge::cli {

// Every command, in the order --help lists them.
std::vector<Command> AllCommands();
// models, datasets, prompts, configs, adapters, admin (resource_commands.cc).
std::vector<Command> ResourceCommands();
// jobs (job_commands.cc).
std::vector<Command> JobCommands();
// eval start / get / list / watch / cancel / remove (eval_commands.cc).
std::vector<Command> EvalCommands();
// trainer status / prefetch (trainer_commands.cc).
std::vector<Command> TrainerCommands();
// tokens create / list / revoke / whoami (token_commands.cc).
std::vector<Command> TokenCommands();
// lineage model / dataset / prompt / config / job / adapter / export (lineage_commands.cc).
std::vector<Command> LineageCommands();

// A required positional naming a record by id or name, bound to the request field `field`.
Option RecordArg(const std::string& name, const std::string& what, const std::string& field);
// --page-size and --page-token.
std::vector<Option> PagingFlags();
// --hf REPO[@REVISION] and --token-file FILE for the request's `huggingface` source.
std::vector<Option> HubFlags(const std::string& what);

// --reconnect-for DURATION, and its value (default 10m).
Option ReconnectFlag();
absl::StatusOr<absl::Duration> ReconnectFor(const ParsedArgs& args);
// Streams a job's events (a progress bar on a terminal, JSON lines with --output json) until it reaches a final
// state, then prints the summary; the exit code says whether it SUCCEEDED. When the server goes away after the
// stream started, the watch reconnects and resumes after the last event it saw, for up to `reconnect_for`.
// `final_job` (when given) receives the job as it ended.
absl::Status WatchJob(CommandContext& context, std::string job, absl::Duration reconnect_for,
                      v1::FineTuningJob* final_job = nullptr);

template <typename Request>
using PrepareFn = std::function<absl::Status(const ParsedArgs&, Request*)>;

// Runs one unary RPC: the request comes from the command's bindings (and `prepare`, if any), the response is
// printed as `view` says.
template <typename Stub, typename Request, typename Response>
RunFn UnaryCommand(UnaryMethod<Stub, Request, Response> method, View view, PrepareFn<Request> prepare = nullptr) {
  return [method, view, prepare](CommandContext& context, const Command& command, const ParsedArgs& args) {
    Request request;
    RETURN_IF_ERROR(BindRequest(command, args, &request));
    if (prepare) RETURN_IF_ERROR(prepare(args, &request));
    Response response;
    RETURN_IF_ERROR(CallUnary(context, method, request, &response));
    PrintResponse(context, response, view, command.args.empty() ? "" : args.Get(command.args[0].name));
    return absl::OkStatus();
  };
}

}  // namespace tuneforge::cli

#endif  // TUNEFORGE_SERVICES_CLI_COMMANDS_H_
