// How the CLI prints responses: text (tables for lists, key: value blocks for records, both written by
// reflection from a View) or JSON (the response message itself); and how it prints errors.
#ifndef TUNEFORGE_SERVICES_CLI_OUTPUT_H_
#define TUNEFORGE_SERVICES_CLI_OUTPUT_H_

#include <google/protobuf/message.h>

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "services/cli/rpc.h"

namespace tuneforge::cli {

struct Column {
  std::string header;
  std::string path;  // field path in a row, e.g. "latest_revision.format"
};

// How a response is shown in text mode; --output json prints the whole response.
struct View {
  std::string record;               // response field to show; "" shows the whole response
  std::vector<Column> columns;      // when set, `record` is a repeated field shown as a table
  std::vector<std::string> hidden;  // field paths under `record` left out of key: value blocks
  // A first line. "{path}" is replaced by that response field, "{}" by the command's first argument.
  std::string headline;
};

// The proto3 JSON form with the .proto field names (snake_case) and every field present.
std::string ToJson(const google::protobuf::Message& message, bool pretty);

void PrintResponse(const CommandContext& context, const google::protobuf::Message& response, const View& view,
                   const std::string& first_arg);

// Text pieces, exposed for the job commands.
std::string FormatPath(const google::protobuf::Message& message, const std::string& path);
std::string RenderRecord(const google::protobuf::Message& record, const std::vector<std::string>& hidden);
std::string RenderTable(const std::vector<const google::protobuf::Message*>& rows, const std::vector<Column>& columns);

// "error: NOT_FOUND: model 'x' not found ..."
void PrintError(std::ostream& err, const absl::Status& status);

}  // namespace tuneforge::cli

#endif  // TUNEFORGE_SERVICES_CLI_OUTPUT_H_
