// Domain records of the Prompts resource: each record is one immutable revision of a named prompt.
#ifndef TUNEFORGE_SERVICES_METADATA_PROMPT_RECORDS_H_
#define TUNEFORGE_SERVICES_METADATA_PROMPT_RECORDS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tuneforge {

struct PromptRecord {
  std::string id;  // of this revision
  std::string name;
  std::string description;
  int revision_number = 0;
  std::string dataset_id;
  std::string dataset_revision_id;
  std::string mode;  // "template" | "chat" | "alpaca"
  std::string input_template;
  std::string completion_template;
  std::string messages_column;
  std::string message_format;  // chat: "openai" | "sharegpt"; else empty
  std::string instruction_column;  // alpaca
  std::string input_column;        // alpaca
  std::string output_column;       // alpaca
  bool use_chat_template = false;  // alpaca: rendered as chat messages
  std::vector<std::string> slots;  // columns the templates use, in order of first use
  std::string fingerprint;
  absl::Time create_time;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_PROMPT_RECORDS_H_
