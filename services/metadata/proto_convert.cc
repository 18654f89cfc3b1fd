// Conversions used by every handler.
#include "services/metadata/proto_convert.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tuneforge {

void ToProto(absl::Time time, google::protobuf::Timestamp* out) {
  const int64_t micros = absl::ToUnixMicros(time);
  out->set_seconds(micros / 1000000);
  out->set_nanos(static_cast<int32_t>((micros % 1000000) * 1000));
}

v1::SourceType SourceTypeToProto(const std::string& source_type) {
  if (source_type == "huggingface") return v1::SOURCE_TYPE_HUGGINGFACE;
  if (source_type == "local") return v1::SOURCE_TYPE_LOCAL;
  if (source_type == "trained") return v1::SOURCE_TYPE_TRAINED;
  return v1::SOURCE_TYPE_UNSPECIFIED;
}

absl::StatusOr<std::string> SourceTypeFromProto(int value, const std::string& field) {
  switch (value) {
    case v1::SOURCE_TYPE_UNSPECIFIED: return std::string();
    case v1::SOURCE_TYPE_HUGGINGFACE: return std::string("huggingface");
    case v1::SOURCE_TYPE_LOCAL: return std::string("local");
    case v1::SOURCE_TYPE_TRAINED: return std::string("trained");
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          field, " ", value, " is not a source type; use SOURCE_TYPE_HUGGINGFACE, SOURCE_TYPE_LOCAL or SOURCE_TYPE_TRAINED"));
  }
}

v1::AddOutcome ToProto(AddOutcome outcome) {
  switch (outcome) {
    case AddOutcome::kCreated: return v1::ADD_OUTCOME_CREATED;
    case AddOutcome::kNewRevision: return v1::ADD_OUTCOME_NEW_REVISION;
    case AddOutcome::kExisting: return v1::ADD_OUTCOME_EXISTING;
  }
  return v1::ADD_OUTCOME_UNSPECIFIED;
}

void ToProto(const std::vector<FileRecord>& files, google::protobuf::RepeatedPtrField<v1::RepoFile>* out) {
  for (const FileRecord& f : files) {
    v1::RepoFile* file = out->Add();
    file->set_path(f.path);
    file->set_size(f.size);
    file->set_sha256(f.sha256);
  }
}

void ToProto(std::vector<FileRecord>&& files, google::protobuf::RepeatedPtrField<v1::RepoFile>* out) {
  out->Reserve(out->size() + static_cast<int>(files.size()));
  for (FileRecord& f : files) {
    v1::RepoFile* file = out->Add();
    file->set_path(std::move(f.path));
    file->set_size(f.size);
    file->set_sha256(std::move(f.sha256));
  }
}

}  // namespace tuneforge
