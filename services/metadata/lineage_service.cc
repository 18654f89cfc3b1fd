// Lineage: the record asked about, then a breadth-first walk upstream and downstream.
#include "services/metadata/lineage_service.h"

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/metadata/adapter_repository.h"
#include "services/metadata/config_repository.h"
#include "services/metadata/dataset_repository.h"
#include "services/metadata/job_repository.h"
#include "services/metadata/model_repository.h"
#include "services/metadata/prompt_repository.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace {

constexpr int kDefaultDepth = 10;
constexpr int kMaxDepth = 20;
constexpr size_t kMaxNodes = 1000;

const char* const kKinds[] = {"model_revision", "dataset_revision", "prompt", "config", "job", "adapter", "export"};

absl::Status NotFound(const std::string& what, const std::string& ref, const std::string& list) {
  return absl::NotFoundError(absl::StrCat(what, " '", ref, "' not found; ", list, " shows them"));
}

}  // namespace

absl::StatusOr<std::string> LineageService::Resolve(Tx& tx, const LineageInput& in) {
  const std::string& kind = in.kind;
  if (kind == "model_revision" || kind == "dataset_revision") {
    const bool model = kind == "model_revision";
    std::optional<std::string> latest;
    std::string owner_id, owner_name;
    if (model) {
      ASSIGN_OR_RETURN(ModelRecord m, FindModelByRef(tx, in.ref));
      owner_id = m.id;
      owner_name = m.name;
      if (m.latest_revision) latest = m.latest_revision->id;
    } else {
      ASSIGN_OR_RETURN(DatasetRecord d, FindDatasetByRef(tx, in.ref));
      owner_id = d.id;
      owner_name = d.name;
      if (d.latest_revision) latest = d.latest_revision->id;
    }
    if (in.revision_id.empty()) {
      if (!latest) {
        return absl::FailedPreconditionError(
            absl::StrCat(model ? "model '" : "dataset '", owner_name, "' has no revision"));
      }
      return *latest;
    }
    RETURN_IF_ERROR(CheckUuid(in.revision_id, "revision_id"));
    const std::string revision_owner =
        model ? [&] {
          std::optional<ModelRevisionRecord> r = ModelRepository().GetRevision(tx, in.revision_id);
          return r ? r->model_id : std::string();
        }()
              : [&] {
                  std::optional<DatasetRevisionRecord> r = DatasetRepository().GetRevision(tx, in.revision_id);
                  return r ? r->dataset_id : std::string();
                }();
    if (revision_owner != owner_id) {
      return absl::NotFoundError(absl::StrCat("revision_id ", in.revision_id, " is not a revision of ",
                                              model ? "model '" : "dataset '", owner_name, "'; ",
                                              model ? "ListModelRevisions" : "ListDatasetRevisions", " shows them"));
    }
    return in.revision_id;
  }
  if (!in.revision_id.empty()) {
    return absl::InvalidArgumentError(
        "revision_id applies to model and dataset revisions only; leave it empty for this kind");
  }
  if (kind == "prompt") {
    ASSIGN_OR_RETURN(PromptRecord p, FindPromptByRef(tx, in.ref));
    return p.id;
  }
  if (kind == "config") {
    ConfigRepository configs;
    std::optional<ConfigRecord> c = IsUuid(in.ref) ? configs.GetById(tx, in.ref) : configs.GetByName(tx, in.ref);
    if (!c) return NotFound("config", in.ref, "ListConfigs");
    return c->id;
  }
  if (kind == "job") {
    JobRepository jobs;
    std::optional<JobRecord> j = IsUuid(in.ref) ? jobs.GetById(tx, in.ref) : jobs.GetByName(tx, in.ref);
    if (!j) return NotFound("job", in.ref, "ListFineTuningJobs");
    return j->id;
  }
  if (kind == "adapter") {
    AdapterRepository adapters;
    std::optional<AdapterRecord> a = IsUuid(in.ref) ? adapters.GetById(tx, in.ref) : adapters.GetByName(tx, in.ref);
    if (!a) return NotFound("adapter", in.ref, "ListAdapters");
    return a->id;
  }
  // export: by id only (exports have no name of their own)
  RETURN_IF_ERROR(CheckUuid(in.ref, "ref"));
  if (!ModelRepository().GetExport(tx, in.ref)) return NotFound("export", in.ref, "ListModelExports");
  return in.ref;
}

absl::StatusOr<LineageGraph> LineageService::GetLineage(const LineageInput& in) {
  if (std::find(std::begin(kKinds), std::end(kKinds), in.kind) == std::end(kKinds)) {
    return absl::InvalidArgumentError(
        "kind is required: LINEAGE_KIND_MODEL_REVISION, _DATASET_REVISION, _PROMPT, _CONFIG, _JOB, _ADAPTER or "
        "_EXPORT");
  }
  RETURN_IF_ERROR(CheckReference(in.ref, "ref"));
  if (in.max_depth < 0 || in.max_depth > kMaxDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_depth is ", in.max_depth, "; give 1 to ", kMaxDepth, " hops, or 0 for ", kDefaultDepth));
  }
  const int max_depth = in.max_depth == 0 ? kDefaultDepth : in.max_depth;
  LineageGraph graph;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    graph = LineageGraph{};
    ASSIGN_OR_RETURN(const std::string root_id, Resolve(tx, in));
    std::optional<LineageRecord> root = lineage_.Node(tx, in.kind, root_id);
    if (!root) return absl::NotFoundError(absl::StrCat(in.kind, " ", root_id, " not found"));
    graph.root = {*root, 0};
    std::set<std::pair<std::string, std::string>> edges_seen;
    // One direction: `upstream` walks from products to inputs. Records reached both ways are listed in each.
    auto walk = [&](bool upstream, std::vector<LineageNodeAt>* out) {
      std::set<std::string> seen = {root_id};
      std::deque<LineageNodeAt> queue = {graph.root};
      while (!queue.empty()) {
        const LineageNodeAt at = queue.front();
        queue.pop_front();
        const std::vector<LineageLink> links = upstream ? lineage_.Upstream(tx, at.record.kind, at.record.id)
                                                        : lineage_.Downstream(tx, at.record.kind, at.record.id);
        for (const LineageLink& link : links) {
          const std::string from = upstream ? link.id : at.record.id;
          const std::string to = upstream ? at.record.id : link.id;
          if (edges_seen.insert({from, to}).second) graph.edges.push_back({from, to, link.relation});
          if (!seen.insert(link.id).second) continue;
          if (at.depth + 1 > max_depth || seen.size() > kMaxNodes) {
            graph.truncated = true;
            continue;
          }
          std::optional<LineageRecord> node = lineage_.Node(tx, link.kind, link.id);
          if (!node) continue;  // a dangling reference (its record was removed)
          out->push_back({*node, at.depth + 1});
          queue.push_back(out->back());
        }
      }
      std::stable_sort(out->begin(), out->end(), [](const LineageNodeAt& a, const LineageNodeAt& b) {
        return std::tie(a.depth, a.record.kind, a.record.name) < std::tie(b.depth, b.record.kind, b.record.name);
      });
    };
    if (in.upstream) walk(true, &graph.upstream);
    if (in.downstream) walk(false, &graph.downstream);
    return absl::OkStatus();
  }));
  return graph;
}

}  // namespace tuneforge
