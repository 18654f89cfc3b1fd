// Conversions used by every handler: timestamps, source types, add outcomes, files.
#ifndef TUNEFORGE_SERVICES_METADATA_PROTO_CONVERT_H_
#define TUNEFORGE_SERVICES_METADATA_PROTO_CONVERT_H_

#include <google/protobuf/timestamp.pb.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/metadata/records.h"
#include "tuneforge/v1/common.pb.h"

namespace tuneforge {

void ToProto(absl::Time time, google::protobuf::Timestamp* out);
v1::SourceType SourceTypeToProto(const std::string& source_type);
// "" for SOURCE_TYPE_UNSPECIFIED; INVALID_ARGUMENT naming `field` for values outside the enum.
absl::StatusOr<std::string> SourceTypeFromProto(int value, const std::string& field);
v1::AddOutcome ToProto(AddOutcome outcome);
void ToProto(const std::vector<FileRecord>& files, google::protobuf::RepeatedPtrField<v1::RepoFile>* out);
// The same, moving the strings (lists map every listed revision's files).
void ToProto(std::vector<FileRecord>&& files, google::protobuf::RepeatedPtrField<v1::RepoFile>* out);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_PROTO_CONVERT_H_
