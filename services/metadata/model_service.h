// Rules of the Models resource: source resolution (Hub or local directory), save_or_fetch revisions,
// removal with dependents. Knows neither gRPC nor SQL.
#ifndef TUNEFORGE_SERVICES_METADATA_MODEL_SERVICE_H_
#define TUNEFORGE_SERVICES_METADATA_MODEL_SERVICE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/allowed_roots.h"
#include "common/hf_hub_client.h"
#include "common/local_model.h"
#include "services/metadata/adapter_repository.h"
#include "services/metadata/model_records.h"
#include "services/metadata/model_repository.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct AddModelInput {
  std::string name;
  std::string description;
  std::string source_type;  // "huggingface" | "local"; empty when the request named no source
  std::string repo_id;      // huggingface
  std::string revision;     // huggingface; empty means main
  std::string token;        // huggingface; never stored
  std::string path;         // local
};

struct AddModelResult {
  ModelRecord model;
  ModelRevisionRecord revision;
  AddOutcome outcome = AddOutcome::kCreated;
};

struct ModelPage {
  std::vector<ModelRecord> models;
  std::string next_page_token;
};

struct ModelRevisionPage {
  std::vector<ModelRevisionRecord> revisions;
  std::string next_page_token;
};

struct ListModelsInput {
  int page_size = 0;
  std::string page_token;
  std::string name_prefix;
  std::string family;
  std::string source_type;  // empty: any
};

class ModelService {
 public:
  // `default_hf_token` (the server's HF_TOKEN) is used when a request carries none.
  ModelService(Store& store, const AllowedRoots& roots, const HubClient& hub, std::string default_hf_token);

  absl::StatusOr<AddModelResult> AddModel(const AddModelInput& input);
  absl::StatusOr<ModelRecord> GetModel(const std::string& ref);
  absl::StatusOr<ModelPage> ListModels(const ListModelsInput& input);
  absl::StatusOr<ModelRevisionPage> ListModelRevisions(const std::string& ref, int page_size,
                                                       const std::string& page_token);
  // Returns what was removed besides the model ("adapter 'x' (id)", ...).
  absl::StatusOr<std::vector<std::string>> RemoveModel(const std::string& ref, bool force);

 private:
  // The revision a source resolves to, before it is stored.
  absl::StatusOr<ModelRevisionRecord> ResolveHuggingFace(const AddModelInput& input, std::string* family);
  absl::StatusOr<ModelRevisionRecord> ResolveLocal(const std::string& canonical_dir, std::string* family);
  absl::StatusOr<ModelRecord> FindModel(Tx& tx, const std::string& ref, const std::string& field);

  Store& store_;
  const AllowedRoots& roots_;
  const HubClient& hub_;
  std::string default_hf_token_;
  LocalModelInspector local_models_;  // remembers unchanged directories, so adding one again hashes nothing
  ModelRepository models_;
  AdapterRepository adapters_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_MODEL_SERVICE_H_
