// The decoding loop of transformers' generate() for decoder-only models (greedy and multinomial sampling): logits
// processors in its order (repetition penalty, then temperature, top-k, top-p), EOS and stop strings, finished rows
// padded, and the prompt prefilled once into a KvCache (or the whole sequence recomputed each step without one).
#include "services/trainer/model/generation.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json_limits.h"
#include "common/status_macros.h"
#include "services/trainer/model/causal_lm.h"

namespace tuneforge {
namespace {

using Json = nlohmann::json;

absl::Status Invalid(std::string_view label, const std::string& what) {
  return absl::InvalidArgumentError(label.empty() ? what : absl::StrCat(std::string(label), ": ", what));
}

// A JSON integer, or a number with no fractional part (documents that went through a protobuf Struct hold 16.0).
bool AsInteger(const Json& v, int64_t* out) {
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e18) {
      *out = static_cast<int64_t>(d);
      return true;
    }
  }
  return false;
}

absl::Status ReadTokenIds(const Json& v, std::string_view label, const char* key, std::vector<int64_t>* out) {
  const std::string must = absl::StrCat(key, " must be a token id (an integer >= 0) or a list of them, got ", v.dump());
  std::vector<int64_t> ids;
  if (v.is_array()) {
    for (const Json& item : v) {
      int64_t id = 0;
      if (!AsInteger(item, &id) || id < 0) return Invalid(label, must);
      ids.push_back(id);
    }
  } else {
    int64_t id = 0;
    if (!AsInteger(v, &id) || id < 0) return Invalid(label, must);
    ids.push_back(id);
  }
  *out = std::move(ids);
  return absl::OkStatus();
}

absl::Status ReadStopStrings(const Json& v, std::string_view label, const char* key, std::vector<std::string>* out) {
  const std::string must = absl::StrCat(key, " must be a non-empty string or a list of them, got ", v.dump());
  std::vector<std::string> strings;
  if (v.is_string()) {
    strings.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const Json& item : v) {
      if (!item.is_string()) return Invalid(label, must);
      strings.push_back(item.get<std::string>());
    }
  } else {
    return Invalid(label, must);
  }
  for (const std::string& s : strings) {
    if (s.empty()) return Invalid(label, must);
    if (std::find(out->begin(), out->end(), s) == out->end()) out->push_back(s);
  }
  return absl::OkStatus();
}

// transformers' RepetitionPenaltyLogitsProcessor over the tokens each row has seen (`seen` [B,V]).
at::Tensor ApplyRepetitionPenalty(const at::Tensor& scores, const at::Tensor& seen, double penalty) {
  at::Tensor penalized = at::where(scores < 0, scores * penalty, scores / penalty);
  return at::where(seen, penalized, scores);
}

// TopKLogitsWarper: every score below the k-th largest becomes -inf.
at::Tensor ApplyTopK(const at::Tensor& scores, int64_t top_k) {
  const int64_t k = std::min(top_k, scores.size(-1));
  at::Tensor kth = std::get<0>(at::topk(scores, k, -1)).narrow(-1, k - 1, 1);
  return scores.masked_fill(scores < kth, -std::numeric_limits<float>::infinity());
}

// TopPLogitsWarper: drops the least likely tokens whose probabilities add up to at most 1 - top_p, keeping the most
// likely one always.
at::Tensor ApplyTopP(const at::Tensor& scores, double top_p) {
  auto [sorted, indices] = at::sort(scores, -1, /*descending=*/false);
  at::Tensor cumulative = sorted.softmax(-1).cumsum(-1);
  at::Tensor remove = cumulative <= (1.0 - top_p);
  remove.narrow(-1, remove.size(-1) - 1, 1).fill_(false);
  at::Tensor remove_original = remove.scatter(-1, indices, remove);
  return scores.masked_fill(remove_original, -std::numeric_limits<float>::infinity());
}

// The earliest stop string in `text`, as (index into stop_strings, offset); {-1, 0} when none occurs.
std::pair<int, size_t> FindStopString(const std::string& text, const std::vector<std::string>& stop_strings) {
  std::pair<int, size_t> best{-1, std::string::npos};
  for (size_t i = 0; i < stop_strings.size(); ++i) {
    const size_t at = text.find(stop_strings[i]);
    if (at != std::string::npos && at < best.second) best = {static_cast<int>(i), at};
  }
  if (best.first < 0) best.second = 0;
  return best;
}

}  // namespace

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos:
      return "eos";
    case FinishReason::kStopString:
      return "stop_string";
    case FinishReason::kLength:
      break;
  }
  return "length";
}

absl::Status ValidateGenerationConfig(const GenerationConfig& c) {
  if (c.max_new_tokens < 1) {
    return Invalid("", absl::StrCat("max_new_tokens must be at least 1, got ", c.max_new_tokens));
  }
  if (!std::isfinite(c.temperature) || c.temperature < 0) {
    return Invalid("", absl::StrCat("temperature must be a number >= 0 (0 decodes greedily), got ", c.temperature));
  }
  if (c.top_k < 0) return Invalid("", absl::StrCat("top_k must be >= 0 (0 keeps every token), got ", c.top_k));
  if (!(c.top_p > 0 && c.top_p <= 1)) {
    return Invalid("", absl::StrCat("top_p must be in (0, 1] (1 keeps every token), got ", c.top_p));
  }
  if (!std::isfinite(c.repetition_penalty) || c.repetition_penalty <= 0) {
    return Invalid("", absl::StrCat("repetition_penalty must be a number > 0 (1 is no penalty), got ",
                                    c.repetition_penalty));
  }
  for (int64_t id : c.eos_token_ids) {
    if (id < 0) return Invalid("", absl::StrCat("eos_token_id must hold token ids >= 0, got ", id));
  }
  if (c.pad_token_id < -1) {
    return Invalid("", absl::StrCat("pad_token_id must be a token id >= 0 (or unset), got ", c.pad_token_id));
  }
  for (const std::string& s : c.stop_strings) {
    if (s.empty()) return Invalid("", "stop_strings must not hold an empty string (it would match at once)");
  }
  return absl::OkStatus();
}

absl::StatusOr<GenerationConfig> ParseGenerationConfig(std::string_view json, std::string_view label,
                                                       const GenerationConfig& defaults) {
  RETURN_IF_ERROR(CheckJsonDepth(json, kMaxJsonDepth, label));
  Json doc;
  try {
    doc = Json::parse(json);
  } catch (const Json::exception& e) {
    return Invalid(label, absl::StrCat("is not valid JSON: ", e.what()));
  }
  if (!doc.is_object()) return Invalid(label, "must be a JSON object of generation settings");
  GenerationConfig out = defaults;
  // Each key: absent or null keeps the default.
  auto get = [&](const char* key) -> const Json* {
    auto it = doc.find(key);
    return it == doc.end() || it->is_null() ? nullptr : &*it;
  };
  auto integer = [&](const char* key, int64_t min, int64_t* field, const char* what) -> absl::Status {
    const Json* v = get(key);
    if (v == nullptr) return absl::OkStatus();
    int64_t x = 0;
    if (!AsInteger(*v, &x) || x < min) return Invalid(label, absl::StrCat(key, " must be ", what, ", got ", v->dump()));
    *field = x;
    return absl::OkStatus();
  };
  auto number = [&](const char* key, double* field, const char* what, bool (*ok)(double)) -> absl::Status {
    const Json* v = get(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number() || !std::isfinite(v->get<double>()) || !ok(v->get<double>())) {
      return Invalid(label, absl::StrCat(key, " must be ", what, ", got ", v->dump()));
    }
    *field = v->get<double>();
    return absl::OkStatus();
  };
  auto boolean = [&](const char* key, bool* field) -> absl::Status {
    const Json* v = get(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_boolean()) return Invalid(label, absl::StrCat(key, " must be true or false, got ", v->dump()));
    *field = v->get<bool>();
    return absl::OkStatus();
  };

  RETURN_IF_ERROR(integer("max_new_tokens", 1, &out.max_new_tokens, "an integer >= 1"));
  RETURN_IF_ERROR(boolean("do_sample", &out.do_sample));
  RETURN_IF_ERROR(number("temperature", &out.temperature, "a number >= 0 (0 decodes greedily)",
                         [](double x) { return x >= 0; }));
  RETURN_IF_ERROR(integer("top_k", 0, &out.top_k, "an integer >= 0 (0 keeps every token)"));
  RETURN_IF_ERROR(number("top_p", &out.top_p, "a number in (0, 1] (1 keeps every token)",
                         [](double x) { return x > 0 && x <= 1; }));
  RETURN_IF_ERROR(number("repetition_penalty", &out.repetition_penalty, "a number > 0 (1 is no penalty)",
                         [](double x) { return x > 0; }));
  if (const Json* v = get("eos_token_id")) RETURN_IF_ERROR(ReadTokenIds(*v, label, "eos_token_id", &out.eos_token_ids));
  RETURN_IF_ERROR(integer("pad_token_id", 0, &out.pad_token_id, "a token id (an integer >= 0)"));
  std::vector<std::string> stops;
  for (const char* key : {"stop_strings", "stop"}) {
    if (const Json* v = get(key)) RETURN_IF_ERROR(ReadStopStrings(*v, label, key, &stops));
  }
  if (!stops.empty()) out.stop_strings = std::move(stops);
  int64_t seed = static_cast<int64_t>(out.seed);
  RETURN_IF_ERROR(integer("seed", 0, &seed, "an integer >= 0"));
  out.seed = static_cast<uint64_t>(seed);
  RETURN_IF_ERROR(boolean("use_cache", &out.use_cache));
  if (const Json* v = get("num_beams")) {
    int64_t beams = 0;
    if (!AsInteger(*v, &beams) || beams != 1) {
      return Invalid(label, absl::StrCat("num_beams ", v->dump(), ": beam search is not supported; use 1 (or drop "
                                         "the key)"));
    }
  }
  return out;
}

absl::StatusOr<std::vector<GeneratedSequence>> Generate(const CausalLM& model,
                                                        const std::vector<std::vector<int64_t>>& prompts,
                                                        const GenerationConfig& config, const DecodeFn& decode) {
  RETURN_IF_ERROR(ValidateGenerationConfig(config));
  const int64_t vocab = model.config().arch.vocab_size;
  if (prompts.empty()) return absl::InvalidArgumentError("prompts: give at least one prompt");
  for (size_t r = 0; r < prompts.size(); ++r) {
    if (prompts[r].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("prompts[", r, "] is empty; a prompt needs at least one token"));
    }
    for (size_t i = 0; i < prompts[r].size(); ++i) {
      if (prompts[r][i] < 0 || prompts[r][i] >= vocab) {
        return absl::InvalidArgumentError(absl::StrCat("prompts[", r, "][", i, "] = ", prompts[r][i],
                                                       " is not a token id of this model (0 to ", vocab - 1, ")"));
      }
    }
  }
  if (!config.stop_strings.empty() && !decode) {
    return absl::InvalidArgumentError(
        "stop_strings need a decode function (token ids -> text) to find them; pass the tokenizer's decode");
  }
  const int64_t pad = config.pad_token_id >= 0       ? config.pad_token_id
                      : !config.eos_token_ids.empty() ? config.eos_token_ids.front()
                                                      : 0;
  if (pad >= vocab) {
    return absl::InvalidArgumentError(absl::StrCat("pad_token_id ", pad, " is not a token id of this model (0 to ",
                                                   vocab - 1, ")"));
  }
  if (model.training()) {
    return absl::FailedPreconditionError(
        "the model is in training mode (LoRA dropout on); call set_training(false) before generating");
  }

  at::NoGradGuard no_grad;
  const int64_t batch = static_cast<int64_t>(prompts.size());
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  const c10::Device device = model.weights().at("model.embed_tokens.weight").device();
  const auto long_cpu = at::TensorOptions().dtype(at::kLong);

  // Left padding: every row ends at the same column, so the next token of every row goes at the end.
  std::vector<int64_t> flat_ids(batch * longest, pad), flat_mask(batch * longest, 0);
  for (int64_t r = 0; r < batch; ++r) {
    const int64_t offset = longest - static_cast<int64_t>(prompts[r].size());
    for (size_t i = 0; i < prompts[r].size(); ++i) {
      flat_ids[r * longest + offset + i] = prompts[r][i];
      flat_mask[r * longest + offset + i] = 1;
    }
  }
  at::Tensor ids = at::tensor(flat_ids, long_cpu).view({batch, longest}).to(device);
  at::Tensor mask = at::tensor(flat_mask, long_cpu).view({batch, longest}).to(device);
  at::Tensor positions = (mask.cumsum(-1) - 1).clamp_min(0);

  // Tokens each row has seen, for the repetition penalty: its real prompt tokens, then what it generates.
  at::Tensor seen;
  if (config.repetition_penalty != 1.0) {
    // transformers also penalizes the pad id of left-padded rows (it looks at the padded input_ids); a row here is
    // penalized for its own tokens only, so padding does not change what a row generates.
    seen = at::zeros({batch, vocab}, at::TensorOptions().dtype(at::kBool).device(device));
    for (int64_t r = 0; r < batch; ++r) {
      at::Tensor row_ids = at::tensor(prompts[r], long_cpu).to(device);
      seen[r].index_fill_(0, row_ids, true);
    }
  }
  const bool sampling = config.do_sample && config.temperature > 0;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(config.seed);

  std::vector<GeneratedSequence> out(batch);
  std::vector<bool> finished(batch, false);
  std::set<int64_t> eos(config.eos_token_ids.begin(), config.eos_token_ids.end());

  // Room for the prompt and up to 256 new tokens at once; past that the cache doubles, so a large max_new_tokens
  // costs memory only when rows actually run that long.
  KvCache cache(longest + std::min<int64_t>(config.max_new_tokens, 256));
  auto next_logits = [&](const at::Tensor& new_ids, const at::Tensor& new_positions) -> at::Tensor {
    if (!config.use_cache) return model.Forward(ids, mask, positions).select(1, -1);
    const int64_t max_position = new_positions.max().item<int64_t>();
    if (!cache.empty() && !model.CacheValidUpTo(cache, max_position)) {
      // longrope switched factor lists: every cached key was rotated with the other one.
      cache.Clear();
      return model.ForwardWithCache(ids, mask, positions, cache, 1).select(1, -1);
    }
    return model.ForwardWithCache(new_ids, mask, new_positions, cache, 1).select(1, -1);
  };

  at::Tensor logits = next_logits(ids, positions);
  for (int64_t step = 0; step < config.max_new_tokens; ++step) {
    at::Tensor scores = logits.to(at::kFloat);
    if (seen.defined()) scores = ApplyRepetitionPenalty(scores, seen, config.repetition_penalty);
    at::Tensor next;
    if (sampling) {
      if (config.temperature != 1.0) scores = scores / config.temperature;
      if (config.top_k > 0) scores = ApplyTopK(scores, config.top_k);
      if (config.top_p < 1.0) scores = ApplyTopP(scores, config.top_p);
      at::Tensor probs = scores.softmax(-1).to(at::kCPU);
      next = at::multinomial(probs, 1, /*replacement=*/false, generator).squeeze(1);
    } else {
      next = scores.argmax(-1).to(at::kCPU);
    }
    std::vector<int64_t> chosen(next.data_ptr<int64_t>(), next.data_ptr<int64_t>() + batch);

    for (int64_t r = 0; r < batch; ++r) {
      GeneratedSequence& row = out[r];
      if (finished[r]) {
        chosen[r] = pad;
        row.tokens.push_back(pad);
        continue;
      }
      row.tokens.push_back(chosen[r]);
      ++row.length;
      if (eos.count(chosen[r]) != 0) {
        finished[r] = true;
        row.finish_reason = FinishReason::kEos;
      } else if (!config.stop_strings.empty()) {
        // Any stop string in the new text is new at this step: an earlier one would have ended the row already.
        auto [which, offset] = FindStopString(decode(row.tokens), config.stop_strings);
        if (which >= 0) {
          finished[r] = true;
          row.finish_reason = FinishReason::kStopString;
          row.stop_string = config.stop_strings[which];
          row.stop_string_offset = offset;
        }
      }
    }
    const bool all_done = std::all_of(finished.begin(), finished.end(), [](bool f) { return f; });
    if (all_done || step + 1 == config.max_new_tokens) break;

    // The next step's input: the chosen tokens (pad for finished rows, which transformers also keeps attending to).
    at::Tensor new_ids = at::tensor(chosen, long_cpu).view({batch, 1}).to(device);
    at::Tensor new_positions = positions.narrow(1, positions.size(1) - 1, 1) + 1;
    if (seen.defined()) {
      std::vector<int64_t> rows, tokens;  // rows that generated this step's token themselves
      for (int64_t r = 0; r < batch; ++r) {
        if (out[r].length == static_cast<int64_t>(out[r].tokens.size())) {
          rows.push_back(r);
          tokens.push_back(chosen[r]);
        }
      }
      seen.index_put_({at::tensor(rows, long_cpu).to(device), at::tensor(tokens, long_cpu).to(device)},
                      at::scalar_tensor(true, seen.options()));
    }
    ids = at::cat({ids, new_ids}, 1);
    mask = at::cat({mask, at::ones({batch, 1}, mask.options())}, 1);
    positions = at::cat({positions, new_positions}, 1);
    logits = next_logits(new_ids, new_positions);
  }
  return out;
}

}  // namespace tuneforge
