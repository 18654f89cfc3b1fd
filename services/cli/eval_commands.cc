// Command rows for evaluation jobs: start (optionally watching), watch, get (the candidates side by side, then the
// samples), list, cancel and remove.
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "services/cli/commands.h"
#include "tuneforge/v1/evaluations.grpc.pb.h"

namespace tuneforge::cli {

namespace {

using v1::EvaluationJobs;

Option EvalArg() { return RecordArg("JOB", "evaluation job", "job"); }

std::string Candidate(const v1::CandidateResult& r) {
  if (!r.adapter_name().empty()) return r.adapter_name();
  return r.adapter_id().empty() ? "base" : r.adapter_id();
}

// One line of a sample's text, shortened for the table of outputs.
std::string OneLine(const std::string& text, size_t max_chars) {
  std::string out = absl::StrReplaceAll(text, {{"\r", " "}, {"\n", " \\n "}, {"\t", " "}});
  if (out.size() > max_chars) out = absl::StrCat(out.substr(0, max_chars - 3), "...");
  return out;
}

// The results of an evaluation as a user reads them: one row per candidate with its change against the base, then
// each sample row with what every candidate wrote.
std::string FormatResults(const v1::EvaluationJob& job) {
  if (job.results().empty()) return "";
  const v1::CandidateResult& base = job.results(0);
  std::vector<std::vector<std::string>> rows = {
      {"CANDIDATE", "LOSS", "PERPLEXITY", "VS BASE", "EXAMPLES", "LABEL TOKENS", "GEN TOK/S"}};
  for (const v1::CandidateResult& r : job.results()) {
    const bool is_base = &r == &base;
    rows.push_back({Candidate(r), absl::StrFormat("%.4f", r.loss()), absl::StrFormat("%.3f", r.perplexity()),
                    is_base ? "" : absl::StrFormat("%+.4f", r.loss() - base.loss()), absl::StrCat(r.examples()),
                    absl::StrCat(r.label_tokens()), absl::StrFormat("%.1f", r.generation_tokens_per_second())});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out = absl::StrCat("\nresults on the ", job.split(), " split (loss: the training loss, lower is better):\n");
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i], std::string(width[i] - row[i].size() + (i + 1 < row.size() ? 2 : 0), ' '));
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  for (int k = 0; k < base.samples_size(); ++k) {
    const v1::EvaluationSample& sample = base.samples(k);
    absl::StrAppend(&out, "\nsample ", k + 1, " (row ", sample.row(), ")\n  prompt:    ", OneLine(sample.prompt(), 200),
                    "\n  reference: ", OneLine(sample.reference(), 200), "\n");
    for (const v1::CandidateResult& r : job.results()) {
      if (k >= r.samples_size()) continue;
      const v1::EvaluationSample& s = r.samples(k);
      absl::StrAppend(&out, "  ", Candidate(r), ": ", OneLine(s.output(), 200), "  [", s.stop_reason(), "]\n");
    }
  }
  return out;
}

void PrintJob(CommandContext& context, const google::protobuf::Message& response, const v1::EvaluationJob& job) {
  if (context.global.json) {
    *context.out << ToJson(response, /*pretty=*/true) << "\n";
    return;
  }
  *context.out << RenderRecord(job, {"results", "settings"}) << FormatResults(job) << std::flush;
}

absl::Status GetAndPrint(CommandContext& context, const std::string& job) {
  v1::GetEvaluationJobRequest request;
  request.set_job(job);
  v1::GetEvaluationJobResponse response;
  RETURN_IF_ERROR(CallUnary(context, &EvaluationJobs::Stub::GetEvaluationJob, request, &response));
  PrintJob(context, response, response.job());
  context.exit_code = response.job().state() == v1::JOB_STATE_SUCCEEDED ? 0 : context.exit_code;
  return absl::OkStatus();
}

// Watches as 'jobs watch' does (the job's events stream from the same queue), then shows the results.
absl::Status WatchThenShow(CommandContext& context, const std::string& job, absl::Duration reconnect_for) {
  v1::FineTuningJob ended;
  RETURN_IF_ERROR(WatchJob(context, job, reconnect_for, &ended));
  if (ended.state() != v1::JOB_STATE_SUCCEEDED || context.global.json) return absl::OkStatus();
  v1::GetEvaluationJobRequest request;
  request.set_job(ended.id());
  v1::GetEvaluationJobResponse response;
  RETURN_IF_ERROR(CallUnary(context, &EvaluationJobs::Stub::GetEvaluationJob, request, &response));
  *context.out << FormatResults(response.job()) << std::flush;
  return absl::OkStatus();
}

absl::Status RunStart(CommandContext& context, const Command& command, const ParsedArgs& args) {
  v1::StartEvaluationJobRequest request;
  RETURN_IF_ERROR(BindRequest(command, args, &request));
  ASSIGN_OR_RETURN(absl::Duration reconnect_for, ReconnectFor(args));
  v1::StartEvaluationJobResponse response;
  RETURN_IF_ERROR(CallUnary(context, &EvaluationJobs::Stub::StartEvaluationJob, request, &response));
  if (!args.Has("watch")) {
    PrintResponse(context, response,
                  View{"job", {}, {}, "started evaluation job {job.name} ({job.id}): {job.state}"}, "");
    return absl::OkStatus();
  }
  if (context.global.json) {
    *context.out << ToJson(response, /*pretty=*/false) << "\n";
  } else {
    *context.out << "started evaluation job " << response.job().name() << " (" << response.job().id() << ")\n";
  }
  return WatchThenShow(context, response.job().id(), reconnect_for);
}

absl::Status RunWatch(CommandContext& context, const Command&, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(absl::Duration reconnect_for, ReconnectFor(args));
  return WatchThenShow(context, args.Get("JOB"), reconnect_for);
}

absl::Status RunGet(CommandContext& context, const Command&, const ParsedArgs& args) {
  return GetAndPrint(context, args.Get("JOB"));
}

Command Row(std::string verb, std::string summary, std::vector<Option> args, std::vector<Option> flags, RunFn run,
            std::string example, std::string details = "") {
  return Command{"eval", std::move(verb), std::move(summary), std::move(details), std::move(example),
                 std::move(args), std::move(flags), {}, std::move(run)};
}

}  // namespace

std::vector<Command> EvalCommands() {
  std::vector<Option> list_flags = {
      {"state", "STATE", "only jobs in these states: queued, running, cancelling, succeeded, failed, cancelled",
       "states", Binding::kField, false, true},
      {"model", "MODEL", "only evaluations of this base model (name or id)", "model"},
  };
  for (Option& paging : PagingFlags()) list_flags.push_back(std::move(paging));
  return {
      Row("start", "score a base model and adapters of it on a dataset split: loss, perplexity, samples", {},
          {{"model", "MODEL", "name or id of the base model", "model", Binding::kField, true},
           {"adapter", "ADAPTER", "name or id of an adapter of that model revision (repeat or comma-list; none: the "
                                  "base alone)",
            "adapters", Binding::kField, false, true},
           {"dataset", "DATASET", "name or id of the dataset", "dataset", Binding::kField, true},
           {"prompt", "PROMPT", "name or id of a prompt of that dataset", "prompt", Binding::kField, true},
           {"split", "SPLIT", "test (default) or train", "split"},
           {"max-examples", "N", "score the first N rows of the split (default all)", "max_examples"},
           {"samples", "N", "sample generations per candidate, 0-100 (default 3)", "num_samples"},
           {"set", "generation.KEY=VALUE",
            "a generation setting for the samples, e.g. generation.max_new_tokens=32 or generation.temperature=0.7",
            "", Binding::kKeyValue, false, true},
           {"max-seq-len", "N", "tokens per example (default 2048)", "max_seq_len"},
           {"batch-size", "N", "examples per forward pass (default 8)", "batch_size"},
           {"device", "DEVICE", "auto (default), cpu, cuda or cuda:N", "device"},
           {"dtype", "DTYPE", "fp32 (default), bf16 or fp16", "dtype"},
           {"name", "NAME", "unique job name (default eval-<model>-<dataset>-<time>)", "name"},
           {"description", "TEXT", "free text shown with the job", "description"},
           {"model-revision", "ID", "a revision id of the model (default the latest)", "model_revision_id"},
           {"dataset-revision", "ID", "a revision id of the dataset (default the latest)", "dataset_revision_id"},
           {"max-attempts", "N", "tries when a trainer dies, 1-10 (default 3)", "max_attempts"},
           {"watch", "", "then watch it and print the results (exit code 0 only if it SUCCEEDED)", "",
            Binding::kNone},
           ReconnectFlag()},
          RunStart,
          "tuneforge eval start --model demo-llama --adapter demo-sft --dataset demo-instructions --prompt qa \\\n"
          "    --samples 2 --set generation.max_new_tokens=32 --watch",
          "Each candidate (the base model, then each adapter in the order given) is scored with the training loss\n"
          "(the same prompt masking) over the split, and writes sample completions for the first rows with the\n"
          "generation settings given (greedy unless generation.do_sample=true). 'eval get' shows them side by side.")
      ,
      Row("watch", "follow an evaluation until it ends, then print its results", {EvalArg()}, {ReconnectFlag()},
          RunWatch, "tuneforge eval watch eval-demo"),
      Row("get", "show an evaluation: settings, state, and the candidates' results side by side with samples",
          {EvalArg()}, {}, RunGet, "tuneforge eval get eval-demo --output json"),
      Row("list", "list evaluation jobs, newest first, with each candidate's loss", {}, list_flags,
          UnaryCommand(&EvaluationJobs::Stub::ListEvaluationJobs, View{"jobs",
                                                                       {{"NAME", "name"},
                                                                        {"STATE", "state"},
                                                                        {"SPLIT", "split"},
                                                                        {"CANDIDATES", "progress.total_steps"},
                                                                        {"BASE LOSS", "results.0.loss"},
                                                                        {"CREATED", "create_time"},
                                                                        {"ID", "id"}},
                                                                       {},
                                                                       ""}),
          "tuneforge eval list --model demo-llama"),
      Row("cancel", "cancel an evaluation (QUEUED ends at once; RUNNING stops after the current batch)", {EvalArg()},
          {},
          UnaryCommand(&EvaluationJobs::Stub::CancelEvaluationJob,
                       View{"job", {}, {}, "evaluation job {job.name} ({job.id}): {job.state}"}),
          "tuneforge eval cancel eval-demo"),
      Row("remove", "remove a finished evaluation with its events and results", {EvalArg()}, {},
          UnaryCommand(&EvaluationJobs::Stub::RemoveEvaluationJob, View{"", {}, {}, "removed evaluation job {}"}),
          "tuneforge eval remove eval-demo"),
  };
}

}  // namespace tuneforge::cli
