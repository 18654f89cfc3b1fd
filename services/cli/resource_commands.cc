// Command rows for the registered resources (models, datasets, prompts, configs, adapters) and the admin
// database export/import. get/list/remove rows come from one template per verb.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/cli/commands.h"
#include "services/cli/progress_bar.h"
#include "tuneforge/v1/adapters.grpc.pb.h"
#include "tuneforge/v1/admin.grpc.pb.h"
#include "tuneforge/v1/configs.grpc.pb.h"
#include "tuneforge/v1/datasets.grpc.pb.h"
#include "tuneforge/v1/models.grpc.pb.h"
#include "tuneforge/v1/prompts.grpc.pb.h"

namespace tuneforge::cli {

namespace {

using v1::Adapters;
using v1::Admin;
using v1::Configs;
using v1::Datasets;
using v1::Models;
using v1::Prompts;

// What the generic rows need to know about a resource.
struct Resource {
  std::string group;    // "models"
  std::string what;     // "model"
  std::string field;    // request field naming it and response field holding it: "model"
  std::string example;  // a name for examples: "demo-llama"
};

const Resource kModel{"models", "model", "model", "demo-llama"};
const Resource kDataset{"datasets", "dataset", "dataset", "demo-instructions"};
const Resource kPrompt{"prompts", "prompt", "prompt", "qa"};
const Resource kConfig{"configs", "config", "config", "small-lora"};
const Resource kAdapter{"adapters", "adapter", "adapter", "demo-adapter"};

Command Row(const Resource& r, std::string verb, std::string summary, std::vector<Option> args,
            std::vector<Option> flags, RunFn run, std::string example, std::string details = "",
            std::vector<std::vector<std::string>> exactly_one = {}) {
  return Command{r.group,         std::move(verb),  std::move(summary),     std::move(details), std::move(example),
                 std::move(args), std::move(flags), std::move(exactly_one), std::move(run)};
}

Option Description(const std::string& what) {
  return {"description", "TEXT", absl::StrCat("free text shown with the ", what), "description"};
}

template <typename Stub, typename Request, typename Response>
Command Get(const Resource& r, UnaryMethod<Stub, Request, Response> method, std::vector<std::string> hidden = {}) {
  return Row(r, "get", absl::StrCat("show one ", r.what, " by name or id"), {RecordArg("NAME", r.what, r.field)}, {},
             UnaryCommand(method, View{r.field, {}, std::move(hidden), ""}),
             absl::StrCat("tuneforge ", r.group, " get ", r.example, "\ntuneforge ", r.group, " get ", r.example,
                          " --output json"));
}

template <typename Stub, typename Request, typename Response>
Command List(const Resource& r, UnaryMethod<Stub, Request, Response> method, std::vector<Column> columns,
             std::vector<Option> filters, std::string example_filter) {
  for (Option& paging : PagingFlags()) filters.push_back(std::move(paging));
  return Row(
      r, "list", absl::StrCat("list ", r.group, ", one page at a time (--page-token for the next)"), {},
      std::move(filters), UnaryCommand(method, View{r.group, std::move(columns), {}, ""}),
      absl::StrCat("tuneforge ", r.group, " list\ntuneforge ", r.group, " list ", example_filter, " --output json"));
}

template <typename Stub, typename Request, typename Response>
Command Remove(const Resource& r, UnaryMethod<Stub, Request, Response> method, const std::string& dependents) {
  std::vector<Option> flags;
  if (!dependents.empty()) flags.push_back({"force", "", absl::StrCat("also remove ", dependents), "force"});
  return Row(r, "remove", absl::StrCat("remove one ", r.what, " by name or id"), {RecordArg("NAME", r.what, r.field)},
             std::move(flags), UnaryCommand(method, View{"", {}, {}, absl::StrCat("removed ", r.what, " {}")}),
             absl::StrCat("tuneforge ", r.group, " remove ", r.example),
             dependents.empty() ? ""
                                : absl::StrCat("Without --force, a ", r.what, " that others depend on is kept ",
                                               "and the error names them."));
}

template <typename Stub, typename Request, typename Response>
Command Revisions(const Resource& r, UnaryMethod<Stub, Request, Response> method, std::vector<Column> columns) {
  return Row(r, "revisions", absl::StrCat("list a ", r.what, "'s revisions, newest first"),
             {RecordArg("NAME", r.what, r.field)}, PagingFlags(),
             UnaryCommand(method, View{"revisions", std::move(columns), {}, ""}),
             absl::StrCat("tuneforge ", r.group, " revisions ", r.example));
}

const char kLocalPathNote[] =
    "Local paths are made absolute here and must lie under one of the server's allowed roots\n"
    "(tuneforge-metadata --allowed-roots, default <home>/data).";
const char kTokenNote[] =
    "A Hub token comes from --token-file FILE or the HF_TOKEN environment variable, never from the command\n"
    "line; it is sent with this call only and the server does not store it.";

// "5GB", "500MB", "1GiB", "1048576": bytes, decimal (KB, MB, GB) or binary (KiB, MiB, GiB) units.
absl::StatusOr<int64_t> ParseByteSize(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
    ++digits;
  }
  const std::string unit = text.substr(digits);
  static const std::vector<std::pair<std::string, double>> kUnits = {
      {"", 1},     {"B", 1},        {"KB", 1e3},     {"MB", 1e6},          {"GB", 1e9},
      {"KIB", 1024}, {"MIB", 1048576}, {"GIB", 1073741824}};
  std::string upper;
  for (char c : unit) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double number = 0;
  const bool parsed = digits > 0 && absl::SimpleAtod(text.substr(0, digits), &number);
  for (const auto& [name, scale] : kUnits) {
    if (parsed && upper == name && number * scale >= 1 && number * scale < 9e18) {
      return static_cast<int64_t>(number * scale);
    }
  }
  return UsageError(absl::StrCat("--max-shard-size '", text,
                                 "' is not a size; write e.g. 2GB, 500MB, 1GiB or a number of bytes"));
}

// models export: queue the export job; with --watch follow it and say where the result is.
absl::Status RunModelExport(CommandContext& context, const Command& command, const ParsedArgs& args) {
  v1::ExportModelRequest request;
  RETURN_IF_ERROR(BindRequest(command, args, &request));
  if (args.Has("max-shard-size")) {
    ASSIGN_OR_RETURN(int64_t size, ParseByteSize(args.Get("max-shard-size")));
    request.set_max_shard_size(size);
  }
  ASSIGN_OR_RETURN(absl::Duration reconnect_for, ReconnectFor(args));
  v1::ExportModelResponse response;
  RETURN_IF_ERROR(CallUnary(context, &Models::Stub::ExportModel, request, &response));
  const v1::ModelExport& e = response.export_();
  if (!args.Has("watch")) {
    PrintResponse(context, response,
                  View{"export", {}, {}, "queued export {export.id} as job {export.job_id}: {export.state}"}, "");
    return absl::OkStatus();
  }
  if (context.global.json) {
    *context.out << ToJson(response, /*pretty=*/false) << "\n";
  } else {
    *context.out << "queued export " << e.id() << " as job " << e.job_id() << "\n";
  }
  RETURN_IF_ERROR(WatchJob(context, e.job_id(), reconnect_for));
  v1::GetModelExportRequest get;
  get.set_id(e.id());
  v1::GetModelExportResponse done;
  RETURN_IF_ERROR(CallUnary(context, &Models::Stub::GetModelExport, get, &done));
  if (context.global.json) {
    *context.out << ToJson(done, /*pretty=*/false) << "\n";
  } else if (done.export_().state() == v1::EXPORT_STATE_SUCCEEDED) {
    *context.out << "exported to " << done.export_().destination_path() << "\n";
    if (!done.export_().exported_model_id().empty()) {
      *context.out << "registered model " << done.export_().exported_model_name() << " ("
                   << done.export_().exported_model_id() << ")\n";
    }
  }
  return absl::OkStatus();
}

std::vector<Command> ModelCommands() {
  const std::vector<std::string> hidden = {"latest_revision.config_json"};
  std::vector<Option> add_flags = HubFlags("model");
  add_flags.push_back(Description("model"));
  return {
      Row(kModel, "add", "register a base model from a local directory or the Hugging Face Hub",
          {{"NAME", "", "name to register it under (letters, digits, . _ - /)", "name", Binding::kField, true},
           {"PATH", "", "a directory with config.json, *.safetensors and tokenizer files", "local.path",
            Binding::kLocalPath}},
          add_flags, UnaryCommand(&Models::Stub::AddModel, View{"model", {}, hidden, "model {model.name}: {outcome}"}),
          "tuneforge models add demo-llama ./data/demo-llama\n"
          "tuneforge models add llama-3.2-1b --hf meta-llama/Llama-3.2-1B@main --token-file ~/.cache/huggingface/token",
          absl::StrCat("Adding what exists returns it (EXISTING), or a new revision when the content changed.\n",
                       kLocalPathNote, "\n", kTokenNote),
          {{"PATH", "hf"}}),
      Get(kModel, &Models::Stub::GetModel, hidden),
      List(kModel, &Models::Stub::ListModels,
           {{"NAME", "name"},
            {"FAMILY", "family"},
            {"SOURCE", "source_type"},
            {"REVISIONS", "revision_count"},
            {"PARAMETERS", "latest_revision.parameter_count"},
            {"LOCATION", "source"},
            {"ID", "id"}},
           {{"name-prefix", "PREFIX", "only names starting with PREFIX", "name_prefix"},
            {"family", "FAMILY", "only this family: llama, mistral, qwen2, phi3, gemma", "family"},
            {"source-type", "TYPE", "only this source: huggingface, local, trained", "source_type"}},
           "--family llama"),
      Revisions(kModel, &Models::Stub::ListModelRevisions,
                {{"REVISION", "revision_number"},
                 {"COMMIT", "commit_sha"},
                 {"FAMILY", "family"},
                 {"PARAMETERS", "parameter_count"},
                 {"CREATED", "create_time"},
                 {"ID", "id"}}),
      Remove(kModel, &Models::Stub::RemoveModel, "the adapters and exports made from it"),
      Row(kModel, "export", "merge an adapter into its base model (or copy the adapter) into a directory",
          {RecordArg("NAME", "base model", "model")},
          {{"adapter", "ADAPTER", "name or id of an adapter of that model", "adapter", Binding::kField, true},
           {"type", "merged|adapter", "merged: a Hugging Face model directory; adapter: the PEFT directory", "type",
            Binding::kField, true},
           {"destination", "DIR", "a directory that does not exist yet (see --overwrite)", "destination_path",
            Binding::kLocalPath, true},
           {"exported-name", "NAME", "model name to register a merged export under (required for merged)",
            "exported_model_name"},
           {"dtype", "bf16|fp16|fp32", "merged: dtype of the written weights (default the base model's)", "dtype"},
           {"max-shard-size", "SIZE", "merged: largest safetensors shard, e.g. 2GB, 500MB, 1GiB (default 5GB)", "",
            Binding::kNone},
           {"overwrite", "", "replace an existing destination once the new directory is complete", "overwrite"},
           {"job-name", "NAME", "name of the export job (default export-<adapter>-<time>)", "job_name"},
           {"revision", "ID", "a revision id of the base model (default the latest)", "revision_id"},
           {"watch", "", "then follow the job like 'jobs watch' (exit code 0 only if it SUCCEEDED)", "",
            Binding::kNone},
           ReconnectFlag()},
          RunModelExport,
          "tuneforge models export demo-llama --adapter demo-adapter --type merged --destination ./data/merged \\\n"
          "    --exported-name demo-llama-merged --dtype bf16 --watch",
          absl::StrCat("A trainer runs the export as a job (see 'jobs watch', 'jobs cancel'): for merged, it loads "
                       "the base\nrevision, adds the LoRA update to each targeted weight, and writes config.json, "
                       "generation_config.json,\nthe tokenizer files and safetensors shards; the directory is then "
                       "registered as model --exported-name.\n",
                       kLocalPathNote)),
      Row(kModel, "exports", "list exports, newest first, with their state and the model they registered", {},
          [] {
            std::vector<Option> flags = {{"model", "MODEL", "only exports of this base model", "model"},
                                         {"adapter", "ADAPTER", "only exports of this adapter", "adapter"}};
            for (Option& paging : PagingFlags()) flags.push_back(std::move(paging));
            return flags;
          }(),
          UnaryCommand(&Models::Stub::ListModelExports, View{"exports",
                                                             {{"TYPE", "type"},
                                                              {"STATE", "state"},
                                                              {"EXPORTED MODEL", "exported_model_name"},
                                                              {"DESTINATION", "destination_path"},
                                                              {"JOB", "job_id"},
                                                              {"ID", "id"}},
                                                             {},
                                                             ""}),
          "tuneforge models exports --model demo-llama"),
  };
}

std::vector<Command> DatasetCommands() {
  std::vector<Option> add_flags = {
      {"test-file", "FILE", "the test split, same format as TRAIN_FILE", "local.test_path", Binding::kLocalPath},
      {"test-size", "FRACTION", "without --test-file: fraction of rows cut for the test split, (0, 0.5], default 0.1",
       "local.test_size"},
      {"seed", "N", "seed of that cut (default 42)", "local.seed"},
  };
  for (Option& hub : HubFlags("dataset")) add_flags.push_back(std::move(hub));
  add_flags.push_back({"config", "NAME",
                       "with --hf: the config (subset), as load_dataset(repo, NAME) takes it (default: the repo's "
                       "default config)",
                       "huggingface.config"});
  add_flags.push_back({"train-split", "SPLIT", "with --hf: the split to train on (default train, or the only split)",
                       "huggingface.train_split"});
  add_flags.push_back({"test-split", "SPLIT",
                       "with --hf: the split to evaluate on (default test, else validation); none for no test split",
                       "huggingface.test_split"});
  add_flags.push_back({"data-files", "FROM",
                       "with --hf: repo (the repo's own files only) or parquet_conversion (the Hub's Parquet "
                       "conversion, refs/convert/parquet); default: the repo's files when tuneforge reads them, else "
                       "the conversion",
                       "huggingface.data_files"});
  add_flags.push_back(Description("dataset"));
  return {
      Row(kDataset, "add", "register a dataset from a local .jsonl/.json/.csv file or the Hugging Face Hub",
          {{"NAME", "", "name to register it under", "name", Binding::kField, true},
           {"TRAIN_FILE", "", "the train split: .jsonl, .json (array of objects) or .csv", "local.train_path",
            Binding::kLocalPath}},
          add_flags,
          UnaryCommand(&Datasets::Stub::AddDataset, View{"dataset", {}, {}, "dataset {dataset.name}: {outcome}"}),
          "tuneforge datasets add demo-instructions ./data/train.jsonl --test-file ./data/test.jsonl\n"
          "tuneforge datasets add alpaca --hf tatsu-lab/alpaca\n"
          "tuneforge datasets add gsm8k-socratic --hf openai/gsm8k --config socratic --test-split none",
          absl::StrCat("Adding what exists returns it (EXISTING), or a new revision when the content changed.\n",
                       kLocalPathNote, "\n", kTokenNote),
          {{"TRAIN_FILE", "hf"}}),
      Get(kDataset, &Datasets::Stub::GetDataset),
      List(kDataset, &Datasets::Stub::ListDatasets,
           {{"NAME", "name"},
            {"FORMAT", "latest_revision.format"},
            {"SOURCE", "source_type"},
            {"REVISIONS", "revision_count"},
            {"LOCATION", "source"},
            {"CONFIG", "config"},
            {"ID", "id"}},
           {{"name-prefix", "PREFIX", "only names starting with PREFIX", "name_prefix"},
            {"source-type", "TYPE", "only this source: huggingface, local", "source_type"}},
           "--name-prefix demo"),
      Revisions(kDataset, &Datasets::Stub::ListDatasetRevisions,
                {{"REVISION", "revision_number"},
                 {"FORMAT", "format"},
                 {"COMMIT", "commit_sha"},
                 {"CREATED", "create_time"},
                 {"ID", "id"}}),
      Row(kDataset, "preview", "show the first rows of each split", {RecordArg("NAME", "dataset", "dataset")},
          {{"split", "train|test", "only this split", "split"},
           {"revision", "ID", "a revision id (default the latest)", "revision_id"}},
          UnaryCommand(&Datasets::Stub::GetDatasetPreview, View{}),
          "tuneforge datasets preview demo-instructions --split train"),
      Remove(kDataset, &Datasets::Stub::RemoveDataset, "the prompts made over it"),
  };
}

std::vector<Command> PromptCommands() {
  return {
      Row(kPrompt, "add", "register how a dataset's rows become training text",
          {{"NAME", "", "name to register it under", "name", Binding::kField, true}},
          {{"dataset", "DATASET", "name or id of the dataset whose columns the prompt uses", "dataset", Binding::kField,
            true},
           {"dataset-revision", "ID", "a revision id of that dataset (default the latest)", "dataset_revision_id"},
           {"template-input", "TEMPLATE", "what the model reads, with {column} slots ({{ and }} for braces)",
            "template.input_template"},
           {"template-completion", "TEMPLATE", "what the model learns to write, e.g. {answer}",
            "template.completion_template"},
           {"chat-column", "COLUMN", "a column of {role, content} messages, rendered with the model's chat template",
            "chat.messages_column"},
           {"chat-format", "FORMAT",
            "how --chat-column writes a message: openai ({role, content}, the default) or sharegpt ({from, value}, "
            "from human, gpt or system)",
            "chat.message_format"},
           {"alpaca", "", "Alpaca instruction/input/output columns, read as Stanford Alpaca's prompt text", "",
            Binding::kNone},
           {"alpaca-instruction", "COLUMN", "with --alpaca: the instruction column (default instruction)",
            "alpaca.instruction_column"},
           {"alpaca-input", "COLUMN", "with --alpaca: the input column, may be empty per row (default input)",
            "alpaca.input_column"},
           {"alpaca-output", "COLUMN", "with --alpaca: the column the model learns to write (default output)",
            "alpaca.output_column"},
           {"alpaca-chat", "",
            "with --alpaca: render user = instruction (+ input), assistant = output with the model's chat template",
            "alpaca.use_chat_template"},
           Description("prompt")},
          UnaryCommand(&Prompts::Stub::AddPrompt,
                       View{"prompt", {}, {}, "prompt {prompt.name} revision {prompt.revision_number}: {outcome}"},
                       PrepareFn<v1::AddPromptRequest>([](const ParsedArgs& args, v1::AddPromptRequest* request) {
                         if (args.Has("alpaca")) request->mutable_alpaca();
                         return absl::OkStatus();
                       })),
          "tuneforge prompts add qa --dataset demo-instructions \\\n"
          "    --template-input $'### Question:\\n{question}\\n### Answer:\\n' --template-completion '{answer}'\n"
          "tuneforge prompts add chat --dataset support-chats --chat-column messages\n"
          "tuneforge prompts add sharegpt --dataset slimorca --chat-column conversations --chat-format sharegpt\n"
          "tuneforge prompts add alpaca --dataset alpaca-cleaned --alpaca",
          "Slots are checked against the dataset's columns. The shell's $'...' quoting writes line breaks.",
          {{"template-input", "chat-column", "alpaca"}}),
      Get(kPrompt, &Prompts::Stub::GetPrompt),
      List(kPrompt, &Prompts::Stub::ListPrompts,
           {{"NAME", "name"},
            {"REVISION", "revision_number"},
            {"MODE", "mode"},
            {"SLOTS", "slots"},
            {"DATASET", "dataset_id"},
            {"ID", "id"}},
           {{"name-prefix", "PREFIX", "only names starting with PREFIX", "name_prefix"},
            {"dataset", "DATASET", "only prompts over this dataset (name or id)", "dataset"}},
           "--dataset demo-instructions"),
      Remove(kPrompt, &Prompts::Stub::RemovePrompt, "the jobs that use it"),
  };
}

// configs add: the config, then a note when the NAME given was not used because the content was stored already.
RunFn AddConfigCommand() {
  return [](CommandContext& context, const Command& command, const ParsedArgs& args) -> absl::Status {
    v1::AddConfigRequest request;
    RETURN_IF_ERROR(BindRequest(command, args, &request));
    v1::AddConfigResponse response;
    RETURN_IF_ERROR(CallUnary(context, &Configs::Stub::AddConfig, request, &response));
    PrintResponse(context, response, View{"config", {}, {}, "config {config.id}: {outcome}"}, "");
    if (!context.global.json && !response.ignored_name().empty()) {
      *context.out << "note: the name '" << response.ignored_name() << "' was not used: this content is already stored as "
                   << "config " << response.config().id() << ", which keeps its name '" << response.config().name()
                   << "'\n";
    }
    return absl::OkStatus();
  };
}

std::vector<Command> ConfigCommands() {
  return {
      Row(kConfig, "add", "store a lora, training, generation or quantization config (validated, deduplicated)",
          {{"NAME", "", "optional unique name", "name"}},
          {{"type", "TYPE", "lora, training, generation or quantization", "type", Binding::kField, true},
           {"file", "FILE", "a JSON object with the settings", "content", Binding::kJsonFile},
           {"set", "KEY=VALUE", "one setting; VALUE is JSON (8, 1e-4, true, [\"q_proj\"]) or else a string", "content",
            Binding::kKeyValue, false, true},
           Description("config")},
          AddConfigCommand(),
          "tuneforge configs add small-lora --type lora --set r=8 --set lora_alpha=16 "
          "--set 'target_modules=[\"q_proj\",\"v_proj\"]'\n"
          "tuneforge configs add --type training --file training.json --set num_epochs=2",
          "--set values apply on top of --file. Identical content of the same type returns the existing config\n"
          "(a note says so when the NAME given was not used)."),
      Get(kConfig, &Configs::Stub::GetConfig),
      List(kConfig, &Configs::Stub::ListConfigs,
           {{"NAME", "name"},
            {"TYPE", "type"},
            {"FAMILY", "family"},
            {"DEFAULT", "is_default"},
            {"ID", "id"},
            {"CONTENT", "content"}},
           {{"type", "TYPE", "only this type: lora, training, generation, quantization", "type"},
            {"model", "MODEL", "only the defaults for this model's family (name or id)", "model"},
            {"family", "FAMILY", "only the defaults of this family", "family"}},
           "--model demo-llama"),
      Remove(kConfig, &Configs::Stub::RemoveConfig, "the ended jobs that were started with it"),
  };
}

std::vector<Command> AdapterCommands() {
  std::vector<Option> add_flags = {
      {"model", "MODEL", "name or id of the base model", "model", Binding::kField, true},
      {"model-revision", "ID", "a revision id of that model (default the latest)", "model_revision_id"},
  };
  for (Option& hub : HubFlags("adapter")) add_flags.push_back(std::move(hub));
  add_flags.push_back(Description("adapter"));
  return {
      Row(kAdapter, "add", "import a PEFT LoRA adapter from a local directory or the Hugging Face Hub",
          {{"NAME", "", "name to register it under", "name", Binding::kField, true},
           {"PATH", "", "a directory with adapter_config.json and adapter_model.safetensors", "local.path",
            Binding::kLocalPath}},
          add_flags,
          UnaryCommand(&Adapters::Stub::AddAdapter, View{"adapter", {}, {}, "adapter {adapter.name}: {outcome}"}),
          "tuneforge adapters add demo-adapter ./data/demo-adapter --model demo-llama",
          absl::StrCat("The adapter is checked against the base model's shapes.\n", kLocalPathNote, "\n", kTokenNote),
          {{"PATH", "hf"}}),
      Get(kAdapter, &Adapters::Stub::GetAdapter),
      List(kAdapter, &Adapters::Stub::ListAdapters,
           {{"NAME", "name"},
            {"SOURCE", "source_type"},
            {"RANK", "rank"},
            {"ALPHA", "alpha"},
            {"MODEL", "model_id"},
            {"JOB", "job_id"},
            {"ID", "id"}},
           {{"name-prefix", "PREFIX", "only names starting with PREFIX", "name_prefix"},
            {"model", "MODEL", "only adapters of this model (name or id)", "model"},
            {"source-type", "TYPE", "only this source: huggingface, local, trained", "source_type"}},
           "--model demo-llama"),
      Remove(kAdapter, &Adapters::Stub::RemoveAdapter, "the exports made from it"),
  };
}

// Reads ExportDatabaseStream: into `file` piece by piece (written beside it and renamed at the end, so that a failed
// export never replaces a good file), or whole into response.document for standard output.
absl::Status RunExport(CommandContext& context, const Command&, const ParsedArgs& args) {
  const std::string file = args.Get("file");
  const std::string partial = file.empty() ? "" : absl::StrCat(file, ".partial");
  std::ofstream out;
  if (!file.empty()) {
    out.open(partial, std::ios::binary | std::ios::trunc);
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write --file '", file, "'; check the directory"));
  }
  auto fail = [&](absl::Status status) {
    if (!file.empty()) {
      out.close();
      std::error_code ignored;
      std::filesystem::remove(partial, ignored);
    }
    return status;
  };

  Admin::Stub stub(context.channel);
  std::unique_ptr<grpc::ClientContext> call = context.NewCallContext();
  std::unique_ptr<grpc::ClientReader<v1::ExportDatabaseStreamResponse>> reader =
      stub.ExportDatabaseStream(call.get(), v1::ExportDatabaseStreamRequest());
  v1::ExportDatabaseResponse response;  // as the unary ExportDatabase answers, for printing
  std::optional<TransferProgress> progress;
  int64_t declared = 0, received = 0;
  v1::ExportDatabaseStreamResponse piece;
  while (reader->Read(&piece)) {
    const v1::DatabaseChunk& chunk = piece.chunk();
    if (!progress.has_value()) {
      declared = chunk.document_bytes();
      response.mutable_row_counts()->insert(chunk.row_counts().begin(), chunk.row_counts().end());
      progress.emplace(*context.err, isatty(STDERR_FILENO) == 1, "exported", declared);
    }
    received += static_cast<int64_t>(chunk.data().size());
    if (file.empty()) {
      response.mutable_document()->append(chunk.data());
    } else {
      out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    }
    progress->Update(received);
  }
  if (progress.has_value()) progress->Finish();
  if (absl::Status status = context.FromRpc(reader->Finish()); !status.ok()) return fail(status);
  if (received != declared || received == 0) {
    return fail(absl::DataLossError(absl::StrCat("the export stream ended after ", received, " of the ", declared,
                                                 " bytes the server announced; run the export again")));
  }
  if (file.empty()) {
    // The document is JSON already: print it as it is, or the whole response with --output json.
    if (context.global.json)
      PrintResponse(context, response, View{}, "");
    else
      *context.out << response.document() << "\n";
    return absl::OkStatus();
  }
  out.close();
  if (!out) return fail(absl::UnavailableError(absl::StrCat("cannot write --file '", file, "'; check the directory")));
  std::error_code error;
  std::filesystem::rename(partial, file, error);
  if (error) {
    return fail(absl::UnavailableError(absl::StrCat("cannot write --file '", file, "': ", error.message())));
  }
  PrintResponse(context, response, View{"", {}, {}, absl::StrCat("wrote ", file)}, "");
  return absl::OkStatus();
}

// Sends FILE through ImportDatabaseStream in 1 MiB pieces, the first declaring its size.
absl::Status RunImport(CommandContext& context, const Command&, const ParsedArgs& args) {
  constexpr int64_t kPieceBytes = int64_t{1} << 20;
  const std::string file = args.Get("FILE");
  std::ifstream in(file, std::ios::binary);
  std::error_code error;
  const auto size = static_cast<int64_t>(std::filesystem::file_size(file, error));
  if (!in || error) return UsageError(absl::StrCat("cannot read FILE '", file, "'"));
  if (size == 0) return UsageError(absl::StrCat("FILE '", file, "' is empty; pass a document written by 'tuneforge admin export'"));

  Admin::Stub stub(context.channel);
  std::unique_ptr<grpc::ClientContext> call = context.NewCallContext();
  v1::ImportDatabaseStreamResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::ImportDatabaseStreamRequest>> writer =
      stub.ImportDatabaseStream(call.get(), &response);
  TransferProgress progress(*context.err, isatty(STDERR_FILENO) == 1, "sent", size);
  std::string buffer(static_cast<size_t>(std::min(size, kPieceBytes)), '\0');
  for (int64_t sent = 0; sent < size;) {
    in.read(buffer.data(), static_cast<std::streamsize>(std::min(size - sent, kPieceBytes)));
    const std::streamsize n = in.gcount();
    if (n <= 0) break;  // the file shrank: the server says the stream ended short
    v1::ImportDatabaseStreamRequest request;
    if (sent == 0) request.mutable_chunk()->set_document_bytes(size);
    request.mutable_chunk()->set_data(buffer.data(), static_cast<size_t>(n));
    if (!writer->Write(request)) break;  // the server has ended the call; Finish() says why
    sent += n;
    progress.Update(sent);
  }
  writer->WritesDone();
  progress.Finish();
  RETURN_IF_ERROR(context.FromRpc(writer->Finish()));
  PrintResponse(context, response, View{"", {}, {}, "imported {}"}, file);
  return absl::OkStatus();
}

std::vector<Command> AdminCommands() {
  return {
      Command{"admin",
              "export",
              "export every record as one JSON document",
              "Without --file the document goes to standard output. It arrives in 1 MiB pieces (ExportDatabaseStream), "
              "with a progress line on a terminal's stderr for documents of 8 MiB and more.",
              "tuneforge admin export --file backup.json",
              {},
              {{"file", "FILE", "write the document here and print the row counts", "", Binding::kNone}},
              {},
              RunExport},
      Command{"admin",
              "import",
              "import a document written by 'admin export' (all of it, or nothing)",
              "The target database must not hold the same records already. FILE goes in 1 MiB pieces "
              "(ImportDatabaseStream), up to the server's --max-document-bytes.",
              "tuneforge admin import backup.json --server new-host:50051",
              {{"FILE", "", "a document written by 'tuneforge admin export'", "", Binding::kNone, true}},
              {},
              {},
              RunImport},
  };
}

}  // namespace

Option RecordArg(const std::string& name, const std::string& what, const std::string& field) {
  return {name, "", absl::StrCat("name or id of the ", what), field, Binding::kField, true};
}

std::vector<Option> PagingFlags() {
  return {{"page-size", "N", "rows per page, 1-1000 (default 50)", "page_size"},
          {"page-token", "TOKEN", "the token a previous page printed", "page_token"}};
}

std::vector<Option> HubFlags(const std::string& what) {
  return {{"hf", "REPO[@REVISION]",
           absl::StrCat("take the ", what, " from this Hugging Face repo (revision: branch, ",
                        "tag or commit; default main)"),
           "huggingface", Binding::kHubRepo},
          {"token-file", "FILE", "a file holding the Hub token (default: $HF_TOKEN)", "huggingface.token",
           Binding::kSecretFile}};
}

std::vector<Command> ResourceCommands() {
  std::vector<Command> commands;
  for (auto part : {ModelCommands, DatasetCommands, PromptCommands, ConfigCommands, AdapterCommands, AdminCommands}) {
    for (Command& command : part()) commands.push_back(std::move(command));
  }
  return commands;
}

std::vector<Command> AllCommands() {
  std::vector<Command> commands = ResourceCommands();
  for (Command& command : JobCommands()) commands.push_back(std::move(command));
  for (Command& command : EvalCommands()) commands.push_back(std::move(command));
  for (Command& command : TrainerCommands()) commands.push_back(std::move(command));
  for (Command& command : TokenCommands()) commands.push_back(std::move(command));
  for (Command& command : LineageCommands()) commands.push_back(std::move(command));
  return commands;
}

}  // namespace tuneforge::cli
