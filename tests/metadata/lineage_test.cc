// End-to-end tests of tuneforge.v1.Lineage on a real server and PostgreSQL: a model and a dataset go through a
// fine-tuning job (a fake trainer writes the reference adapter) to an adapter, which an export merges into a new
// model; the lineage of each record must name exactly what it came from and what came from it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <tuple>

#include "common/grpc_status.h"
#include "tests/metadata/support/job_fixtures.h"
#include "tests/metadata/support/metadata_test_env.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"
#include "tuneforge/v1/lineage.grpc.pb.h"

namespace tuneforge::testing {
namespace {

namespace fs = std::filesystem;
namespace iv1 = internal::v1;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

void CopyInto(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    fs::copy(entry.path(), fs::path(to) / entry.path().filename(), fs::copy_options::recursive);
  }
}

// (kind, name, depth) of each node, for readable expectations.
using Seen = std::tuple<v1::LineageKind, std::string, int>;
std::set<Seen> Nodes(const google::protobuf::RepeatedPtrField<v1::LineageNode>& nodes) {
  std::set<Seen> out;
  for (const v1::LineageNode& n : nodes) out.insert({n.kind(), n.name(), n.depth()});
  return out;
}

class LineageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
    base_ = env_.AddReferenceModel("llama", "ref-llama");
    ASSERT_TRUE(WriteDemoData(env_.root() + "/demo"));
    ASSERT_TRUE(AddLocalDataset(env_, "qa-data", env_.root() + "/demo/demo-instructions/train.jsonl"));
    ASSERT_TRUE(AddQaPrompt(env_, "qa", "qa-data"));
    ASSERT_TRUE(StartJob(env_, ShortQaJob("sft", "ref-llama", "qa-data", 2)));
    // The fake trainer: the reference adapter is what the job "trained".
    iv1::JobLease lease = LeaseJob(env_, "w1", 0).lease();
    CopyInto(GeneratedReference() + "/llama/lora", lease.output_dir());
    iv1::CompleteJobResponse done;
    ASSERT_THAT(Complete(lease, &done), IsOk());
    adapter_id_ = done.adapter_id();

    fs::create_directories(env_.root() + "/exports");
    v1::ExportModelRequest request;
    request.set_model("ref-llama");
    request.set_adapter(adapter_id_);
    request.set_type(v1::EXPORT_TYPE_MERGED);
    request.set_destination_path(env_.root() + "/exports/merged");
    request.set_exported_model_name("ref-llama-merged");
    v1::ExportModelResponse exported;
    ASSERT_THAT(FromGrpcStatus(env_.models()->ExportModel(Context().get(), request, &exported)), IsOk());
    export_id_ = exported.export_().id();
    lease = LeaseJob(env_, "w1", 0).lease();
    CopyInto(base_.source(), lease.output_dir());
    ASSERT_THAT(Complete(lease, &done), IsOk());
  }

  absl::Status Complete(const iv1::JobLease& lease, iv1::CompleteJobResponse* out) {
    iv1::CompleteJobRequest request;
    request.set_job_id(lease.job_id());
    request.set_attempt(lease.attempt());
    request.set_worker_id("w1");
    request.set_adapter_dir(lease.output_dir());
    return FromGrpcStatus(env_.queue()->CompleteJob(WorkerContext().get(), request, out));
  }

  absl::StatusOr<v1::GetLineageResponse> Lineage(v1::LineageKind kind, const std::string& ref,
                                                  v1::LineageDirection direction = v1::LINEAGE_DIRECTION_UNSPECIFIED,
                                                  int max_depth = 0, const std::string& revision_id = "") {
    v1::GetLineageRequest request;
    request.set_kind(kind);
    request.set_ref(ref);
    request.set_direction(direction);
    request.set_max_depth(max_depth);
    request.set_revision_id(revision_id);
    v1::GetLineageResponse response;
    absl::Status status =
        FromGrpcStatus(v1::Lineage::NewStub(env_.channel())->GetLineage(Context().get(), request, &response));
    if (!status.ok()) return status;
    return response;
  }

  MetadataTestEnv env_;
  v1::Model base_;
  std::string adapter_id_, export_id_;
};

constexpr auto kModel = v1::LINEAGE_KIND_MODEL_REVISION;
constexpr auto kDataset = v1::LINEAGE_KIND_DATASET_REVISION;
constexpr auto kPrompt = v1::LINEAGE_KIND_PROMPT;
constexpr auto kConfig = v1::LINEAGE_KIND_CONFIG;
constexpr auto kJob = v1::LINEAGE_KIND_JOB;
constexpr auto kAdapter = v1::LINEAGE_KIND_ADAPTER;
constexpr auto kExport = v1::LINEAGE_KIND_EXPORT;

TEST_F(LineageTest, AnAdapterLeadsBackToEverythingItWasTrainedFrom) {
  absl::StatusOr<v1::GetLineageResponse> got = Lineage(kAdapter, "sft", v1::LINEAGE_DIRECTION_UPSTREAM);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->root().kind(), kAdapter);
  EXPECT_EQ(got->root().id(), adapter_id_);
  EXPECT_EQ(got->root().detail(), "trained");
  EXPECT_THAT(got->downstream(), IsEmpty());
  // The job's configs are the llama family's default lora and training configs (unnamed defaults).
  std::set<Seen> upstream = Nodes(got->upstream());
  EXPECT_EQ(upstream.count({kJob, "sft", 1}), 1u);
  EXPECT_EQ(upstream.count({kModel, "ref-llama", 2}), 1u);
  EXPECT_EQ(upstream.count({kDataset, "qa-data", 2}), 1u);
  EXPECT_EQ(upstream.count({kPrompt, "qa", 2}), 1u);
  int configs = 0;
  for (const v1::LineageNode& n : got->upstream()) configs += n.kind() == kConfig ? 1 : 0;
  EXPECT_EQ(configs, 2);
  EXPECT_EQ(upstream.size(), 6u) << "nothing else: the prompt's dataset revision is the job's, listed once";
  for (const v1::LineageNode& n : got->upstream()) {
    if (n.kind() == kModel) {
      EXPECT_EQ(n.parent_id(), base_.id());
      EXPECT_EQ(n.revision_number(), 1);
      EXPECT_EQ(n.detail(), "llama");
    }
    if (n.kind() == kJob) EXPECT_EQ(n.state(), "SUCCEEDED");
  }
  // Edges run from the input to what was made with it.
  std::set<std::string> relations;
  for (const v1::LineageEdge& e : got->edges()) {
    relations.insert(e.relation());
    if (e.relation() == "trained by") EXPECT_EQ(e.to_id(), adapter_id_);
  }
  EXPECT_EQ(relations, (std::set<std::string>{"trained by", "base model", "dataset", "prompt", "config"}));
  EXPECT_FALSE(got->truncated());
}

TEST_F(LineageTest, AnExportedModelLeadsBackThroughTheExportAndTheAdapter) {
  absl::StatusOr<v1::GetLineageResponse> got = Lineage(kModel, "ref-llama-merged");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->root().name(), "ref-llama-merged");
  std::set<Seen> upstream = Nodes(got->upstream());
  EXPECT_EQ(upstream.count({kExport, "ref-llama-merged", 1}), 1u);
  EXPECT_EQ(upstream.count({kAdapter, "sft", 2}), 1u);
  EXPECT_EQ(upstream.count({kModel, "ref-llama", 2}), 1u);
  EXPECT_EQ(upstream.count({kJob, "sft", 3}), 1u);
  EXPECT_EQ(upstream.count({kDataset, "qa-data", 4}), 1u);
  for (const v1::LineageNode& n : got->upstream()) {
    if (n.kind() == kExport) {
      EXPECT_EQ(n.id(), export_id_);
      EXPECT_EQ(n.state(), "succeeded");
      EXPECT_EQ(n.detail(), "merged");
    }
  }
  EXPECT_THAT(got->downstream(), IsEmpty());
}

TEST_F(LineageTest, ForwardFromTheBaseModelAndTheDataset) {
  absl::StatusOr<v1::GetLineageResponse> model = Lineage(kModel, "ref-llama", v1::LINEAGE_DIRECTION_DOWNSTREAM);
  ASSERT_THAT(model, IsOk());
  EXPECT_THAT(model->upstream(), IsEmpty());
  EXPECT_THAT(Nodes(model->downstream()),
              UnorderedElementsAre(Seen{kJob, "sft", 1}, Seen{kExport, "ref-llama-merged", 1},
                                   Seen{kAdapter, "sft", 2}, Seen{kModel, "ref-llama-merged", 2}));

  absl::StatusOr<v1::GetLineageResponse> dataset = Lineage(kDataset, "qa-data", v1::LINEAGE_DIRECTION_DOWNSTREAM);
  ASSERT_THAT(dataset, IsOk());
  EXPECT_THAT(Nodes(dataset->downstream()),
              UnorderedElementsAre(Seen{kPrompt, "qa", 1}, Seen{kJob, "sft", 1}, Seen{kAdapter, "sft", 2},
                                   Seen{kExport, "ref-llama-merged", 3}, Seen{kModel, "ref-llama-merged", 4}));

  // One hop only: the rest is cut, and the response says so.
  absl::StatusOr<v1::GetLineageResponse> near = Lineage(kDataset, "qa-data", v1::LINEAGE_DIRECTION_DOWNSTREAM, 1);
  ASSERT_THAT(near, IsOk());
  EXPECT_THAT(Nodes(near->downstream()), UnorderedElementsAre(Seen{kPrompt, "qa", 1}, Seen{kJob, "sft", 1}));
  EXPECT_TRUE(near->truncated());

  // The export's own lineage both ways, by id.
  absl::StatusOr<v1::GetLineageResponse> e = Lineage(kExport, export_id_);
  ASSERT_THAT(e, IsOk());
  EXPECT_THAT(Nodes(e->downstream()), UnorderedElementsAre(Seen{kModel, "ref-llama-merged", 1}));
  EXPECT_EQ(Nodes(e->upstream()).count({kAdapter, "sft", 1}), 1u);
}

TEST_F(LineageTest, BadRequestsNameTheField) {
  EXPECT_THAT(Lineage(v1::LINEAGE_KIND_UNSPECIFIED, "sft"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kind is required")));
  EXPECT_THAT(Lineage(kAdapter, ""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ref")));
  EXPECT_THAT(Lineage(kAdapter, "no-such-adapter"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("adapter 'no-such-adapter' not found; ListAdapters")));
  EXPECT_THAT(Lineage(kJob, "no-such-job"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("ListFineTuningJobs")));
  EXPECT_THAT(Lineage(kExport, "not-an-id"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ref")));
  EXPECT_THAT(Lineage(kAdapter, "sft", v1::LINEAGE_DIRECTION_UNSPECIFIED, 21),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_depth is 21")));
  EXPECT_THAT(Lineage(kAdapter, "sft", v1::LINEAGE_DIRECTION_UNSPECIFIED, 0, base_.latest_revision().id()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("revision_id applies to model and dataset")));
  // A revision of another model.
  absl::StatusOr<v1::GetLineageResponse> merged = Lineage(kModel, "ref-llama-merged");
  ASSERT_THAT(merged, IsOk());
  EXPECT_THAT(Lineage(kModel, "ref-llama", v1::LINEAGE_DIRECTION_UNSPECIFIED, 0, merged->root().id()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("is not a revision of model 'ref-llama'")));
}

}  // namespace
}  // namespace tuneforge::testing
