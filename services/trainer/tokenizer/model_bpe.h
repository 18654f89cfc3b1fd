// The BPE model of a tokenizer.json ("model": {"type": "BPE"}): vocabulary, merge ranks, byte fallback and
// unknown-token handling, with a per-word cache. Turns one pre-token into ids.
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_MODEL_BPE_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_MODEL_BPE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace tuneforge {

class BpeModel {
 public:
  // `model` is the "model" object of tokenizer.json.
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model);

  // Appends the ids of `word` (one pre-token, already normalized and pre-tokenized) to *ids.
  void Tokenize(std::string_view word, std::vector<int32_t>* ids) const;

  // -1 when absent.
  int32_t TokenToId(std::string_view token) const;
  // nullptr when `id` is not in the vocabulary.
  const std::string* IdToToken(int32_t id) const;
  // One past the largest id of the vocabulary.
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  BpeModel() = default;
  void MergeWord(std::string_view word, std::vector<int32_t>* ids) const;
  const Merge* FindMerge(int32_t left, int32_t right) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  int32_t byte_ids_[256];
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;

  mutable std::mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_MODEL_BPE_H_
