// Fine-tune settings: each config section read key by key (unknown keys reported), Hugging Face's defaults, checks
// that name the key, and PEFT's target module names for the model.
#include "services/trainer/train/fine_tune_settings.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "services/trainer/model/device.h"

namespace tuneforge {

using Json = nlohmann::json;

namespace {

// Reads one config section ("lora" or "training"), remembering which keys it looked at so that the rest can be
// reported as ignored. null counts as absent.
class SectionReader {
 public:
  SectionReader(const Json& section, std::string name) : section_(section), name_(std::move(name)) {}

  absl::Status CheckObject() const {
    if (section_.is_null() || section_.is_object()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(name_, " must be a JSON object of settings, got ", section_.dump().substr(0, 80)));
  }

  const Json* Find(const char* key) {
    seen_.insert(key);
    if (!section_.is_object()) return nullptr;
    auto it = section_.find(key);
    if (it == section_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  absl::Status Fail(const char* key, std::string_view requirement, const Json& got) const {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ".", key, " must be ", std::string(requirement), ", got ", got.dump().substr(0, 80)));
  }

  // Whole numbers, also when written as 3.0.
  template <typename Pred>
  absl::Status Int(const char* key, int64_t* out, std::string_view requirement, Pred ok) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    int64_t value = 0;
    if (v->is_number_integer()) {
      value = v->get<int64_t>();
    } else if (v->is_number_float() && std::isfinite(v->get<double>()) &&
               v->get<double>() == std::floor(v->get<double>()) && std::fabs(v->get<double>()) < 9e15) {
      value = static_cast<int64_t>(v->get<double>());
    } else {
      return Fail(key, requirement, *v);
    }
    if (!ok(value)) return Fail(key, requirement, *v);
    *out = value;
    return absl::OkStatus();
  }

  template <typename Pred>
  absl::Status Number(const char* key, double* out, std::string_view requirement, Pred ok) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number() || !std::isfinite(v->get<double>()) || !ok(v->get<double>())) {
      return Fail(key, requirement, *v);
    }
    *out = v->get<double>();
    return absl::OkStatus();
  }

  absl::Status Bool(const char* key, bool* out) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_boolean()) return Fail(key, "true or false", *v);
    *out = v->get<bool>();
    return absl::OkStatus();
  }

  absl::Status OneOf(const char* key, std::string* out, const std::vector<std::string>& accepted) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    const std::string requirement = absl::StrCat("one of ", absl::StrJoin(accepted, ", "));
    if (!v->is_string()) return Fail(key, requirement, *v);
    const std::string value = v->get<std::string>();
    if (std::find(accepted.begin(), accepted.end(), value) == accepted.end()) return Fail(key, requirement, *v);
    *out = value;
    return absl::OkStatus();
  }

  void Unknown(std::vector<std::string>* out) const {
    if (out == nullptr || !section_.is_object()) return;
    for (const auto& [key, value] : section_.items()) {
      if (seen_.count(key) == 0) out->push_back(absl::StrCat(name_, ".", key));
    }
  }

 private:
  const Json& section_;
  std::string name_;
  std::set<std::string> seen_;
};

absl::Status ParseLoraSection(const Json& lora, FineTuneSettings& s, std::vector<std::string>* ignored) {
  SectionReader r(lora, "lora");
  RETURN_IF_ERROR(r.CheckObject());
  RETURN_IF_ERROR(
      r.Int("r", &s.lora_r, "an integer >= 1 (the LoRA rank, e.g. 8 or 16)", [](int64_t v) { return v >= 1; }));
  RETURN_IF_ERROR(r.Number("lora_alpha", &s.lora_alpha, "a number > 0", [](double v) { return v > 0; }));
  RETURN_IF_ERROR(
      r.Number("lora_dropout", &s.lora_dropout, "a probability in [0, 1)", [](double v) { return v >= 0 && v < 1; }));
  RETURN_IF_ERROR(r.Bool("use_rslora", &s.use_rslora));
  if (const Json* t = r.Find("target_modules"); t != nullptr) {
    constexpr char kRequirement[] =
        "a non-empty list of module names (e.g. [\"q_proj\", \"v_proj\"]) or \"all-linear\"";
    if (t->is_string()) {
      if (t->get<std::string>() != "all-linear") return r.Fail("target_modules", kRequirement, *t);
      s.target_modules = {"all-linear"};
    } else if (t->is_array() && !t->empty()) {
      s.target_modules.clear();
      for (const Json& m : *t) {
        if (!m.is_string() || m.get<std::string>().empty()) return r.Fail("target_modules", kRequirement, *t);
        s.target_modules.push_back(m.get<std::string>());
      }
    } else {
      return r.Fail("target_modules", kRequirement, *t);
    }
  }
  r.Unknown(ignored);
  return absl::OkStatus();
}

absl::Status ParseTrainingSection(const Json& training, FineTuneSettings& s, std::vector<std::string>* ignored) {
  SectionReader r(training, "training");
  RETURN_IF_ERROR(r.CheckObject());
  auto positive = [](int64_t v) { return v >= 1; };
  auto non_negative = [](int64_t v) { return v >= 0; };
  RETURN_IF_ERROR(r.Int("num_epochs", &s.num_epochs, "a whole number of epochs >= 1", positive));
  RETURN_IF_ERROR(r.Int("max_steps", &s.max_steps, "-1 (no limit) or a number of optimizer steps >= 1",
                        [](int64_t v) { return v == -1 || v >= 1; }));
  RETURN_IF_ERROR(
      r.Number("learning_rate", &s.learning_rate, "a number > 0 (e.g. 2e-4 for LoRA)", [](double v) { return v > 0; }));
  RETURN_IF_ERROR(r.OneOf("lr_scheduler", &s.lr_scheduler, {"constant", "linear", "cosine"}));
  RETURN_IF_ERROR(r.Int("warmup_steps", &s.warmup_steps, "an integer >= 0", non_negative));
  RETURN_IF_ERROR(r.Number("warmup_ratio", &s.warmup_ratio, "a fraction of the steps in [0, 1]",
                           [](double v) { return v >= 0 && v <= 1; }));
  RETURN_IF_ERROR(r.Int("per_device_batch_size", &s.per_device_batch_size, "an integer >= 1", positive));
  RETURN_IF_ERROR(r.Int("gradient_accumulation_steps", &s.gradient_accumulation_steps, "an integer >= 1", positive));
  RETURN_IF_ERROR(r.Int("max_seq_len", &s.max_seq_len, "a number of tokens >= 2", [](int64_t v) { return v >= 2; }));
  RETURN_IF_ERROR(r.Number("weight_decay", &s.weight_decay, "a number >= 0", [](double v) { return v >= 0; }));
  RETURN_IF_ERROR(r.Number("max_grad_norm", &s.max_grad_norm, "a number >= 0 (0 turns clipping off)",
                           [](double v) { return v >= 0; }));
  RETURN_IF_ERROR(
      r.Number("adam_beta1", &s.adam_beta1, "a number in [0, 1)", [](double v) { return v >= 0 && v < 1; }));
  RETURN_IF_ERROR(
      r.Number("adam_beta2", &s.adam_beta2, "a number in [0, 1)", [](double v) { return v >= 0 && v < 1; }));
  RETURN_IF_ERROR(r.Number("adam_epsilon", &s.adam_epsilon, "a number >= 0", [](double v) { return v >= 0; }));
  RETURN_IF_ERROR(r.Int("seed", &s.seed, "an integer >= 0", non_negative));
  RETURN_IF_ERROR(r.OneOf("dtype", &s.dtype, {"fp32", "bf16", "fp16"}));
  if (const Json* d = r.Find("device"); d != nullptr) {
    if (!d->is_string()) return r.Fail("device", "auto, cpu, cuda or cuda:N", *d);
    auto parsed = ParseDeviceRequest(d->get<std::string>());
    if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat("training.", parsed.status().message()));
    s.device = d->get<std::string>();
  }
  RETURN_IF_ERROR(r.Bool("train_on_input", &s.train_on_input));
  RETURN_IF_ERROR(r.OneOf("optimizer", &s.optimizer, {"adamw", "adamw_8bit"}));
  RETURN_IF_ERROR(r.Bool("packing", &s.packing));
  RETURN_IF_ERROR(r.Bool("padding_free", &s.padding_free));
  RETURN_IF_ERROR(r.Bool("gradient_checkpointing", &s.gradient_checkpointing));
  RETURN_IF_ERROR(r.Bool("activation_offload", &s.activation_offload));
  if (s.activation_offload && !s.gradient_checkpointing) {
    return absl::InvalidArgumentError(
        "training.activation_offload moves the inputs of checkpointed layers to host memory, so it needs "
        "training.gradient_checkpointing: true; set that too, or remove activation_offload");
  }
  RETURN_IF_ERROR(r.Bool("chunked_loss", &s.chunked_loss));
  RETURN_IF_ERROR(r.OneOf("attn_implementation", &s.attn_implementation, {"sdpa", "eager"}));
  RETURN_IF_ERROR(r.Int("save_steps", &s.save_steps, "an integer >= 0 (0 saves only at epoch ends)", non_negative));
  RETURN_IF_ERROR(r.Bool("eval_every_epoch", &s.eval_every_epoch));
  RETURN_IF_ERROR(r.Int("logging_steps", &s.logging_steps, "an integer >= 1", positive));
  RETURN_IF_ERROR(r.Bool("full_finetune", &s.full_finetune));
  r.Unknown(ignored);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ResolveTargetModules(const std::vector<std::string>& requested,
                                                              const ModelArchitecture& arch) {
  const auto shapes = LoraTargetShapes(arch);
  std::set<std::string> out;
  if (requested.empty()) {
    if (shapes.count("qkv_proj") != 0) {
      out.insert("qkv_proj");
    } else {
      out = {"q_proj", "v_proj"};
    }
  }
  for (const std::string& m : requested) {
    if (m == "all-linear") {
      for (const auto& [name, shape] : shapes) out.insert(name);
      continue;
    }
    if (shapes.count(m) == 0) {
      std::vector<std::string> names;
      for (const auto& [name, shape] : shapes) names.push_back(name);
      return absl::InvalidArgumentError(absl::StrCat("lora.target_modules: '", m, "' is not a linear layer of ",
                                                     arch.family, " models; choose from ", absl::StrJoin(names, ", "),
                                                     " or \"all-linear\""));
    }
    out.insert(m);
  }
  return std::vector<std::string>(out.begin(), out.end());
}


Json FineTuneSettings::ToJson() const {
  Json lora = {{"r", lora_r},
               {"lora_alpha", lora_alpha},
               {"lora_dropout", lora_dropout},
               {"target_modules", target_modules},
               {"use_rslora", use_rslora}};
  Json training = {{"num_epochs", num_epochs},
                   {"max_steps", max_steps},
                   {"learning_rate", learning_rate},
                   {"lr_scheduler", lr_scheduler},
                   {"warmup_steps", warmup_steps},
                   {"warmup_ratio", warmup_ratio},
                   {"per_device_batch_size", per_device_batch_size},
                   {"gradient_accumulation_steps", gradient_accumulation_steps},
                   {"max_seq_len", max_seq_len},
                   {"weight_decay", weight_decay},
                   {"max_grad_norm", max_grad_norm},
                   {"adam_beta1", adam_beta1},
                   {"adam_beta2", adam_beta2},
                   {"adam_epsilon", adam_epsilon},
                   {"seed", seed},
                   {"dtype", dtype},
                   {"device", device},
                   {"train_on_input", train_on_input},
                   {"optimizer", optimizer},
                   {"packing", packing},
                   {"padding_free", padding_free},
                   {"gradient_checkpointing", gradient_checkpointing},
                   {"activation_offload", activation_offload},
                   {"chunked_loss", chunked_loss},
                   {"attn_implementation", attn_implementation},
                   {"save_steps", save_steps},
                   {"eval_every_epoch", eval_every_epoch},
                   {"logging_steps", logging_steps},
                   {"full_finetune", full_finetune}};
  return Json{{"lora", lora}, {"training", training}};
}

absl::StatusOr<FineTuneSettings> ParseFineTuneSettings(const Json& lora, const Json& training,
                                                       std::vector<std::string>* ignored_keys) {
  FineTuneSettings s;
  RETURN_IF_ERROR(ParseLoraSection(lora, s, ignored_keys));
  RETURN_IF_ERROR(ParseTrainingSection(training, s, ignored_keys));
  return s;
}

}  // namespace tuneforge
