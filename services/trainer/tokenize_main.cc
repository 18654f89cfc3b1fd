// tuneforge-tokenize: encodes JSONL text lines (or chat messages, through tokenizer_config.json's chat template) with
// a tokenizer.json tokenizer, or checks tokenizers against reference cases (cases.jsonl / chat_cases.jsonl format).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/trainer/tokenizer/chat_template.h"
#include "services/trainer/tokenizer/tokenizer.h"

namespace tuneforge {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;    // a mismatch (--check) or a bad input line (stdin mode)
constexpr int kExitUnusable = 2;  // bad arguments, unreadable or unsupported input

constexpr char kHelp[] =
    "usage:\n"
    "  tuneforge-tokenize --tokenizer DIR [--no-special-tokens] < input.jsonl\n"
    "  tuneforge-tokenize --check FILE --tokenizers DIR\n"
    "\n"
    "Encode mode (--tokenizer):\n"
    "  Reads JSON lines {\"text\": \"...\"} from stdin and writes one line {\"ids\": [...]} per input line.\n"
    "  A line {\"messages\": [...], \"add_generation_prompt\": bool, \"tools\": [...]} (the last two optional) is\n"
    "  rendered with the chat template of DIR/tokenizer_config.json (its bos_token/eos_token) and encoded\n"
    "  without adding special tokens (the template writes them); the answer is {\"ids\": [...], \"text\": \"...\"}.\n"
    "  --tokenizer DIR        folder holding tokenizer.json (a path to the tokenizer.json file also works)\n"
    "  --no-special-tokens    do not apply the tokenizer's post-processor (no BOS such as <s> or\n"
    "                         <|begin_of_text|>); special-token strings spelled in the text still match\n"
    "  A line that is not a JSON object with a string \"text\" or an array \"messages\", a template error\n"
    "  (raise_exception) or a tokenizer without a chat template is answered with {\"error\": \"line N: ...\"}.\n"
    "  Blank lines are skipped. Exit code 1 when any line failed, 0 otherwise.\n"
    "\n"
    "Check mode (--check):\n"
    "  --check FILE           reference cases, one JSON object per line with the fields tokenizer, id, text,\n"
    "                         ids_no_special, ids_with_special, decoded, decoded_skip_special,\n"
    "                         decoded_no_special (the format of tokenizers/cases.jsonl), or chat cases with\n"
    "                         tokenizer, conversation, messages, add_generation_prompt, tools (optional),\n"
    "                         bos_token, eos_token, rendered, ids, error (the format of chat_cases.jsonl);\n"
    "                         chat cases need tokenizer_config.json with a chat_template next to tokenizer.json\n"
    "  --tokenizers DIR       folder with one sub-folder per tokenizer name used in FILE, each holding\n"
    "                         tokenizer.json\n"
    "  Prints the passing cases per tokenizer and the first mismatch in detail. Exit code 0 when every case\n"
    "  passes, 1 on any mismatch, 2 when FILE, a tokenizer or its chat template cannot be read.\n"
    "\n"
    "  --help                 print this text\n";

using OJson = nlohmann::ordered_json;

// JSON text of `v`; invalid UTF-8 in strings is replaced rather than thrown.
template <typename J>
std::string Dump(const J& v) {
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
std::string Dump(const std::string& s) { return Dump(OJson(s)); }

std::string IdsText(const std::vector<int32_t>& ids) { return Dump(nlohmann::json(ids)); }

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// `path` is a folder holding tokenizer.json, or the tokenizer.json file itself.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path) {
  if (!Exists(path)) {
    return absl::NotFoundError("tokenizer folder " + path + " does not exist; pass a folder holding tokenizer.json");
  }
  const std::string file = IsDirectory(path) ? path + "/tokenizer.json" : path;
  if (!Exists(file)) {
    return absl::NotFoundError(file + " does not exist; the tokenizer folder must hold tokenizer.json");
  }
  return Tokenizer::FromFile(file);
}

// The folder of a --tokenizer/--tokenizers path (which may name tokenizer.json itself).
std::string TokenizerFolder(const std::string& path) {
  if (IsDirectory(path)) return path;
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

absl::StatusOr<std::shared_ptr<const ChatFormat>> LoadChat(const std::string& tokenizer_path) {
  auto format = LoadChatFormat(TokenizerFolder(tokenizer_path));
  if (!format.ok()) {
    if (format.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(std::string(format.status().message()) + "; send {\"text\": \"...\"} lines instead");
    }
    return format.status();
  }
  return std::make_shared<const ChatFormat>(*std::move(format));
}

// ---- encode mode ----

// The chat template of the --tokenizer folder, loaded on the first "messages" line (the outcome is kept).
struct LazyChat {
  std::string tokenizer_path;
  std::optional<absl::StatusOr<std::shared_ptr<const ChatFormat>>> loaded;
  const absl::StatusOr<std::shared_ptr<const ChatFormat>>& Get() {
    if (!loaded) loaded = LoadChat(tokenizer_path);
    return *loaded;
  }
};

// {"ids": [...], "text": "..."} for one chat line, or an error saying what is wrong with it.
absl::StatusOr<std::string> EncodeChatLine(const Tokenizer& tok, LazyChat& chat, const OJson& v) {
  const OJson& messages = v.at("messages");
  if (!messages.is_array()) return absl::InvalidArgumentError("field \"messages\" must be an array of messages");
  bool add_generation_prompt = false;
  if (auto it = v.find("add_generation_prompt"); it != v.end()) {
    if (!it->is_boolean()) return absl::InvalidArgumentError("field \"add_generation_prompt\" must be true or false");
    add_generation_prompt = it->get<bool>();
  }
  const OJson* tools = nullptr;
  if (auto it = v.find("tools"); it != v.end() && !it->is_null()) tools = &*it;
  const auto& setup = chat.Get();
  if (!setup.ok()) return setup.status();
  auto text = RenderChat(**setup, messages, add_generation_prompt, tools);
  if (!text.ok()) return absl::InvalidArgumentError("chat template: " + std::string(text.status().message()));
  auto ids = tok.Encode(*text, /*add_special_tokens=*/false);
  if (!ids.ok()) return ids.status();
  OJson out = OJson::object();
  out["ids"] = *ids;
  out["text"] = *text;
  return Dump(out);
}

// Ids for one input line, or an error saying what is wrong with it.
// The answer line for one input line, or an error saying what is wrong with it.
absl::StatusOr<std::string> EncodeLine(const Tokenizer& tok, LazyChat& chat, const std::string& line,
                                       bool add_special) {
  OJson v = OJson::parse(line, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return absl::InvalidArgumentError("not valid JSON; expected {\"text\": \"...\"}");
  if (!v.is_object()) return absl::InvalidArgumentError("expected a JSON object {\"text\": \"...\"}");
  if (v.contains("messages")) return EncodeChatLine(tok, chat, v);
  auto it = v.find("text");
  if (it == v.end()) return absl::InvalidArgumentError("missing field \"text\"; expected {\"text\": \"...\"}");
  if (!it->is_string()) return absl::InvalidArgumentError("field \"text\" must be a string");
  auto ids = tok.Encode(it->get_ref<const std::string&>(), add_special);
  if (!ids.ok()) return ids.status();
  return "{\"ids\":" + IdsText(*ids) + "}";
}

int RunEncode(const std::string& tokenizer_path, bool add_special) {
  auto tok = LoadTokenizer(tokenizer_path);
  if (!tok.ok()) {
    std::fprintf(stderr, "error: %s\n", tok.status().ToString().c_str());
    return kExitUnusable;
  }
  LazyChat chat{tokenizer_path, std::nullopt};
  int failed = 0;
  long line_no = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto ids = EncodeLine(**tok, chat, line, add_special);
    if (ids.ok()) {
      std::printf("%s\n", ids->c_str());
    } else {
      ++failed;
      nlohmann::json err = {{"error", "line " + std::to_string(line_no) + ": " + std::string(ids.status().message())}};
      std::printf("%s\n", Dump(err).c_str());
    }
    std::fflush(stdout);
  }
  if (failed > 0) {
    std::fprintf(stderr, "%d of %ld lines failed\n", failed, line_no);
    return kExitFailed;
  }
  return kExitOk;
}

// ---- check mode ----

struct Counts {
  int passed = 0;
  int total = 0;
};

// Compares one case with the tokenizer; returns an empty string when it matches, else what differed.
absl::StatusOr<std::string> CheckCase(const Tokenizer& tok, const OJson& c) {
  try {
    const std::string text = c.at("text").get<std::string>();
    const auto want_plain = c.at("ids_no_special").get<std::vector<int32_t>>();
    const auto want_with = c.at("ids_with_special").get<std::vector<int32_t>>();
    auto plain = tok.Encode(text, false);
    if (!plain.ok()) return "ids_no_special: encode failed: " + plain.status().ToString();
    if (*plain != want_plain) {
      return "ids_no_special:\n  expected " + IdsText(want_plain) + "\n  actual   " + IdsText(*plain);
    }
    auto with = tok.Encode(text, true);
    if (!with.ok()) return "ids_with_special: encode failed: " + with.status().ToString();
    if (*with != want_with) {
      return "ids_with_special:\n  expected " + IdsText(want_with) + "\n  actual   " + IdsText(*with);
    }
    const struct {
      const char* field;
      const std::vector<int32_t>* ids;
      bool skip_special;
    } decodes[] = {{"decoded", &want_with, false},
                   {"decoded_skip_special", &want_with, true},
                   {"decoded_no_special", &want_plain, false}};
    for (const auto& d : decodes) {
      auto got = tok.Decode(*d.ids, d.skip_special);
      if (!got.ok()) return std::string(d.field) + ": decode failed: " + got.status().ToString();
      const std::string want = c.at(d.field).get<std::string>();
      if (*got != want) {
        return std::string(d.field) + ":\n  expected " + Dump(want) + "\n  actual   " + Dump(*got);
      }
    }
    return std::string();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(std::string("a field is missing or has the wrong type: ") + e.what());
  }
}

// Compares one chat case (chat_cases.jsonl format); returns an empty string when it matches, else what differed.
absl::StatusOr<std::string> CheckChatCase(const Tokenizer& tok, const ChatFormat& chat, const OJson& c) {
  try {
    for (const char* field : {"bos_token", "eos_token"}) {
      const std::optional<std::string>& have =
          std::string(field) == "bos_token" ? chat.config.bos_token : chat.config.eos_token;
      const OJson& want = c.at(field);
      if (want.is_null() ? have.has_value() : have != want.get<std::string>()) {
        return std::string(field) + " (tokenizer_config.json):\n  expected " + Dump(want) + "\n  actual   " +
               (have ? Dump(OJson(*have)) : std::string("null"));
      }
    }
    const OJson* tools = c.contains("tools") && !c.at("tools").is_null() ? &c.at("tools") : nullptr;
    auto rendered = RenderChat(chat, c.at("messages"), c.at("add_generation_prompt").get<bool>(), tools);
    if (c.at("rendered").is_null()) {
      const std::string want_error = c.at("error").get<std::string>();
      if (rendered.ok()) {
        return "error:\n  expected " + Dump(OJson(want_error)) + "\n  actual   rendered " + Dump(OJson(*rendered));
      }
      if (rendered.status().message() != want_error) {
        return "error:\n  expected " + Dump(OJson(want_error)) + "\n  actual   " +
               Dump(OJson(std::string(rendered.status().message())));
      }
      return std::string();
    }
    const std::string want_text = c.at("rendered").get<std::string>();
    if (!rendered.ok()) {
      return "rendered: template failed: " + rendered.status().ToString();
    }
    if (*rendered != want_text) {
      return "rendered:\n  expected " + Dump(OJson(want_text)) + "\n  actual   " + Dump(OJson(*rendered));
    }
    const auto want_ids = c.at("ids").get<std::vector<int32_t>>();
    auto ids = tok.Encode(*rendered, /*add_special_tokens=*/false);
    if (!ids.ok()) return "ids: encode failed: " + ids.status().ToString();
    if (*ids != want_ids) return "ids:\n  expected " + IdsText(want_ids) + "\n  actual   " + IdsText(*ids);
    return std::string();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(std::string("a field is missing or has the wrong type: ") + e.what());
  }
}

int RunCheck(const std::string& cases_path, const std::string& tokenizers_dir) {
  std::ifstream in(cases_path);
  if (!in) {
    std::fprintf(stderr, "error: cannot open cases file %s; pass an existing file to --check\n", cases_path.c_str());
    return kExitUnusable;
  }
  std::map<std::string, std::unique_ptr<Tokenizer>> tokenizers;
  std::map<std::string, std::shared_ptr<const ChatFormat>> chats;
  std::vector<std::string> order;  // tokenizer names in order of first use
  std::map<std::string, Counts> counts;
  std::string first_mismatch;
  int mismatches = 0;
  long line_no = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = cases_path + " line " + std::to_string(line_no);
    OJson c = OJson::parse(line, nullptr, /*allow_exceptions=*/false);
    if (c.is_discarded() || !c.is_object()) {
      std::fprintf(stderr, "error: %s is not a JSON object; fix or remove the line\n", where.c_str());
      return kExitUnusable;
    }
    const bool is_chat = c.contains("messages");
    auto name_it = c.find("tokenizer");
    auto id_it = c.find(is_chat ? "conversation" : "id");
    if (name_it == c.end() || !name_it->is_string() || id_it == c.end()) {
      std::fprintf(stderr, "error: %s needs a string field \"tokenizer\" and a field \"%s\"\n", where.c_str(),
                   is_chat ? "conversation" : "id");
      return kExitUnusable;
    }
    const std::string name = name_it->get<std::string>();
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
      std::fprintf(stderr, "error: %s: tokenizer name %s is not a folder name\n", where.c_str(), Dump(name).c_str());
      return kExitUnusable;
    }
    std::string case_id = id_it->is_string() ? id_it->get<std::string>() : Dump(*id_it);
    if (is_chat) {
      auto gen = c.find("add_generation_prompt");
      if (gen != c.end() && gen->is_boolean() && gen->get<bool>()) case_id += "+gen";
    }
    auto tok_it = tokenizers.find(name);
    if (tok_it == tokenizers.end()) {
      auto tok = LoadTokenizer(tokenizers_dir + "/" + name);
      if (!tok.ok()) {
        std::fprintf(stderr, "error: %s uses tokenizer '%s' that cannot be loaded: %s\n", where.c_str(), name.c_str(),
                     tok.status().ToString().c_str());
        return kExitUnusable;
      }
      tok_it = tokenizers.emplace(name, std::move(tok).value()).first;
      order.push_back(name);
    }
    absl::StatusOr<std::string> diff;
    if (is_chat) {
      auto chat_it = chats.find(name);
      if (chat_it == chats.end()) {
        auto chat = LoadChat(tokenizers_dir + "/" + name);
        if (!chat.ok()) {
          std::fprintf(stderr, "error: %s uses tokenizer '%s' whose chat template cannot be loaded: %s\n",
                       where.c_str(), name.c_str(), std::string(chat.status().message()).c_str());
          return kExitUnusable;
        }
        chat_it = chats.emplace(name, *std::move(chat)).first;
      }
      diff = CheckChatCase(*tok_it->second, *chat_it->second, c);
    } else {
      diff = CheckCase(*tok_it->second, c);
    }
    if (!diff.ok()) {
      std::fprintf(stderr, "error: %s (case %s): %s\n", where.c_str(), case_id.c_str(),
                   std::string(diff.status().message()).c_str());
      return kExitUnusable;
    }
    Counts& n = counts[name];
    ++n.total;
    if (diff->empty()) {
      ++n.passed;
    } else {
      ++mismatches;
      if (first_mismatch.empty()) {
        first_mismatch = "first mismatch: case " + case_id + ", tokenizer " + name + " (" + where + "), " +
                         (is_chat ? "messages " + Dump(c.at("messages")) : "text " + Dump(c.at("text"))) + "\n" +
                         *diff;
      }
    }
  }
  if (order.empty()) {
    std::fprintf(stderr, "error: %s holds no cases\n", cases_path.c_str());
    return kExitUnusable;
  }
  for (const std::string& name : order) {
    std::printf("%s: %d/%d cases pass\n", name.c_str(), counts[name].passed, counts[name].total);
  }
  if (mismatches > 0) {
    std::printf("%s\n%d mismatching cases\n", first_mismatch.c_str(), mismatches);
    return kExitFailed;
  }
  std::printf("all cases pass (%zu tokenizers)\n", order.size());
  return kExitOk;
}

int Usage(const std::string& problem) {
  std::fprintf(stderr, "error: %s\n\n%s", problem.c_str(), kHelp);
  return kExitUnusable;
}

int Main(int argc, char** argv) {
  std::string tokenizer, check, tokenizers;
  bool add_special = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kHelp);
      return kExitOk;
    } else if (arg == "--no-special-tokens") {
      add_special = false;
    } else if (arg == "--tokenizer" || arg == "--check" || arg == "--tokenizers") {
      std::string* out = arg == "--tokenizer" ? &tokenizer : arg == "--check" ? &check : &tokenizers;
      if (!value(out)) return Usage(arg + " needs a value");
    } else {
      return Usage("unknown argument '" + arg + "'");
    }
  }
  if (!check.empty()) {
    if (!tokenizer.empty()) return Usage("--check and --tokenizer cannot be combined");
    if (tokenizers.empty()) return Usage("--check needs --tokenizers DIR");
    return RunCheck(check, tokenizers);
  }
  if (!tokenizers.empty()) return Usage("--tokenizers is only used with --check FILE");
  if (tokenizer.empty()) return Usage("pass --tokenizer DIR (encode stdin) or --check FILE --tokenizers DIR");
  return RunEncode(tokenizer, add_special);
}

}  // namespace
}  // namespace tuneforge

int main(int argc, char** argv) { return tuneforge::Main(argc, argv); }
