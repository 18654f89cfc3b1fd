// Command rows for lineage: `tuneforge lineage KIND NAME` prints what a record was made from and what was made
// from it, as two trees.
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "services/cli/commands.h"
#include "tuneforge/v1/lineage.grpc.pb.h"

namespace tuneforge::cli {

namespace {

using v1::Lineage;

struct KindRow {
  const char* verb;
  v1::LineageKind kind;
  const char* what;
  const char* example;
};
constexpr KindRow kKinds[] = {
    {"model", v1::LINEAGE_KIND_MODEL_REVISION, "a model revision (the latest, or --revision)", "demo-llama"},
    {"dataset", v1::LINEAGE_KIND_DATASET_REVISION, "a dataset revision (the latest, or --revision)",
     "demo-instructions"},
    {"prompt", v1::LINEAGE_KIND_PROMPT, "a prompt", "qa"},
    {"config", v1::LINEAGE_KIND_CONFIG, "a config", "small-lora"},
    {"job", v1::LINEAGE_KIND_JOB, "a job", "demo-sft"},
    {"adapter", v1::LINEAGE_KIND_ADAPTER, "an adapter", "demo-sft"},
    {"export", v1::LINEAGE_KIND_EXPORT, "an export (by id)", "<export id>"},
};

const char* KindLabel(v1::LineageKind kind) {
  switch (kind) {
    case v1::LINEAGE_KIND_MODEL_REVISION: return "model";
    case v1::LINEAGE_KIND_DATASET_REVISION: return "dataset";
    case v1::LINEAGE_KIND_PROMPT: return "prompt";
    case v1::LINEAGE_KIND_CONFIG: return "config";
    case v1::LINEAGE_KIND_JOB: return "job";
    case v1::LINEAGE_KIND_ADAPTER: return "adapter";
    case v1::LINEAGE_KIND_EXPORT: return "export";
    default: return "record";
  }
}

// "model demo-llama r2 [llama] (id)", "job demo-sft SUCCEEDED [fine_tune] (id)".
std::string Describe(const v1::LineageNode& n) {
  std::string out = absl::StrCat(KindLabel(n.kind()), " ", n.name().empty() ? "(unnamed)" : n.name());
  if (n.revision_number() > 0) absl::StrAppend(&out, " r", n.revision_number());
  if (!n.state().empty()) absl::StrAppend(&out, " ", n.state());
  if (!n.detail().empty()) absl::StrAppend(&out, " [", n.detail(), "]");
  absl::StrAppend(&out, " (", n.id(), ")");
  return out;
}

// Prints the tree hanging off `id` in one direction; a record met twice is printed once and then referred to.
void PrintTree(std::ostream& out, const std::string& id, int indent, bool upstream,
               const std::map<std::string, const v1::LineageNode*>& nodes,
               const std::multimap<std::string, const v1::LineageEdge*>& next, std::set<std::string>* printed) {
  auto [begin, end] = next.equal_range(id);
  for (auto it = begin; it != end; ++it) {
    const v1::LineageEdge& e = *it->second;
    const std::string& other = upstream ? e.from_id() : e.to_id();
    auto node = nodes.find(other);
    if (node == nodes.end()) continue;
    out << std::string(indent, ' ') << (upstream ? "<- " : "-> ") << e.relation() << ": " << Describe(*node->second);
    if (!printed->insert(other).second) {
      out << " (see above)\n";
      continue;
    }
    out << "\n";
    PrintTree(out, other, indent + 3, upstream, nodes, next, printed);
  }
}

absl::Status RunLineage(v1::LineageKind kind, CommandContext& context, const Command& command,
                        const ParsedArgs& args) {
  v1::GetLineageRequest request;
  RETURN_IF_ERROR(BindRequest(command, args, &request));
  request.set_kind(kind);
  if (args.Has("up") && args.Has("down")) return UsageError("--up and --down together are the default; give one");
  if (args.Has("up")) request.set_direction(v1::LINEAGE_DIRECTION_UPSTREAM);
  if (args.Has("down")) request.set_direction(v1::LINEAGE_DIRECTION_DOWNSTREAM);
  v1::GetLineageResponse response;
  RETURN_IF_ERROR(CallUnary(context, &Lineage::Stub::GetLineage, request, &response));
  if (context.global.json) {
    *context.out << ToJson(response, /*pretty=*/true) << "\n";
    return absl::OkStatus();
  }
  std::multimap<std::string, const v1::LineageEdge*> inputs, outputs;  // by the record they lead from
  for (const auto& e : response.edges()) {
    inputs.emplace(e.to_id(), &e);
    outputs.emplace(e.from_id(), &e);
  }
  std::ostream& out = *context.out;
  out << Describe(response.root()) << "\n";
  if (request.direction() != v1::LINEAGE_DIRECTION_DOWNSTREAM) {
    out << "made from:" << (response.upstream().empty() ? " nothing registered\n" : "\n");
    std::set<std::string> printed = {response.root().id()};
    std::map<std::string, const v1::LineageNode*> up = {{response.root().id(), &response.root()}};
    for (const auto& n : response.upstream()) up[n.id()] = &n;
    PrintTree(out, response.root().id(), 2, true, up, inputs, &printed);
  }
  if (request.direction() != v1::LINEAGE_DIRECTION_UPSTREAM) {
    out << "used by:" << (response.downstream().empty() ? " nothing yet\n" : "\n");
    std::set<std::string> printed = {response.root().id()};
    std::map<std::string, const v1::LineageNode*> down = {{response.root().id(), &response.root()}};
    for (const auto& n : response.downstream()) down[n.id()] = &n;
    PrintTree(out, response.root().id(), 2, false, down, outputs, &printed);
  }
  if (response.truncated()) out << "(cut at --depth; ask for more hops to see the rest)\n";
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> LineageCommands() {
  std::vector<Command> out;
  for (const KindRow& row : kKinds) {
    const bool revisions = row.kind == v1::LINEAGE_KIND_MODEL_REVISION || row.kind == v1::LINEAGE_KIND_DATASET_REVISION;
    std::vector<Option> flags = {
        {"up", "", "only what it was made from", "", Binding::kNone},
        {"down", "", "only what was made from it", "", Binding::kNone},
        {"depth", "N", "hops to follow each way, 1-20 (default 10)", "max_depth"},
    };
    if (revisions) flags.insert(flags.begin(), {"revision", "ID", "a revision id (default the latest)", "revision_id"});
    const v1::LineageKind kind = row.kind;
    out.push_back(Command{
        "lineage",
        row.verb,
        absl::StrCat("what ", row.what, " was made from, and what was made from it"),
        "Upstream: the records it was made from (base model revision, dataset revision, prompt, configs, the job,\n"
        "the adapter an export merged), and theirs. Downstream: what used it (jobs, adapters, exports, exported\n"
        "models), and what those made. --output json prints the graph (nodes and edges).",
        absl::StrCat("tuneforge lineage ", row.verb, " ", row.example),
        {RecordArg("NAME", row.what, "ref")},
        std::move(flags),
        {},
        [kind](CommandContext& context, const Command& command, const ParsedArgs& args) {
          return RunLineage(kind, context, command, args);
        }});
  }
  return out;
}

}  // namespace tuneforge::cli
