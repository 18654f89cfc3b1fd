// Command rows for fine-tuning jobs: start (optionally watching), watch with a progress bar and reconnection,
// get, list, cancel, remove and checkpoints.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/cli/commands.h"
#include "services/cli/progress_bar.h"
#include "tuneforge/v1/jobs.grpc.pb.h"

namespace tuneforge::cli {

namespace {

using v1::FineTuningJobs;

constexpr char kDefaultReconnectFor[] = "10m";

Option JobArg() { return RecordArg("JOB", "job", "job"); }

int TerminalWidth() {
  winsize size{};
  return ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 ? size.ws_col : 0;
}

}  // namespace

Option ReconnectFlag() {
  return {"reconnect-for", "DURATION",
          absl::StrCat("keep reconnecting this long when the server goes away mid-watch (default ",
                       kDefaultReconnectFor, ")"),
          "", Binding::kNone};
}

absl::Status WatchJob(CommandContext& context, std::string job, absl::Duration reconnect_for,
                      v1::FineTuningJob* final_job) {
  const bool json = context.global.json;
  const bool terminal = !json && isatty(STDOUT_FILENO) == 1;
  JobProgressDisplay display(*context.out, terminal, terminal ? TerminalWidth() : 0);
  FineTuningJobs::Stub stub(context.channel);
  int64_t after_sequence = 0;
  std::optional<v1::FineTuningJob> last;
  std::optional<absl::Time> lost_since;
  absl::Duration backoff = absl::Milliseconds(250);
  while (true) {
    grpc::ClientContext call;  // no deadline: a watch lasts as long as the job
    context.Authenticate(&call);
    v1::WatchFineTuningJobRequest request;
    request.set_job(job);
    request.set_after_sequence(after_sequence);
    std::unique_ptr<grpc::ClientReader<v1::WatchFineTuningJobResponse>> reader =
        stub.WatchFineTuningJob(&call, request);
    v1::WatchFineTuningJobResponse response;
    while (reader->Read(&response)) {
      if (lost_since.has_value()) {
        display.Note(absl::StrCat("reconnected to ", context.global.server));
        lost_since.reset();
        backoff = absl::Milliseconds(250);
      }
      after_sequence = std::max(after_sequence, response.event().sequence());
      if (!response.job().id().empty()) job = response.job().id();
      last = response.job();
      if (json) {
        *context.out << ToJson(response, /*pretty=*/false) << "\n" << std::flush;
      } else {
        display.Update(response.event(), response.job());
      }
    }
    grpc::Status status = reader->Finish();
    if (status.ok() && last.has_value() && IsFinalState(last->state())) break;
    // A server going away shows as UNAVAILABLE, or CANCELLED when its shutdown cancels the stream (this client
    // never cancels). Before the first event there is nothing to resume: report the error as it is.
    const bool retryable = status.ok() || status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           status.error_code() == grpc::StatusCode::CANCELLED;
    if (!last.has_value() || !retryable) {
      display.Finish();
      if (status.ok()) return absl::InternalError("the server ended the watch before the job reached a final state");
      return context.FromRpc(status);
    }
    if (!lost_since.has_value()) {
      lost_since = absl::Now();
      display.Note(absl::StrCat("connection to ", context.global.server, " lost (",
                                status.ok() ? "stream ended" : status.error_message(),
                                "); reconnecting, resuming after event ", after_sequence));
    } else if (absl::Now() - *lost_since > reconnect_for) {
      display.Finish();
      return absl::UnavailableError(absl::StrCat("gave up watching job ", job, ": ", context.global.server,
                                                 " was not reachable for ", absl::FormatDuration(reconnect_for),
                                                 "; the job keeps running on the server: run 'tuneforge jobs watch ",
                                                 job, "' again later"));
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
  display.Finish();
  if (!json) *context.out << FormatJobSummary(*last) << std::flush;
  context.exit_code = last->state() == v1::JOB_STATE_SUCCEEDED ? 0 : 1;
  if (final_job != nullptr) *final_job = *last;
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> ReconnectFor(const ParsedArgs& args) {
  return ParseDurationFlag("--reconnect-for",
                           args.Has("reconnect-for") ? args.Get("reconnect-for") : kDefaultReconnectFor);
}

namespace {

absl::Status RunStart(CommandContext& context, const Command& command, const ParsedArgs& args) {
  v1::StartFineTuningJobRequest request;
  RETURN_IF_ERROR(BindRequest(command, args, &request));
  ASSIGN_OR_RETURN(absl::Duration reconnect_for, ReconnectFor(args));
  v1::StartFineTuningJobResponse response;
  RETURN_IF_ERROR(CallUnary(context, &FineTuningJobs::Stub::StartFineTuningJob, request, &response));
  if (!args.Has("watch")) {
    PrintResponse(context, response, View{"job", {}, {}, "started job {job.name} ({job.id}): {job.state}"}, "");
    return absl::OkStatus();
  }
  if (context.global.json) {
    *context.out << ToJson(response, /*pretty=*/false) << "\n";
  } else {
    *context.out << "started job " << response.job().name() << " (" << response.job().id() << ")\n";
  }
  return WatchJob(context, response.job().id(), reconnect_for);
}

absl::Status RunWatch(CommandContext& context, const Command&, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(absl::Duration reconnect_for, ReconnectFor(args));
  return WatchJob(context, args.Get("JOB"), reconnect_for);
}

Command Row(std::string verb, std::string summary, std::vector<Option> args, std::vector<Option> flags, RunFn run,
            std::string example, std::string details = "") {
  return Command{"jobs",
                 std::move(verb),
                 std::move(summary),
                 std::move(details),
                 std::move(example),
                 std::move(args),
                 std::move(flags),
                 {},
                 std::move(run)};
}

const char kWatchDetails[] =
    "On a terminal one progress line is redrawn in place:\n"
    "  [######..............] step 12/40  epoch 1/2  loss 1.234  eval 1.1  312 tok/s  ETA 0:42  RUNNING\n"
    "otherwise one such line is printed per progress event; --output json prints each event as one JSON line.\n"
    "At the end a summary names the state, the adapter and any error. Exit code 0 when the job SUCCEEDED, 1 when\n"
    "it FAILED or was CANCELLED. If the server restarts mid-watch, the watch reconnects and resumes after the\n"
    "last event it saw.";

}  // namespace

std::vector<Command> JobCommands() {
  std::vector<Option> list_flags = {
      {"state", "STATE", "only jobs in these states: queued, running, cancelling, succeeded, failed, cancelled",
       "states", Binding::kField, false, true},
      {"model", "MODEL", "only jobs of this base model (name or id)", "model"},
      {"kind", "KIND", "only jobs of these kinds: fine_tune, export, evaluation", "kinds", Binding::kField, false, true},
  };
  for (Option& paging : PagingFlags()) list_flags.push_back(std::move(paging));
  return {
      Row("start", "start fine-tuning a registered model on a registered dataset and prompt", {},
          {{"model", "MODEL", "name or id of the base model", "model", Binding::kField, true},
           {"dataset", "DATASET", "name or id of the dataset", "dataset", Binding::kField, true},
           {"prompt", "PROMPT", "name or id of a prompt of that dataset", "prompt", Binding::kField, true},
           {"config", "CONFIG", "name or id of a lora or training config (default: the family's defaults)", "configs",
            Binding::kField, false, true},
           {"set", "SECTION.KEY=VALUE", "override one setting, e.g. lora.r=8 or training.num_epochs=2", "",
            Binding::kKeyValue, false, true},
           {"name", "NAME", "unique job name (default <model>-<dataset>-<time>)", "name"},
           {"adapter-name", "NAME", "name of the adapter it registers (default the job name)", "adapter_name"},
           {"description", "TEXT", "free text shown with the job", "description"},
           {"model-revision", "ID", "a revision id of the model (default the latest)", "model_revision_id"},
           {"dataset-revision", "ID", "a revision id of the dataset (default the latest)", "dataset_revision_id"},
           {"max-attempts", "N", "tries when a trainer dies, 1-10 (default 3)", "max_attempts"},
           {"watch", "", "then watch it like 'jobs watch' (exit code 0 only if it SUCCEEDED)", "", Binding::kNone},
           ReconnectFlag()},
          RunStart,
          "tuneforge jobs start --model demo-llama --dataset demo-instructions --prompt qa \\\n"
          "    --set lora.r=8 --set training.num_epochs=2 --name demo-sft --watch",
          absl::StrCat("The server checks every reference and setting and stores the fully resolved settings.\n",
                       "With --watch it is then watched as 'jobs watch' does.\n", kWatchDetails)),
      Row("watch", "follow a job's progress until it ends", {JobArg()}, {ReconnectFlag()}, RunWatch,
          "tuneforge jobs watch demo-sft", kWatchDetails),
      Row("get", "show one job: state, progress, metrics, settings, error, adapter", {JobArg()}, {},
          UnaryCommand(&FineTuningJobs::Stub::GetFineTuningJob, View{"job", {}, {}, ""}),
          "tuneforge jobs get demo-sft --output json"),
      Row("list", "list jobs, newest first", {}, list_flags,
          UnaryCommand(&FineTuningJobs::Stub::ListFineTuningJobs, View{"jobs",
                                                                       {{"NAME", "name"},
                                                                        {"KIND", "kind"},
                                                                        {"STATE", "state"},
                                                                        {"STEP", "progress.step"},
                                                                        {"STEPS", "progress.total_steps"},
                                                                        {"LOSS", "metrics.train_loss"},
                                                                        {"ADAPTER", "adapter_name"},
                                                                        {"CREATED", "create_time"},
                                                                        {"ID", "id"}},
                                                                       {},
                                                                       ""}),
          "tuneforge jobs list --state running,queued --model demo-llama"),
      Row("cancel", "cancel a job (QUEUED ends at once; RUNNING goes to CANCELLING until its trainer stops)",
          {JobArg()}, {},
          UnaryCommand(&FineTuningJobs::Stub::CancelFineTuningJob,
                       View{"job", {}, {}, "job {job.name} ({job.id}): {job.state}"}),
          "tuneforge jobs cancel demo-sft"),
      Row("remove", "remove a finished job with its events and checkpoints (its adapter stays)", {JobArg()}, {},
          UnaryCommand(&FineTuningJobs::Stub::RemoveFineTuningJob, View{"", {}, {}, "removed job {}"}),
          "tuneforge jobs remove demo-sft"),
      Row("checkpoints", "list a job's checkpoints", {JobArg()}, {},
          UnaryCommand(&FineTuningJobs::Stub::ListCheckpoints, View{"checkpoints",
                                                                    {{"STEP", "step"},
                                                                     {"EPOCH", "epoch"},
                                                                     {"LOSS", "train_loss"},
                                                                     {"ATTEMPT", "attempt"},
                                                                     {"CREATED", "create_time"},
                                                                     {"PATH", "path"}},
                                                                    {},
                                                                    ""}),
          "tuneforge jobs checkpoints demo-sft"),
  };
}

}  // namespace tuneforge::cli
