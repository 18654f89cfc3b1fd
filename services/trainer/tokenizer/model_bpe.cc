// BPE merging in the order of the Rust tokenizers crate: repeatedly merge the adjacent pair with the lowest
// merge rank (leftmost first on ties), using a priority queue over a linked symbol list.
#include "services/trainer/tokenizer/model_bpe.h"

#include <cstdio>
#include <functional>
#include <queue>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "services/trainer/tokenizer/utf8.h"

namespace tuneforge {
namespace {

// Words longer than this (in bytes) are not cached, like the Rust library does.
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kCacheCapacity = 10000;

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const nlohmann::json& model) {
  std::unique_ptr<BpeModel> bpe(new BpeModel());
  try {
    if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() != 0.0) {
      return absl::InvalidArgumentError(
          "tokenizer.json: model.dropout is not supported (it makes encoding random); set it to null");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty()) {
        return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: model.", key,
                                                       " is not supported; only null or \"\" are"));
      }
    }
    const nlohmann::json& vocab = model.at("vocab");
    if (!vocab.is_object()) {
      return absl::InvalidArgumentError("tokenizer.json: model.vocab must be an object of token -> id");
    }
    int32_t max_id = -1;
    bpe->vocab_.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const int64_t id = it.value().get<int64_t>();
      if (id < 0 || id > INT32_MAX - 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer.json: model.vocab id ", id, " of token '", it.key(), "' is out of range"));
      }
      bpe->vocab_[it.key()] = static_cast<int32_t>(id);
      if (id > max_id) max_id = static_cast<int32_t>(id);
    }
    bpe->id_to_token_.resize(max_id + 1);
    bpe->has_id_.assign(max_id + 1, false);
    for (const auto& [token, id] : bpe->vocab_) {
      bpe->id_to_token_[id] = token;
      bpe->has_id_[id] = true;
    }
    const nlohmann::json& merges = model.at("merges");
    bpe->merges_.reserve(merges.size());
    int32_t rank = 0;
    for (const nlohmann::json& m : merges) {
      std::string left, right;
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
          return absl::InvalidArgumentError(absl::StrCat(
              "tokenizer.json: model.merges entry ", rank, " '", s, "' must be two tokens separated by one space"));
        }
        left = s.substr(0, space);
        right = s.substr(space + 1);
      } else if (m.is_array() && m.size() == 2) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer.json: model.merges entry ", rank, " must be \"a b\" or [\"a\", \"b\"]"));
      }
      const int32_t a = bpe->TokenToId(left), b = bpe->TokenToId(right);
      const int32_t merged = bpe->TokenToId(left + right);
      if (a < 0 || b < 0 || merged < 0) {
        return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: model.merges entry ", rank, " ('", left,
                                                       "', '", right, "') uses a token missing from model.vocab"));
      }
      bpe->merges_.try_emplace(PairKey(a, b), Merge{rank, merged});
      ++rank;
    }
    if (model.contains("unk_token") && !model["unk_token"].is_null()) {
      const std::string unk = model["unk_token"].get<std::string>();
      bpe->unk_id_ = bpe->TokenToId(unk);
      if (bpe->unk_id_ < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer.json: model.unk_token '", unk, "' is not in model.vocab"));
      }
    }
    bpe->fuse_unk_ = model.value("fuse_unk", false);
    bpe->byte_fallback_ = model.value("byte_fallback", false);
    bpe->ignore_merges_ = model.value("ignore_merges", false);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      bpe->byte_ids_[b] = bpe->TokenToId(name);
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: malformed BPE model: ", e.what()));
  }
  return bpe;
}

int32_t BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(absl::string_view(token.data(), token.size()));
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

const BpeModel::Merge* BpeModel::FindMerge(int32_t left, int32_t right) const {
  auto it = merges_.find(PairKey(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const int32_t id = TokenToId(word);
    if (id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(absl::string_view(word.data(), word.size()));
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = ids->size();
  MergeWord(word, ids);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() < kCacheCapacity) {
      cache_.try_emplace(std::string(word), ids->begin() + first, ids->end());
    }
  }
}

void BpeModel::MergeWord(std::string_view word, std::vector<int32_t>* ids) const {
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&symbols](int32_t id) {
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{id, index - 1, -1, true});
    if (index > 0) symbols[index - 1].next = index;
  };
  // An unknown token waits to be emitted until a character of the vocabulary, another unknown character
  // (fused into it with fuse_unk) or the end comes; byte-fallback tokens do not flush it, so they come out
  // before it, exactly as in the Rust library.
  bool pending_unk = false;
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t len = Utf8CharLength(static_cast<unsigned char>(word[pos]));
    const std::string_view ch = word.substr(pos, len);
    pos += len;
    const int32_t id = TokenToId(ch);
    if (id >= 0) {
      if (pending_unk) add(unk_id_);
      pending_unk = false;
      add(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : ch) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : ch) add(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk && !fuse_unk_) add(unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add(unk_id_);

  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = FindMerge(symbols[i].id, symbols[i + 1].id)) {
      queue.push(Candidate{m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const Merge* m = FindMerge(left.id, right.id);
    if (m == nullptr || m->new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const Merge* pm = FindMerge(symbols[left.prev].id, left.id)) {
        queue.push(Candidate{pm->rank, left.prev, pm->new_id});
      }
    }
    if (left.next >= 0) {
      if (const Merge* nm = FindMerge(left.id, symbols[left.next].id)) {
        queue.push(Candidate{nm->rank, top.pos, nm->new_id});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.alive) ids->push_back(s.id);
  }
}

}  // namespace tuneforge
