// Fills a request message from the parsed command line through protobuf reflection, as each Option's
// Binding says, so that commands are table rows rather than code.
#ifndef TUNEFORGE_SERVICES_CLI_REQUEST_BINDING_H_
#define TUNEFORGE_SERVICES_CLI_REQUEST_BINDING_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/cli/cli_args.h"

namespace tuneforge::cli {

// Sets the request fields named by the command's args and flags. Bad values are usage errors that name the
// flag; secret values are never part of a message.
absl::Status BindRequest(const Command& command, const ParsedArgs& args, google::protobuf::Message* request);

// An enum value from what a user types: "running", "RUNNING" or "JOB_STATE_RUNNING".
absl::StatusOr<int> ParseEnum(const google::protobuf::EnumDescriptor& type, const std::string& text);

// What users type for an enum value: its name without the type prefix, e.g. "RUNNING" for JOB_STATE_RUNNING.
std::string ShortEnumName(const google::protobuf::EnumValueDescriptor& value);

}  // namespace tuneforge::cli

#endif  // TUNEFORGE_SERVICES_CLI_REQUEST_BINDING_H_
