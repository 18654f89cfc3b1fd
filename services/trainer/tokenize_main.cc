// tuneforge-tokenize: encodes JSONL text lines with a tokenizer.json tokenizer, or checks the tokenizer against
// reference cases (the format of the shared tokenizers/cases.jsonl). Run with --help for the options.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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
    "  --tokenizer DIR        folder holding tokenizer.json (a path to the tokenizer.json file also works)\n"
    "  --no-special-tokens    do not apply the tokenizer's post-processor (no BOS such as <s> or\n"
    "                         <|begin_of_text|>); special-token strings spelled in the text still match\n"
    "  A line that is not a JSON object with a string \"text\" is answered with {\"error\": \"line N: ...\"};\n"
    "  lines {\"messages\": [...]} are answered with an error too (chat templates are not supported yet).\n"
    "  Blank lines are skipped. Exit code 1 when any line failed, 0 otherwise.\n"
    "\n"
    "Check mode (--check):\n"
    "  --check FILE           reference cases, one JSON object per line with the fields tokenizer, id, text,\n"
    "                         ids_no_special, ids_with_special, decoded, decoded_skip_special,\n"
    "                         decoded_no_special (the format of tokenizers/cases.jsonl)\n"
    "  --tokenizers DIR       folder with one sub-folder per tokenizer name used in FILE, each holding\n"
    "                         tokenizer.json\n"
    "  Prints the passing cases per tokenizer and the first mismatch in detail. Exit code 0 when every case\n"
    "  passes, 1 on any mismatch, 2 when FILE or a tokenizer cannot be read or FILE holds chat-template\n"
    "  cases (\"messages\"), which are not supported yet.\n"
    "\n"
    "  --help                 print this text\n";

// JSON text of `v`; invalid UTF-8 in strings is replaced rather than thrown.
std::string Dump(const nlohmann::json& v) { return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

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

// ---- encode mode ----

// Ids for one input line, or an error saying what is wrong with it.
absl::StatusOr<std::vector<int32_t>> EncodeLine(const Tokenizer& tok, const std::string& line, bool add_special) {
  nlohmann::json v = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return absl::InvalidArgumentError("not valid JSON; expected {\"text\": \"...\"}");
  if (!v.is_object()) return absl::InvalidArgumentError("expected a JSON object {\"text\": \"...\"}");
  if (v.contains("messages")) {
    return absl::UnimplementedError(
        "\"messages\" needs a chat template, and chat templates are not supported yet; send {\"text\": \"...\"}");
  }
  auto it = v.find("text");
  if (it == v.end()) return absl::InvalidArgumentError("missing field \"text\"; expected {\"text\": \"...\"}");
  if (!it->is_string()) return absl::InvalidArgumentError("field \"text\" must be a string");
  return tok.Encode(it->get_ref<const std::string&>(), add_special);
}

int RunEncode(const std::string& tokenizer_path, bool add_special) {
  auto tok = LoadTokenizer(tokenizer_path);
  if (!tok.ok()) {
    std::fprintf(stderr, "error: %s\n", tok.status().ToString().c_str());
    return kExitUnusable;
  }
  int failed = 0;
  long line_no = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto ids = EncodeLine(**tok, line, add_special);
    if (ids.ok()) {
      std::printf("{\"ids\":%s}\n", IdsText(*ids).c_str());
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
absl::StatusOr<std::string> CheckCase(const Tokenizer& tok, const nlohmann::json& c) {
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

int RunCheck(const std::string& cases_path, const std::string& tokenizers_dir) {
  std::ifstream in(cases_path);
  if (!in) {
    std::fprintf(stderr, "error: cannot open cases file %s; pass an existing file to --check\n", cases_path.c_str());
    return kExitUnusable;
  }
  std::map<std::string, std::unique_ptr<Tokenizer>> tokenizers;
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
    nlohmann::json c = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (c.is_discarded() || !c.is_object()) {
      std::fprintf(stderr, "error: %s is not a JSON object; fix or remove the line\n", where.c_str());
      return kExitUnusable;
    }
    if (c.contains("messages")) {
      std::fprintf(stderr,
                   "error: %s holds a chat-template case (\"messages\"); chat templates are not supported yet, "
                   "only text cases (the format of cases.jsonl) can be checked\n",
                   where.c_str());
      return kExitUnusable;
    }
    auto name_it = c.find("tokenizer");
    auto id_it = c.find("id");
    if (name_it == c.end() || !name_it->is_string() || id_it == c.end()) {
      std::fprintf(stderr, "error: %s needs a string field \"tokenizer\" and a field \"id\"\n", where.c_str());
      return kExitUnusable;
    }
    const std::string name = name_it->get<std::string>();
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
      std::fprintf(stderr, "error: %s: tokenizer name %s is not a folder name\n", where.c_str(), Dump(name).c_str());
      return kExitUnusable;
    }
    const std::string case_id = id_it->is_string() ? id_it->get<std::string>() : Dump(*id_it);
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
    auto diff = CheckCase(*tok_it->second, c);
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
        first_mismatch = "first mismatch: case " + case_id + ", tokenizer " + name + " (" + where +
                         "), text " + Dump(c.at("text")) + "\n" + *diff;
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
