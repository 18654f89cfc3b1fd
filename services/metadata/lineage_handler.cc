// tuneforge.v1.Lineage over LineageService.
#include "services/metadata/lineage_handler.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "services/metadata/auth.h"

namespace tuneforge {

namespace {

struct KindName {
  v1::LineageKind kind;
  const char* name;
};
constexpr KindName kKinds[] = {
    {v1::LINEAGE_KIND_MODEL_REVISION, "model_revision"}, {v1::LINEAGE_KIND_DATASET_REVISION, "dataset_revision"},
    {v1::LINEAGE_KIND_PROMPT, "prompt"},                 {v1::LINEAGE_KIND_CONFIG, "config"},
    {v1::LINEAGE_KIND_JOB, "job"},                       {v1::LINEAGE_KIND_ADAPTER, "adapter"},
    {v1::LINEAGE_KIND_EXPORT, "export"}};

std::string KindToName(v1::LineageKind kind) {
  for (const KindName& k : kKinds) {
    if (k.kind == kind) return k.name;
  }
  return "";
}

v1::LineageKind NameToKind(const std::string& name) {
  for (const KindName& k : kKinds) {
    if (name == k.name) return k.kind;
  }
  return v1::LINEAGE_KIND_UNSPECIFIED;
}

void ToProto(const LineageNodeAt& n, v1::LineageNode* out) {
  out->set_kind(NameToKind(n.record.kind));
  out->set_id(n.record.id);
  out->set_name(n.record.name);
  out->set_parent_id(n.record.parent_id);
  out->set_revision_number(n.record.revision_number);
  out->set_state(n.record.state);
  out->set_detail(n.record.detail);
  out->set_depth(n.depth);
}

}  // namespace

grpc::Status LineageHandler::GetLineage(grpc::ServerContext* context, const v1::GetLineageRequest* request,
                                        v1::GetLineageResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  LineageInput input;
  input.kind = KindToName(request->kind());
  input.ref = request->ref();
  input.revision_id = request->revision_id();
  input.max_depth = request->max_depth();
  switch (request->direction()) {
    case v1::LINEAGE_DIRECTION_UNSPECIFIED: break;
    case v1::LINEAGE_DIRECTION_UPSTREAM: input.downstream = false; break;
    case v1::LINEAGE_DIRECTION_DOWNSTREAM: input.upstream = false; break;
    default:
      return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
          "direction ", request->direction(), " is not a direction; use LINEAGE_DIRECTION_UPSTREAM or _DOWNSTREAM, "
          "or leave it unset for both")));
  }
  absl::StatusOr<LineageGraph> graph = service_.GetLineage(input);
  if (!graph.ok()) return ToGrpcStatus(graph.status());
  ToProto(graph->root, response->mutable_root());
  for (const LineageNodeAt& n : graph->upstream) ToProto(n, response->add_upstream());
  for (const LineageNodeAt& n : graph->downstream) ToProto(n, response->add_downstream());
  for (const LineageEdgeRecord& e : graph->edges) {
    v1::LineageEdge* edge = response->add_edges();
    edge->set_from_id(e.from_id);
    edge->set_to_id(e.to_id);
    edge->set_relation(e.relation);
  }
  response->set_truncated(graph->truncated);
  return grpc::Status::OK;
}

}  // namespace tuneforge
