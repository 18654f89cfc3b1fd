// The schema table of each config type and the validator that reads it. Struct numbers arrive as doubles,
// so integer keys accept whole doubles (16.0) and are stored as JSON integers.
#include "services/metadata/config_schema.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tuneforge {

namespace {

enum class Kind {
  kInt,            // integer in [min, max] (bounds may be open)
  kNumber,         // any number in [min, max] (bounds may be open)
  kBool,
  kEnum,           // one of `allowed`
  kMaxSteps,       // -1 or an integer in [min, max]
  kTargetModules,  // non-empty list of distinct names from `allowed`, or "all-linear"
  kDevice,         // "auto", "cpu", "cuda" or "cuda:N"
  kStop,           // 1-16 strings of 1-256 characters
};

struct KeySpec {
  std::string key;
  Kind kind;
  double min = 0;
  bool min_open = false;
  double max = 0;
  bool max_open = false;
  std::vector<std::string> allowed;
};

KeySpec Int(std::string key, double min, double max) { return {std::move(key), Kind::kInt, min, false, max, false, {}}; }
KeySpec Number(std::string key, double min, bool min_open, double max, bool max_open) {
  return {std::move(key), Kind::kNumber, min, min_open, max, max_open, {}};
}
KeySpec Bool(std::string key) { return {std::move(key), Kind::kBool, 0, false, 0, false, {}}; }
KeySpec Enum(std::string key, std::vector<std::string> allowed) {
  return {std::move(key), Kind::kEnum, 0, false, 0, false, std::move(allowed)};
}
KeySpec Special(std::string key, Kind kind) { return {std::move(key), kind, 0, false, 0, false, {}}; }

constexpr double kInt32Max = 2147483647;

const std::vector<std::string>& LoraModuleNames() {
  static const auto* names = new std::vector<std::string>{"q_proj",    "k_proj",  "v_proj",   "o_proj",      "gate_proj",
                                                          "up_proj",   "down_proj", "qkv_proj", "gate_up_proj"};
  return *names;
}

const std::vector<KeySpec>* SchemaFor(const std::string& type) {
  static const auto* lora = new std::vector<KeySpec>{
      Int("r", 1, 1024),
      Number("lora_alpha", 0, true, 100000, false),
      Number("lora_dropout", 0, false, 1, true),
      {"target_modules", Kind::kTargetModules, 0, false, 0, false, LoraModuleNames()},
      Bool("use_rslora"),
      Enum("bias", {"none"}),
  };
  static const auto* training = new std::vector<KeySpec>{
      Int("num_epochs", 1, 1000),
      {"max_steps", Kind::kMaxSteps, 1, false, 1e9, false, {}},
      Number("learning_rate", 0, true, 1, false),
      Enum("lr_scheduler", {"constant", "linear", "cosine"}),
      Int("warmup_steps", 0, 1e9),
      Number("warmup_ratio", 0, false, 1, true),
      Int("per_device_batch_size", 1, 4096),
      Int("gradient_accumulation_steps", 1, 65536),
      Int("max_seq_len", 8, 1048576),
      Number("weight_decay", 0, false, 1, false),
      Number("max_grad_norm", 0, false, 1e6, false),
      Number("adam_beta1", 0, false, 1, true),
      Number("adam_beta2", 0, false, 1, true),
      Number("adam_epsilon", 0, true, 1, false),
      Int("seed", 0, kInt32Max),
      Enum("dtype", {"fp32", "bf16", "fp16"}),
      Special("device", Kind::kDevice),
      Bool("train_on_input"),
      Enum("optimizer", {"adamw", "adamw_8bit"}),
      Bool("packing"),
      Bool("padding_free"),
      Bool("gradient_checkpointing"),
      Bool("activation_offload"),
      Bool("chunked_loss"),
      Enum("attn_implementation", {"sdpa", "eager"}),
      Int("save_steps", 0, 1e9),
      Bool("eval_every_epoch"),
      Int("logging_steps", 1, 1e6),
      Bool("full_finetune"),
  };
  static const auto* generation = new std::vector<KeySpec>{
      Int("max_new_tokens", 1, 131072),
      Number("temperature", 0, false, 100, false),
      Number("top_p", 0, true, 1, false),
      Int("top_k", 0, 1000000),
      Number("repetition_penalty", 0, true, 100, false),
      Bool("do_sample"),
      Int("seed", 0, kInt32Max),
      Special("stop", Kind::kStop),
  };
  static const auto* quantization = new std::vector<KeySpec>{
      Enum("method", {"none", "bnb_4bit", "bnb_8bit"}),
      Enum("quant_type", {"nf4", "fp4"}),
      Enum("compute_dtype", {"fp32", "bf16", "fp16"}),
      Bool("double_quant"),
  };
  if (type == "lora") return lora;
  if (type == "training") return training;
  if (type == "generation") return generation;
  if (type == "quantization") return quantization;
  return nullptr;
}

// Shortest text that reads back as the same double ("16", "0.05", "1e-08").
std::string FormatNumber(double x) {
  if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 1e15) return absl::StrCat(static_cast<int64_t>(x));
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

std::string Range(const KeySpec& spec) {
  return absl::StrCat(spec.min_open ? "(" : "[", FormatNumber(spec.min), ", ", FormatNumber(spec.max),
                      spec.max_open ? ")" : "]");
}

std::string Quoted(const std::vector<std::string>& names) {
  std::vector<std::string> quoted;
  for (const auto& n : names) quoted.push_back(absl::StrCat("\"", n, "\""));
  return absl::StrJoin(quoted, ", ");
}

std::string Expected(const KeySpec& spec) {
  switch (spec.kind) {
    case Kind::kInt:
      return absl::StrCat("an integer in ", Range(spec));
    case Kind::kNumber:
      return absl::StrCat("a number in ", Range(spec));
    case Kind::kBool:
      return "true or false";
    case Kind::kEnum:
      return spec.allowed.size() == 1 ? absl::StrCat("\"", spec.allowed[0], "\"")
                                      : absl::StrCat("one of ", Quoted(spec.allowed));
    case Kind::kMaxSteps:
      return absl::StrCat("-1 (no limit) or an integer in ", Range(spec));
    case Kind::kTargetModules:
      return absl::StrCat("a non-empty list of distinct module names from ", absl::StrJoin(spec.allowed, ", "),
                          ", or the string \"all-linear\"");
    case Kind::kDevice:
      return "\"auto\", \"cpu\", \"cuda\" or \"cuda:N\" (N a GPU index)";
    case Kind::kStop:
      return "a list of 1 to 16 strings of 1 to 256 characters";
  }
  return "";
}

std::string Show(const nlohmann::json& value) {
  std::string text = value.is_number() ? FormatNumber(value.get<double>())
                                       : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > 80) text = absl::StrCat(text.substr(0, 77), "...");
  return text;
}

std::string KindOf(const nlohmann::json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "a boolean";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "a list";
  return "an object";
}

// Keys come from the request; keep messages short.
std::string Truncated(const std::string& key) {
  return key.size() > 80 ? absl::StrCat(key.substr(0, 77), "...") : key;
}

size_t Utf8Length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool InRange(double x, const KeySpec& spec) {
  if (spec.min_open ? !(x > spec.min) : !(x >= spec.min)) return false;
  if (spec.max_open ? !(x < spec.max) : !(x <= spec.max)) return false;
  return true;
}

bool IsWhole(double x) { return std::isfinite(x) && x == std::floor(x) && std::fabs(x) <= 9007199254740992.0; }

// Validates one value; on success returns it normalised.
absl::StatusOr<nlohmann::json> CheckValue(const KeySpec& spec, const nlohmann::json& value, const std::string& path) {
  auto wrong_kind = [&]() {
    if (value.is_null()) return absl::InvalidArgumentError(absl::StrCat(path, " is null; expected ", Expected(spec)));
    return absl::InvalidArgumentError(
        absl::StrCat(path, " = ", Show(value), " is ", KindOf(value), "; expected ", Expected(spec)));
  };
  switch (spec.kind) {
    case Kind::kInt:
    case Kind::kMaxSteps: {
      if (!value.is_number()) return wrong_kind();
      const double x = value.get<double>();
      if (!IsWhole(x)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, " = ", Show(value), " is not an integer; expected ", Expected(spec)));
      }
      if (!(spec.kind == Kind::kMaxSteps && x == -1) && !InRange(x, spec)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, " = ", Show(value), " is out of range; expected ", Expected(spec)));
      }
      return nlohmann::json(static_cast<int64_t>(x));
    }
    case Kind::kNumber: {
      if (!value.is_number()) return wrong_kind();
      const double x = value.get<double>();
      if (!std::isfinite(x) || !InRange(x, spec)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, " = ", Show(value), " is out of range; expected ", Expected(spec)));
      }
      if (IsWhole(x) && std::fabs(x) < 1e15) return nlohmann::json(static_cast<int64_t>(x));
      return nlohmann::json(x);
    }
    case Kind::kBool:
      if (!value.is_boolean()) return wrong_kind();
      return value;
    case Kind::kEnum: {
      if (!value.is_string()) return wrong_kind();
      for (const auto& a : spec.allowed) {
        if (value.get<std::string>() == a) return value;
      }
      return absl::InvalidArgumentError(
          absl::StrCat(path, " = ", Show(value), " is not accepted; expected ", Expected(spec)));
    }
    case Kind::kDevice: {
      if (!value.is_string()) return wrong_kind();
      const std::string d = value.get<std::string>();
      bool ok = d == "auto" || d == "cpu" || d == "cuda";
      if (!ok && d.size() > 5 && d.size() <= 9 && d.compare(0, 5, "cuda:") == 0) {
        ok = d.find_first_not_of("0123456789", 5) == std::string::npos;
      }
      if (!ok) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, " = ", Show(value), " is not a device; expected ", Expected(spec)));
      }
      return value;
    }
    case Kind::kTargetModules: {
      if (value.is_string()) {
        if (value.get<std::string>() == "all-linear") return value;
        return absl::InvalidArgumentError(
            absl::StrCat(path, " = ", Show(value), " is not accepted; expected ", Expected(spec)));
      }
      if (!value.is_array()) return wrong_kind();
      if (value.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(path, " is an empty list; expected ", Expected(spec)));
      }
      std::set<std::string> seen;
      for (size_t i = 0; i < value.size(); ++i) {
        const std::string item_path = absl::StrCat(path, "[", i, "]");
        const nlohmann::json& item = value[i];
        bool known = false;
        if (item.is_string()) {
          for (const auto& a : spec.allowed) known = known || item.get<std::string>() == a;
        }
        if (!known) {
          return absl::InvalidArgumentError(absl::StrCat(item_path, " = ", Show(item),
                                                         " is not a module name; expected ", Expected(spec)));
        }
        if (!seen.insert(item.get<std::string>()).second) {
          return absl::InvalidArgumentError(absl::StrCat(path, " lists ", Show(item), " twice; expected ",
                                                         Expected(spec)));
        }
      }
      return value;
    }
    case Kind::kStop: {
      if (!value.is_array()) return wrong_kind();
      if (value.empty() || value.size() > 16) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, " has ", value.size(), " entries; expected ", Expected(spec)));
      }
      for (size_t i = 0; i < value.size(); ++i) {
        const nlohmann::json& item = value[i];
        const size_t length = item.is_string() ? Utf8Length(item.get<std::string>()) : 0;
        if (!item.is_string() || length < 1 || length > 256) {
          return absl::InvalidArgumentError(absl::StrCat(
              path, "[", i, "] = ", Show(item),
              item.is_string() ? absl::StrCat(" has ", length, " characters") : absl::StrCat(" is ", KindOf(item)),
              "; expected ", Expected(spec)));
        }
      }
      return value;
    }
  }
  return wrong_kind();
}

double NumberOr(const nlohmann::json& object, const char* key, double fallback) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : fallback;
}

// Rules that involve more than one key.
absl::Status CheckCombinations(const std::string& type, const nlohmann::json& content, const std::string& field) {
  if (type == "training") {
    if (NumberOr(content, "warmup_steps", 0) > 0 && NumberOr(content, "warmup_ratio", 0) > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".warmup_steps and ", field, ".warmup_ratio are both set; give only one of them (or set the other to 0)"));
    }
    auto flag = [&](const char* key) {
      auto it = content.find(key);
      return it != content.end() && it->is_boolean() && it->get<bool>();
    };
    if (flag("activation_offload") && !flag("gradient_checkpointing")) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".activation_offload moves the inputs of checkpointed layers to host memory; it needs ", field,
          ".gradient_checkpointing: true (set it, or remove activation_offload)"));
    }
  }
  if (type == "quantization") {
    auto method_it = content.find("method");
    const std::string method = method_it == content.end() ? "" : method_it->get<std::string>();
    for (const char* key : {"quant_type", "double_quant"}) {
      if (content.contains(key) && method != "bnb_4bit") {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ".", key, " applies only with method \"bnb_4bit\" (method is ",
            method.empty() ? "not set" : absl::StrCat("\"", method, "\""), "); remove ", key,
            " or set method to \"bnb_4bit\""));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& ConfigTypeNames() {
  static const auto* names = new std::vector<std::string>{"lora", "training", "generation", "quantization"};
  return *names;
}

bool IsConfigType(const std::string& type) { return SchemaFor(type) != nullptr; }

std::vector<std::string> ConfigKeys(const std::string& type) {
  std::vector<std::string> keys;
  if (const auto* schema = SchemaFor(type)) {
    for (const auto& spec : *schema) keys.push_back(spec.key);
  }
  return keys;
}

absl::StatusOr<nlohmann::json> ValidateConfigContent(const std::string& type, const nlohmann::json& content,
                                                     const std::string& field) {
  const std::vector<KeySpec>* schema = SchemaFor(type);
  if (schema == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("type '", type, "' is not a config type; use one of ",
                                                   absl::StrJoin(ConfigTypeNames(), ", ")));
  }
  const std::string known = absl::StrJoin(ConfigKeys(type), ", ");
  if (!content.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be a JSON object with keys among: ", known));
  }
  if (content.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is empty; a ", type, " config needs at least one of: ", known));
  }
  nlohmann::json normalised = nlohmann::json::object();
  for (auto it = content.begin(); it != content.end(); ++it) {
    const std::string path = absl::StrCat(field, ".", Truncated(it.key()));
    const KeySpec* spec = nullptr;
    for (const auto& s : *schema) {
      if (s.key == it.key()) spec = &s;
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": unknown key for a ", type, " config; known keys: ", known));
    }
    absl::StatusOr<nlohmann::json> value = CheckValue(*spec, it.value(), path);
    if (!value.ok()) return value.status();
    normalised[it.key()] = *std::move(value);
  }
  absl::Status combined = CheckCombinations(type, normalised, field);
  if (!combined.ok()) return combined;
  return normalised;
}

absl::StatusOr<nlohmann::json> ValidateConfigValue(const std::string& type, const std::string& key,
                                                   const nlohmann::json& value, const std::string& field) {
  if (const std::vector<KeySpec>* schema = SchemaFor(type)) {
    for (const KeySpec& spec : *schema) {
      if (spec.key == key) return CheckValue(spec, value, field);
    }
  }
  return absl::InternalError(absl::StrCat("a ", type, " config has no key ", key));
}

}  // namespace tuneforge
