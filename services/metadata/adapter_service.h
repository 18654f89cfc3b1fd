// Rules of the Adapters resource: import a PEFT LoRA adapter (local directory or Hub repo) after checking
// it against its base model revision, save_or_fetch, listing, and removal with its export requests.
// Knows neither gRPC nor SQL.
#ifndef TUNEFORGE_SERVICES_METADATA_ADAPTER_SERVICE_H_
#define TUNEFORGE_SERVICES_METADATA_ADAPTER_SERVICE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/allowed_roots.h"
#include "common/hf_hub_client.h"
#include "common/peft_adapter.h"
#include "services/metadata/adapter_records.h"
#include "services/metadata/adapter_repository.h"
#include "services/metadata/model_repository.h"
#include "services/metadata/records.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct AddAdapterInput {
  std::string name;
  std::string description;
  std::string model;              // id or name of the base model
  std::string model_revision_id;  // empty: the model's latest revision
  std::string source_type;        // "huggingface" | "local"; empty when the request named no source
  std::string repo_id;            // huggingface
  std::string revision;           // huggingface; empty means main
  std::string token;              // huggingface; never stored or logged
  std::string path;               // local
};

struct AddAdapterResult {
  AdapterRecord adapter;
  AddOutcome outcome = AddOutcome::kCreated;
};

struct ListAdaptersInput {
  int page_size = 0;
  std::string page_token;
  std::string name_prefix;
  std::string model;        // id or name; empty: any
  std::string source_type;  // empty: any
};

struct AdapterPage {
  std::vector<AdapterRecord> adapters;
  std::string next_page_token;
};

// The record of an inspected adapter directory (source = the directory), before names and lineage are set.
AdapterRecord AdapterRecordFromDirectory(const LocalAdapterInfo& local, const std::string& source_type);

class AdapterService {
 public:
  // `default_hf_token` (the server's HF_TOKEN) is used when a request carries none.
  AdapterService(Store& store, const AllowedRoots& roots, const HubClient& hub, std::string default_hf_token);

  absl::StatusOr<AddAdapterResult> AddAdapter(const AddAdapterInput& input);
  absl::StatusOr<AdapterRecord> GetAdapter(const std::string& ref);
  absl::StatusOr<AdapterPage> ListAdapters(const ListAdaptersInput& input);
  // Returns what was removed besides the adapter ("export '/dest' (id)", ...).
  absl::StatusOr<std::vector<std::string>> RemoveAdapter(const std::string& ref, bool force);

 private:
  // The adapter a source holds, checked against `base_config_json` (the base revision's config.json);
  // fills source, commit_sha, peft fields, files and fingerprint.
  absl::StatusOr<AdapterRecord> ResolveHuggingFace(const AddAdapterInput& input, const std::string& base_config_json);
  absl::StatusOr<AdapterRecord> ResolveLocal(const std::string& canonical_dir, const std::string& base_config_json);

  Store& store_;
  const AllowedRoots& roots_;
  const HubClient& hub_;
  std::string default_hf_token_;
  AdapterRepository adapters_;
  ModelRepository models_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_ADAPTER_SERVICE_H_
