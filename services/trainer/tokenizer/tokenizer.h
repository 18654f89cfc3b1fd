// A Hugging Face tokenizer.json tokenizer (BPE model: byte-level as in Llama 3 / Qwen, SentencePiece-style
// with byte fallback as in Llama 2 / Gemma) that encodes and decodes id for id like the Rust library.
#ifndef TUNEFORGE_SERVICES_TRAINER_TOKENIZER_TOKENIZER_H_
#define TUNEFORGE_SERVICES_TRAINER_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"

namespace tuneforge {

class AddedTokenMatcher;
class BpeModel;
class Decoder;
class Normalizer;
class PostProcessor;
class PreTokenizer;
struct AddedToken;

class Tokenizer {
 public:
  // Loads tokenizer.json. Anything in it we do not support fails here, naming the field and type.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view json_text);
  ~Tokenizer();

  // Token ids of `text` (UTF-8; invalid UTF-8 is INVALID_ARGUMENT). Added tokens spelled in the text are
  // always matched; add_special_tokens only applies the post-processor (BOS for Llama 2, Llama 3.1, Gemma).
  // Thread-safe.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens) const;

  // Text of `ids`; skip_special_tokens drops added tokens flagged special. An id outside the vocabulary is
  // INVALID_ARGUMENT.
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

  // -1 when `token` is neither an added token nor in the model vocabulary.
  int32_t TokenToId(std::string_view token) const;
  // Empty when `id` is unknown. An added token flagged normalized comes back normalized, as in the Rust library.
  std::string IdToToken(int32_t id) const;
  // True for added tokens flagged special (e.g. <|eot_id|>, <s>).
  bool IsSpecial(int32_t id) const;
  // One past the largest id (model vocabulary and added tokens).
  int32_t vocab_size() const { return vocab_size_; }

 private:
  Tokenizer();
  // Normalizes, pre-tokenizes and runs BPE on text between added tokens; `starts_input` when it begins the
  // text given to Encode.
  void EncodeText(std::string_view text, bool starts_input, std::vector<int32_t>* ids) const;

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;      // may be null
  std::unique_ptr<PreTokenizer> pre_tokenizer_;  // may be null
  std::unique_ptr<PostProcessor> post_processor_;  // may be null
  std::unique_ptr<Decoder> decoder_;            // may be null
  std::vector<AddedToken> added_;  // content normalized for tokens flagged normalized, as the Rust library keeps it
  absl::flat_hash_map<int32_t, size_t> added_by_id_;  // id -> index into added_
  absl::flat_hash_map<std::string, int32_t> added_by_content_;  // by the content tokenizer.json gives
  absl::flat_hash_set<std::string> special_contents_;  // contents of the added tokens flagged special
  std::unique_ptr<AddedTokenMatcher> raw_matcher_;         // added tokens with normalized == false
  std::unique_ptr<AddedTokenMatcher> normalized_matcher_;  // added tokens with normalized == true, by their
                                                           // normalized content
  int32_t vocab_size_ = 0;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TOKENIZER_TOKENIZER_H_
