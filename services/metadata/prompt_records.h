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
  std::string mode;  // "template" | "chat"
  std::string input_template;
  std::string completion_template;
  std::string messages_column;
  std::vector<std::string> slots;  // columns the templates use, in order of first use
  std::string fingerprint;
  absl::Time create_time;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_PROMPT_RECORDS_H_
