// tuneforge.v1.Datasets over DatasetService.
#include "services/metadata/datasets_handler.h"

#include <google/protobuf/struct.pb.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "services/metadata/auth.h"
#include "services/metadata/proto_convert.h"

namespace tuneforge {

namespace {

// Struct numbers are doubles, so integers beyond 2^53 lose precision, as they would in any JSON client.
void JsonToValue(const nlohmann::json& j, google::protobuf::Value* out) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      out->set_null_value(google::protobuf::NULL_VALUE);
      break;
    case nlohmann::json::value_t::boolean:
      out->set_bool_value(j.get<bool>());
      break;
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      out->set_number_value(j.get<double>());
      break;
    case nlohmann::json::value_t::string:
      out->set_string_value(j.get<std::string>());
      break;
    case nlohmann::json::value_t::array: {
      google::protobuf::ListValue* list = out->mutable_list_value();
      for (const nlohmann::json& v : j) JsonToValue(v, list->add_values());
      break;
    }
    case nlohmann::json::value_t::object: {
      google::protobuf::Struct* s = out->mutable_struct_value();
      for (auto it = j.begin(); it != j.end(); ++it) JsonToValue(it.value(), &(*s->mutable_fields())[it.key()]);
      break;
    }
    case nlohmann::json::value_t::binary:
      out->set_null_value(google::protobuf::NULL_VALUE);
      break;
  }
}

// Rows are JSON objects; anything else (never produced by the loaders) reads as {"value": ...}.
void RowToStruct(const nlohmann::json& row, google::protobuf::Struct* out) {
  if (row.is_object()) {
    for (auto it = row.begin(); it != row.end(); ++it) JsonToValue(it.value(), &(*out->mutable_fields())[it.key()]);
  } else {
    JsonToValue(row, &(*out->mutable_fields())["value"]);
  }
}

}  // namespace

void ToProto(const DatasetRevisionRecord& r, v1::DatasetRevision* out) {
  out->set_id(r.id);
  out->set_dataset_id(r.dataset_id);
  out->set_revision_number(r.revision_number);
  out->set_requested_revision(r.requested_revision);
  out->set_commit_sha(r.commit_sha);
  out->set_data_revision(r.data_revision);
  out->set_data_commit_sha(r.data_commit_sha);
  for (const std::string& c : r.available_configs) out->add_available_configs(c);
  out->set_fingerprint(r.fingerprint);
  out->set_format(r.format);
  for (const DatasetFeatureRecord& f : r.features) {
    v1::Feature* feature = out->add_features();
    feature->set_name(f.name);
    feature->set_type(f.type);
    if (f.null_count >= 0) feature->set_null_count(f.null_count);
  }
  for (const DatasetSplitRecord& s : r.splits) {
    v1::DatasetSplit* split = out->add_splits();
    split->set_name(s.name);
    split->set_num_rows(s.num_rows);
    split->set_source_split(s.source_split);
    for (const std::string& f : s.files) split->add_files(f);
  }
  out->set_split_generated(r.split_generated);
  out->set_split_seed(r.split_seed);
  out->set_test_size(r.test_size);
  ToProto(r.files, out->mutable_files());
  ToProto(r.create_time, out->mutable_create_time());
}

void ToProto(const DatasetRecord& d, v1::Dataset* out) {
  out->set_id(d.id);
  out->set_name(d.name);
  out->set_description(d.description);
  out->set_source_type(SourceTypeToProto(d.source_type));
  out->set_source(d.source);
  out->set_config(d.config);
  out->set_revision_count(d.revision_count);
  if (d.latest_revision.has_value()) ToProto(*d.latest_revision, out->mutable_latest_revision());
  ToProto(d.create_time, out->mutable_create_time());
  ToProto(d.update_time, out->mutable_update_time());
}

grpc::Status DatasetsHandler::AddDataset(grpc::ServerContext* context, const v1::AddDatasetRequest* request,
                                         v1::AddDatasetResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  AddDatasetInput input;
  input.name = request->name();
  input.description = request->description();
  if (request->has_huggingface()) {
    input.source_type = "huggingface";
    input.repo_id = request->huggingface().repo_id();
    input.revision = request->huggingface().revision();
    input.token = request->huggingface().token();
    input.config = request->huggingface().config();
    input.train_split = request->huggingface().train_split();
    input.test_split = request->huggingface().test_split();
    switch (request->huggingface().data_files()) {
      case v1::HUB_DATA_FILES_REPO:
        input.data_files = "repo";
        break;
      case v1::HUB_DATA_FILES_PARQUET_CONVERSION:
        input.data_files = "parquet_conversion";
        break;
      default:
        // Another number than the enum's answers INVALID_ARGUMENT from the service.
        input.data_files =
            request->huggingface().data_files() == 0 ? "" : std::to_string(request->huggingface().data_files());
    }
  } else if (request->has_local()) {
    const v1::LocalDatasetSource& local = request->local();
    input.source_type = "local";
    input.train_path = local.train_path();
    input.test_path = local.test_path();
    if (local.has_test_size()) input.test_size = local.test_size();
    if (local.has_seed()) input.seed = local.seed();
  }
  absl::StatusOr<AddDatasetResult> result = service_.AddDataset(input);
  if (!result.ok()) return ToGrpcStatus(result.status());
  ToProto(result->dataset, response->mutable_dataset());
  ToProto(result->revision, response->mutable_revision());
  response->set_outcome(ToProto(result->outcome));
  return grpc::Status::OK;
}

grpc::Status DatasetsHandler::GetDataset(grpc::ServerContext* context, const v1::GetDatasetRequest* request,
                                         v1::GetDatasetResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<DatasetRecord> dataset = service_.GetDataset(request->dataset());
  if (!dataset.ok()) return ToGrpcStatus(dataset.status());
  ToProto(*dataset, response->mutable_dataset());
  return grpc::Status::OK;
}

grpc::Status DatasetsHandler::ListDatasets(grpc::ServerContext* context, const v1::ListDatasetsRequest* request,
                                           v1::ListDatasetsResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  ListDatasetsInput input;
  input.page_size = request->page_size();
  input.page_token = request->page_token();
  input.name_prefix = request->name_prefix();
  absl::StatusOr<std::string> source_type = SourceTypeFromProto(request->source_type(), "source_type");
  if (!source_type.ok()) return ToGrpcStatus(source_type.status());
  input.source_type = *source_type;
  absl::StatusOr<DatasetPage> page = service_.ListDatasets(input);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const DatasetRecord& d : page->datasets) ToProto(d, response->add_datasets());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status DatasetsHandler::ListDatasetRevisions(grpc::ServerContext* context,
                                                   const v1::ListDatasetRevisionsRequest* request,
                                                   v1::ListDatasetRevisionsResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<DatasetRevisionPage> page =
      service_.ListDatasetRevisions(request->dataset(), request->page_size(), request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const DatasetRevisionRecord& r : page->revisions) ToProto(r, response->add_revisions());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status DatasetsHandler::GetDatasetPreview(grpc::ServerContext* context, const v1::GetDatasetPreviewRequest* request,
                                                v1::GetDatasetPreviewResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<DatasetPreview> preview =
      service_.GetDatasetPreview(request->dataset(), request->revision_id(), request->split());
  if (!preview.ok()) return ToGrpcStatus(preview.status());
  response->set_revision_id(preview->revision_id);
  for (const DatasetSplitPreviewRecord& s : preview->splits) {
    v1::SplitPreview* split = response->add_splits();
    split->set_split(s.split);
    for (const nlohmann::json& row : s.rows) RowToStruct(row, split->add_rows());
    split->set_truncated(s.truncated);
  }
  return grpc::Status::OK;
}

grpc::Status DatasetsHandler::RemoveDataset(grpc::ServerContext* context, const v1::RemoveDatasetRequest* request,
                                            v1::RemoveDatasetResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  absl::StatusOr<std::vector<std::string>> removed = service_.RemoveDataset(request->dataset(), request->force());
  if (!removed.ok()) return ToGrpcStatus(removed.status());
  for (const std::string& r : *removed) response->add_removed_dependents(r);
  return grpc::Status::OK;
}

}  // namespace tuneforge
