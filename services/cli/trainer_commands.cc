// tuneforge trainer status|prefetch: the trainer's own service (tuneforge.internal.v1.Trainer), which takes the
// worker token rather than the metadata service's plain calls.
#include <chrono>
#include <cstdlib>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/cli/commands.h"
#include "tuneforge/internal/v1/worker.grpc.pb.h"

namespace tuneforge::cli {

namespace {

namespace iv1 = ::tuneforge::internal::v1;

constexpr char kDefaultTrainer[] = "localhost:50061";

std::string TrainerAddress(const ParsedArgs& args) {
  if (args.Has("trainer")) return args.Get("trainer");
  const char* env = std::getenv("TUNEFORGE_TRAINER");
  return env != nullptr && *env != '\0' ? env : kDefaultTrainer;
}

// The worker token: --token-file, else <TUNEFORGE_HOME or ~/.tuneforge>/worker-token. Never printed.
absl::StatusOr<std::string> WorkerToken(const ParsedArgs& args) {
  std::string path = args.Get("token-file");
  if (path.empty()) {
    const char* home = std::getenv("TUNEFORGE_HOME");
    const char* user_home = std::getenv("HOME");
    path = home != nullptr && *home != '\0' ? std::string(home) + "/worker-token"
                                            : std::string(user_home != nullptr ? user_home : "") + "/.tuneforge/worker-token";
  }
  std::ifstream in(path);
  std::string token;
  if (!in || !std::getline(in, token) || absl::StripAsciiWhitespace(token).empty()) {
    return UsageError(absl::StrCat("cannot read the worker token from ", path,
                                   "; pass --token-file (tuneforge-metadata creates <home>/worker-token)"));
  }
  return std::string(absl::StripAsciiWhitespace(token));
}

template <typename Request, typename Response>
absl::Status CallTrainer(CommandContext& context, const ParsedArgs& args,
                         grpc::Status (iv1::Trainer::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                         const Request& request, Response* response) {
  ASSIGN_OR_RETURN(std::string token, WorkerToken(args));
  const std::string address = TrainerAddress(args);
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, OpenChannel(address, context.global));
  iv1::Trainer::Stub stub(channel);
  // The trainer takes its own token, not the metadata service's.
  grpc::ClientContext call;
  call.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(context.global.timeout));
  call.AddMetadata("authorization", "Bearer " + token);
  const grpc::Status status = (stub.*method)(&call, request, response);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(absl::StrCat("no tuneforge-trainer answers at ", address, " (",
                                               status.error_message(),
                                               "); start one, or pass --trainer HOST:PORT (its --port)"));
  }
  return context.FromRpc(status);
}

absl::Status RunStatus(CommandContext& context, const Command&, const ParsedArgs& args) {
  iv1::GetTrainerStatusResponse response;
  RETURN_IF_ERROR(CallTrainer(context, args, &iv1::Trainer::Stub::GetTrainerStatus, iv1::GetTrainerStatusRequest(),
                              &response));
  PrintResponse(context, response, View{"", {}, {}, "trainer {worker_id}: {state}"}, "");
  return absl::OkStatus();
}

absl::Status RunPrefetch(CommandContext& context, const Command&, const ParsedArgs& args) {
  iv1::PrefetchRequest request;
  const std::string repo = args.Get("REPO");
  const size_t at = repo.find('@');
  request.set_repo_id(repo.substr(0, at));
  if (at != std::string::npos) request.set_revision(repo.substr(at + 1));
  request.set_repo_type(args.Has("dataset") ? "dataset" : "model");
  iv1::PrefetchResponse response;
  RETURN_IF_ERROR(CallTrainer(context, args, &iv1::Trainer::Stub::Prefetch, request, &response));
  PrintResponse(context, response, View{"", {}, {}, "{files} files of {} at {commit_sha} in the cache"}, repo);
  return absl::OkStatus();
}

std::vector<Option> TrainerFlags() {
  return {{"trainer", "HOST:PORT", "the trainer's own service (default $TUNEFORGE_TRAINER, else localhost:50061)", "",
           Binding::kNone},
          {"token-file", "FILE", "the worker token (default $TUNEFORGE_HOME/worker-token, else ~/.tuneforge/worker-token)",
           "", Binding::kNone}};
}

}  // namespace

std::vector<Command> TrainerCommands() {
  std::vector<Option> prefetch_flags = TrainerFlags();
  prefetch_flags.push_back({"dataset", "", "REPO is a dataset repo, not a model repo", "", Binding::kNone});
  return {
      Command{"trainer",
              "status",
              "show a trainer: its job and progress, device, threads, Hugging Face cache use",
              "Calls the trainer's own gRPC service, which takes the worker token shared with tuneforge-metadata.",
              "tuneforge trainer status --trainer gpu-node-1:50061",
              {},
              TrainerFlags(),
              {},
              RunStatus},
      Command{"trainer",
              "prefetch",
              "download a Hub repo into a trainer's Hugging Face cache ahead of the jobs that need it",
              "Files already in the cache are not downloaded again; the trainer uses its own HF_TOKEN.",
              "tuneforge trainer prefetch Qwen/Qwen2.5-0.5B-Instruct\n"
              "  tuneforge trainer prefetch org/instructions@main --dataset",
              {{"REPO", "", "org/name[@revision] of the repo (default revision main)", "", Binding::kNone, true}},
              prefetch_flags,
              {},
              RunPrefetch},
  };
}

}  // namespace tuneforge::cli
