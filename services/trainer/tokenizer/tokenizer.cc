// Tokenizer pipeline: added-token split -> normalizer -> pre-tokenizer -> BPE -> post-processor, and
// ids -> tokens -> decoder.
#include "services/trainer/tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "services/trainer/tokenizer/added_tokens.h"
#include "services/trainer/tokenizer/decoders.h"
#include "services/trainer/tokenizer/model_bpe.h"
#include "services/trainer/tokenizer/normalizers.h"
#include "services/trainer/tokenizer/post_processor.h"
#include "services/trainer/tokenizer/pre_tokenizers.h"
#include "services/trainer/tokenizer/utf8.h"

namespace tuneforge {

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("tokenizer.json: cannot open '", path, "'; check the path"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto tokenizer = FromJson(buffer.str());
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(), absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  try {
    const nlohmann::json root = nlohmann::json::parse(json_text.begin(), json_text.end());
    if (!root.is_object()) return absl::InvalidArgumentError("tokenizer.json: the top level must be an object");
    for (const char* key : {"truncation", "padding"}) {
      if (root.contains(key) && !root[key].is_null()) {
        return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", key,
                                                       " is not supported; set it to null (we never truncate "
                                                       "or pad inside the tokenizer)"));
      }
    }
    const nlohmann::json& model = root.at("model");
    const std::string model_type = model.value("type", std::string("BPE"));
    if (model_type != "BPE") {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: model type '", model_type, "' is not supported; supported: BPE"));
    }
    ASSIGN_OR_RETURN(t->model_, BpeModel::FromJson(model));
    if (root.contains("normalizer") && !root["normalizer"].is_null()) {
      ASSIGN_OR_RETURN(t->normalizer_, NormalizerFromJson(root["normalizer"]));
    }
    if (root.contains("pre_tokenizer") && !root["pre_tokenizer"].is_null()) {
      ASSIGN_OR_RETURN(t->pre_tokenizer_, PreTokenizerFromJson(root["pre_tokenizer"]));
    }
    if (root.contains("post_processor") && !root["post_processor"].is_null()) {
      ASSIGN_OR_RETURN(t->post_processor_, PostProcessorFromJson(root["post_processor"]));
    }
    if (root.contains("decoder") && !root["decoder"].is_null()) {
      ASSIGN_OR_RETURN(t->decoder_, DecoderFromJson(root["decoder"]));
    }
    t->vocab_size_ = t->model_->size();
    if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
      // The Rust library does not use the ids written here (it warns when they differ): an added token takes
      // the id of an earlier added token or a model token with the same content, else the next id after the
      // model vocabulary (its number of entries), in file order.
      int32_t next_id = static_cast<int32_t>(model.at("vocab").size());
      for (const nlohmann::json& a : root["added_tokens"]) {
        AddedToken token;
        token.content = a.at("content").get<std::string>();
        if (token.content.empty()) {
          return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: added_tokens entry with id ",
                                                         a.value("id", int64_t{-1}), " has empty content"));
        }
        token.special = a.value("special", false);
        token.lstrip = a.value("lstrip", false);
        token.rstrip = a.value("rstrip", false);
        token.single_word = a.value("single_word", false);
        token.normalized = a.value("normalized", !token.special);
        auto known = t->added_by_content_.find(token.content);
        if (known != t->added_by_content_.end()) {
          token.id = known->second;
        } else if (const int32_t in_model = t->model_->TokenToId(token.content); in_model >= 0) {
          token.id = in_model;
        } else {
          if (next_id == INT32_MAX) return absl::InvalidArgumentError("tokenizer.json: too many added_tokens");
          token.id = next_id++;
        }
        t->added_by_content_[token.content] = token.id;
        if (token.id + 1 > t->vocab_size_) t->vocab_size_ = token.id + 1;
        auto slot = t->added_by_id_.find(token.id);
        if (slot != t->added_by_id_.end()) {
          t->added_[slot->second] = std::move(token);  // the same token again: the last options win
        } else {
          t->added_by_id_[token.id] = t->added_.size();
          t->added_.push_back(std::move(token));
        }
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: not a valid tokenizer file: ", e.what()));
  }
  // As in the Rust library: tokens flagged normalized are matched, in a second pass, in the normalized text by
  // their normalized spelling (Llama 2's Prepend turns "<x>" into "▁<x>"), which is also what decoding shows;
  // skip_special_tokens drops pieces spelled like a special token's original content.
  std::vector<AddedToken> raw, normalized;
  for (AddedToken& a : t->added_) {
    if (a.special) t->special_contents_.insert(a.content);
    if (a.normalized && t->normalizer_ != nullptr) t->normalizer_->Normalize(&a.content);
    (a.normalized ? normalized : raw).push_back(a);
  }
  t->raw_matcher_ = std::make_unique<AddedTokenMatcher>(raw);
  t->normalized_matcher_ = std::make_unique<AddedTokenMatcher>(normalized);
  return t;
}

void Tokenizer::EncodeText(std::string_view text, bool starts_input, std::vector<int32_t>* ids) const {
  std::string normalized(text);
  if (normalizer_ != nullptr) normalizer_->Normalize(&normalized);
  std::vector<TextSegment> segments;
  if (normalized_matcher_->empty()) {
    segments.push_back(TextSegment{normalized, -1});
  } else {
    segments = normalized_matcher_->Split(normalized);
  }
  std::vector<std::string> pieces;
  for (const TextSegment& segment : segments) {
    if (segment.id >= 0) {
      ids->push_back(segment.id);
      continue;
    }
    if (segment.text.empty()) continue;
    pieces.assign(1, std::string(segment.text));
    const bool first = starts_input && segment.text.data() == segments.front().text.data();
    if (pre_tokenizer_ != nullptr) pre_tokenizer_->Split(&pieces, first);
    for (const std::string& piece : pieces) model_->Tokenize(piece, ids);
  }
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  const size_t bad = FindInvalidUtf8(text);
  if (bad != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("text to tokenize is not valid UTF-8 (invalid byte at offset ", bad, "); decode it first"));
  }
  std::vector<int32_t> ids;
  for (const TextSegment& segment : raw_matcher_->Split(text)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
    } else {
      EncodeText(segment.text, segment.text.data() == text.data(), &ids);
    }
  }
  if (add_special_tokens && post_processor_ != nullptr) post_processor_->Process(&ids);
  return ids;
}

absl::StatusOr<std::string> Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    auto added = added_by_id_.find(id);
    const std::string* token = added != added_by_id_.end() ? &added_[added->second].content : model_->IdToToken(id);
    if (token == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot decode id ", id, ": not in the vocabulary (size ", vocab_size_, ")"));
    }
    if (skip_special_tokens && special_contents_.contains(*token)) continue;
    tokens.push_back(*token);
  }
  if (decoder_ == nullptr) return absl::StrJoin(tokens, " ");
  decoder_->DecodeChain(&tokens);
  return absl::StrJoin(tokens, "");
}

int32_t Tokenizer::TokenToId(std::string_view token) const {
  auto it = added_by_content_.find(absl::string_view(token.data(), token.size()));
  if (it != added_by_content_.end()) return it->second;
  return model_->TokenToId(token);
}

std::string Tokenizer::IdToToken(int32_t id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return added_[it->second].content;
  const std::string* token = model_->IdToToken(id);
  return token == nullptr ? std::string() : *token;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added_[it->second].special;
}

}  // namespace tuneforge
