// A Hub dataset repo's configs, splits and data files, decided as the datasets library decides them: the card's
// `configs` first, then its default split patterns, then the module (file format) that most files have.
#include "common/hub_dataset_layout.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace tuneforge {

namespace {

using nlohmann::json;

// One path component against one pattern component ('*', '?', [...]; "**" inside a component acts as '*').
bool MatchComponent(absl::string_view pattern, absl::string_view name) {
  size_t p = 0, n = 0;
  size_t star_p = absl::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      while (p < pattern.size() && pattern[p] == '*') ++p;
      star_p = p;
      star_n = n;
      continue;
    }
    if (p < pattern.size() && pattern[p] == '[') {
      // A class: [abc], [a-z], [!abc] (or [^abc]); ']' right after the opening (or the '!') is a member.
      size_t q = p + 1;
      bool negate = false;
      if (q < pattern.size() && (pattern[q] == '!' || pattern[q] == '^')) {
        negate = true;
        ++q;
      }
      const size_t first = q;
      while (q < pattern.size() && (pattern[q] != ']' || q == first)) ++q;
      if (q < pattern.size()) {
        bool member = false;
        for (size_t i = first; i < q; ++i) {
          if (i + 2 < q && pattern[i + 1] == '-') {
            if (name[n] >= pattern[i] && name[n] <= pattern[i + 2]) member = true;
            i += 2;
          } else if (pattern[i] == name[n]) {
            member = true;
          }
        }
        if (member != negate) {
          p = q + 1;
          ++n;
          continue;
        }
      } else if (name[n] == '[') {  // no closing ']': a literal '['
        ++p;
        ++n;
        continue;
      }
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
      continue;
    }
    if (star_p == absl::string_view::npos) return false;
    p = star_p;
    n = ++star_n;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool MatchParts(const std::vector<absl::string_view>& pattern, size_t pi, const std::vector<absl::string_view>& path,
                size_t ni) {
  if (pi == pattern.size()) return ni == path.size();
  if (pattern[pi] == "**") {
    // Anywhere but at the end "**" may match no component; at the end it matches at least one ("data/**" does
    // not match "data").
    const size_t first = pi + 1 == pattern.size() ? ni + 1 : ni;
    for (size_t k = first; k <= path.size(); ++k) {
      if (MatchParts(pattern, pi + 1, path, k)) return true;
    }
    return false;
  }
  return ni < path.size() && MatchComponent(pattern[pi], path[ni]) && MatchParts(pattern, pi + 1, path, ni + 1);
}

std::vector<absl::string_view> Parts(absl::string_view s) {
  std::vector<absl::string_view> parts = absl::StrSplit(s, '/', absl::SkipEmpty());
  std::vector<absl::string_view> out;
  for (absl::string_view p : parts) {
    if (p != ".") out.push_back(p);
  }
  return out;
}

absl::string_view Basename(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// The suffixes of a file name with their dots: "train.JSONL.gz" -> {".JSONL", ".gz"} (lower-cased: {".jsonl", ".gz"}).
// The datasets library keeps and filters files by their suffixes as written, and lower-cases them only to count
// which format most files have.
std::vector<std::string> Suffixes(absl::string_view path, bool lower = false) {
  std::vector<std::string> out;
  std::vector<absl::string_view> pieces = absl::StrSplit(Basename(path), '.');
  for (size_t i = 1; i < pieces.size(); ++i) {
    out.push_back(absl::StrCat(".", lower ? absl::AsciiStrToLower(pieces[i]) : std::string(pieces[i])));
  }
  return out;
}

// The datasets library's packaged builders by file extension (lower case).
const std::map<std::string, std::string>& ExtensionModules() {
  static const auto* modules = [] {
    auto* m = new std::map<std::string, std::string>;
    const std::vector<std::pair<const char*, const char*>> table = {
        {"csv", ".csv .tsv"},
        {"json", ".json .jsonl .ndjson"},
        {"parquet", ".parquet .geoparquet .gpq"},
        {"arrow", ".arrow"},
        {"text", ".txt"},
        {"conll", ".conll .conllu"},
        {"webdataset", ".tar"},
        {"xml", ".xml"},
        {"hdf5", ".hdf5 .h5"},
        {"eval", ".eval"},
        {"harbor", ".toml .md"},
        {"lance", ".lance"},
        {"tsfile", ".tsfile"},
        {"vortex", ".vortex"},
        {"fasta", ".fa .fasta .fna .ffn .faa .frn .afa"},
        {"genbank", ".gb .gbk .genbank"},
        {"fastq", ".fq .fastq"},
        {"pdb", ".pdb .ent"},
        {"mmcif", ".cif .mmcif"},
        {"imagefolder",
         ".blp .bmp .dib .bufr .cur .pcx .dcx .dds .ps .eps .fit .fits .fli .flc .ftc .ftu .gbr .gif .grib .png .apng "
         ".jp2 .j2k .jpc .jpf .jpx .j2c .icns .ico .im .iim .tif .tiff .jfif .jpe .jpg .jpeg .msp .pcd .pxr .pbm .pgm "
         ".ppm .pnm .psd .bw .rgb .rgba .sgi .ras .tga .icb .vda .vst .webp .wmf .emf .xbm .xpm"},
        {"audiofolder",
         ".mpg .aiff .au .avr .caf .flac .htk .svx .mat4 .mat5 .mpc2k .ogg .paf .pvf .raw .rf64 .sd2 .sds .ircam .voc "
         ".w64 .wav .nist .wavex .wve .xi .mp3 .opus .3gp .3g2 .asf .flv .m4v .webm .f4v .wmv .wma .ogm .mxf .nut"},
        {"videofolder", ".mpeg .avi .mp4 .mov .mkv"},
        {"meshfolder", ".glb .gltf .ply .stl"},
        {"pdffolder", ".pdf"},
        {"niftifolder", ".nii"},
    };
    for (const auto& [module, extensions] : table) {
      for (absl::string_view ext : absl::StrSplit(extensions, ' ', absl::SkipEmpty())) (*m)[std::string(ext)] = module;
    }
    return m;
  }();
  return *modules;
}

// Extensions a data file may have at all (others, e.g. .py or .gitattributes, never count).
bool HasAllowedExtension(absl::string_view path) {
  for (const std::string& s : Suffixes(path)) {
    if (ExtensionModules().count(s) > 0 || s == ".zip" || s == ".idx" || s == ".manifest" || s == ".txn") return true;
  }
  return false;
}

bool IsIgnoredFile(absl::string_view basename) {
  static const std::set<absl::string_view>* names = new std::set<absl::string_view>{
      "README.md", "config.json", "dataset_info.json", "dataset_infos.json", "dummy_data.zip", "dataset_dict.json"};
  return names->count(basename) > 0;
}

int CountHidden(const std::vector<absl::string_view>& parts, size_t count) {
  int n = 0;
  for (size_t i = 0; i < count && i < parts.size(); ++i) {
    const absl::string_view p = parts[i];
    if (!p.empty() && p[0] == '.' && p.find_first_not_of('.') != absl::string_view::npos) ++n;
  }
  return n;
}

int CountSpecialDirs(const std::vector<absl::string_view>& parts) {
  int n = 0;
  for (size_t i = 0; i + 1 < parts.size(); ++i) n += absl::StartsWith(parts[i], "__") ? 1 : 0;
  return n;
}

// The files matching `pattern` (relative to the repo root), as the datasets library's resolve_pattern keeps them:
// files only, not README.md and the infos files (unless the pattern names one), hidden parts and "__" folders only
// when the pattern has as many, and (with `check_extension`) with an allowed data file extension. The default split
// patterns are tried without the extension check, as the datasets library tries them.
std::vector<std::string> Resolve(const std::string& pattern, const std::vector<std::string>& paths,
                                 bool check_extension = true) {
  const std::vector<absl::string_view> pattern_parts = Parts(pattern);
  const absl::string_view pattern_base = pattern_parts.empty() ? absl::string_view() : pattern_parts.back();
  std::vector<std::string> out;
  for (const std::string& path : paths) {
    const std::vector<absl::string_view> parts = Parts(path);
    if (parts.empty() || !MatchParts(pattern_parts, 0, parts, 0)) continue;
    if (IsIgnoredFile(parts.back()) && parts.back() != pattern_base) continue;
    if (CountSpecialDirs(parts) != CountSpecialDirs(pattern_parts)) continue;
    if (CountHidden(parts, parts.size()) != CountHidden(pattern_parts, pattern_parts.size())) continue;
    if (check_extension && !HasAllowedExtension(path)) continue;
    out.push_back(path);
  }
  return out;
}

std::string JoinPath(const std::string& dir, const std::string& pattern) {
  if (dir.empty()) return pattern;
  std::string d = dir;
  while (!d.empty() && d.back() == '/') d.pop_back();
  std::string p = pattern;
  while (absl::StartsWith(p, "./")) p = p.substr(2);
  return d.empty() ? p : absl::StrCat(d, "/", p);
}

bool HasMagic(absl::string_view pattern) { return pattern.find_first_of("*?[") != absl::string_view::npos; }

constexpr const char* kDefaultSplits[] = {"train", "validation", "test"};

// Split keywords the datasets library looks for in directory and file names.
const std::vector<std::pair<std::string, std::vector<std::string>>>& SplitKeywords() {
  static const auto* keywords = new std::vector<std::pair<std::string, std::vector<std::string>>>{
      {"train", {"train", "training"}},
      {"validation", {"validation", "valid", "dev", "val"}},
      {"test", {"test", "testing", "eval", "evaluation"}},
  };
  return *keywords;
}

using SplitPatterns = std::vector<std::pair<std::string, std::vector<std::string>>>;

SplitPatterns KeywordPatterns(const std::vector<std::string>& bases) {
  constexpr char kSep[] = "[-._ 0-9]";
  SplitPatterns out;
  for (const auto& [split, words] : SplitKeywords()) {
    std::vector<std::string> patterns;
    for (const std::string& word : words) {
      for (const std::string& base : bases) {
        patterns.push_back(absl::StrReplaceAll(base, {{"{keyword}", word}, {"{sep}", kSep}}));
      }
    }
    out.push_back({split, patterns});
  }
  return out;
}

bool IsSplitName(absl::string_view s) {
  // \w+(\.\w+)*
  if (s.empty() || s.front() == '.' || s.back() == '.' || absl::StrContains(s, "..")) return false;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '_' || c == '.' || u >= 0x80)) {
      return false;
    }
  }
  return true;
}

// "train-00000-of-00003.parquet" -> "train" (the text before the last "-DDDDD-of-DDDDD"), "" when it has none.
std::string ShardSplit(absl::string_view basename) {
  auto digits = [&](size_t at, size_t n) {
    if (at + n > basename.size()) return false;
    for (size_t i = 0; i < n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(basename[at + i]))) return false;
    }
    return true;
  };
  for (size_t i = basename.size(); i-- > 1;) {
    if (basename[i] == '-' && digits(i + 1, 5) && basename.substr(i + 6, 4) == "-of-" && digits(i + 10, 5)) {
      return std::string(basename.substr(0, i));
    }
  }
  return "";
}

// The datasets library's get_data_patterns for a folder of the repo: split -> patterns (relative to the root).
absl::StatusOr<SplitPatterns> DefaultPatterns(const std::string& base, const std::vector<std::string>& paths,
                                              absl::string_view where) {
  const std::string shard_pattern = "data/*-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]*.*";
  std::vector<std::string> shards = Resolve(JoinPath(base, shard_pattern), paths, /*check_extension=*/false);
  if (!shards.empty()) {
    std::set<std::string> splits;
    for (const std::string& f : shards) splits.insert(ShardSplit(Basename(f)));
    for (const std::string& s : splits) {
      if (!IsSplitName(s)) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": the shard file names under ", JoinPath(base, "data/"),
                                                       " give the split name '", s,
                                                       "', which is not a split name (letters, digits, '_' and '.')"));
      }
    }
    SplitPatterns out;
    for (const char* s : kDefaultSplits) {
      if (splits.erase(s) > 0) out.push_back({s, {}});
    }
    for (const std::string& s : splits) out.push_back({s, {}});
    for (auto& [split, patterns] : out) {
      patterns.push_back(absl::StrCat("data/", split, "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]*.*"));
    }
    return out;
  }
  const std::vector<SplitPatterns> candidates = {
      {{"logs", {"**/*.eval"}}},
      {{"test", {"**/task.toml", "**/instruction.md"}}},
      KeywordPatterns(
          {"**/{keyword}/**", "**/{keyword}{sep}*/**", "**/*{sep}{keyword}/**", "**/*{sep}{keyword}{sep}*/**"}),
      KeywordPatterns({"**/{keyword}{sep}*", "**/*{sep}{keyword}{sep}*"}),
      {{"train", {"**"}}},
  };
  for (const SplitPatterns& candidate : candidates) {
    SplitPatterns found;
    for (const auto& [split, patterns] : candidate) {
      for (const std::string& p : patterns) {
        if (!Resolve(JoinPath(base, p), paths, /*check_extension=*/false).empty()) {
          found.push_back({split, patterns});
          break;
        }
      }
    }
    if (!found.empty()) return found;
  }
  return absl::NotFoundError(absl::StrCat(where, ": no data files",
                                          base.empty() ? "" : absl::StrCat(" under ", base, "/"),
                                          "; the repo has no file with a data file extension"));
}

// The card's `data_files` as split -> patterns (the datasets library's sanitize_patterns).
absl::StatusOr<SplitPatterns> CardPatterns(const json& data_files, const std::string& where) {
  auto strings = [&](const json& v, const std::string& at) -> absl::StatusOr<std::vector<std::string>> {
    std::vector<std::string> out;
    if (v.is_string()) {
      out.push_back(v.get<std::string>());
    } else if (v.is_array()) {
      for (const json& s : v) {
        if (!s.is_string()) return absl::InvalidArgumentError(absl::StrCat(at, " must hold path patterns (strings)"));
        out.push_back(s.get<std::string>());
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(at, " must be a path pattern or a list of them"));
    }
    return out;
  };
  SplitPatterns out;
  if (data_files.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, " is a mapping; the datasets library takes a pattern, a list of patterns, or a list of "
        "{split, path}; fix the README's YAML"));
  }
  const auto is_object = [](const json& e) { return e.is_object(); };
  if (data_files.is_array() && std::any_of(data_files.begin(), data_files.end(), is_object)) {
    std::set<std::string> seen;
    for (const json& e : data_files) {
      if (!e.is_object() || e.size() != 2 || !e.contains("split") || !e.contains("path")) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, " entries must each be {split: NAME, path: PATTERN or [PATTERNS]}; got ", e.dump().substr(0, 120)));
      }
      const std::string split = e["split"].is_string() ? e["split"].get<std::string>() : e["split"].dump();
      if (!seen.insert(split).second) {
        return absl::InvalidArgumentError(absl::StrCat(where, " names the split '", split, "' twice"));
      }
      ASSIGN_OR_RETURN(std::vector<std::string> patterns, strings(e["path"], absl::StrCat(where, ".", split, ".path")));
      out.push_back({split, std::move(patterns)});
    }
    return out;
  }
  ASSIGN_OR_RETURN(std::vector<std::string> patterns, strings(data_files, where));
  out.push_back({"train", std::move(patterns)});
  return out;
}

// The datasets library's module for one split's files: the most common extension (metadata files last, then
// .parquet, .lance, .vortex, .arrow, .jsonl, .json, .csv on a draw, then the name), among the known ones.
std::string InferModule(const std::vector<std::string>& files) {
  static const std::set<std::string>* metadata_names = new std::set<std::string>{
      "metadata.csv", "metadata.jsonl", "metadata.json", "metadata.parquet"};
  std::map<std::pair<std::string, bool>, int> counts;
  for (const std::string& f : files) {
    const bool is_metadata = metadata_names->count(std::string(Basename(f))) > 0;
    for (const std::string& s : Suffixes(f, /*lower=*/true)) ++counts[{s, is_metadata}];
  }
  std::vector<std::pair<std::pair<std::string, bool>, int>> sorted(counts.begin(), counts.end());
  auto key = [](const std::pair<std::pair<std::string, bool>, int>& e) {
    const std::string& ext = e.first.first;
    return std::make_tuple(!e.first.second, e.second, ext == ".parquet", ext == ".lance", ext == ".vortex",
                           ext == ".arrow", ext == ".jsonl", ext == ".json", ext == ".csv", ext);
  };
  std::stable_sort(sorted.begin(), sorted.end(), [&](const auto& a, const auto& b) { return key(a) > key(b); });
  for (const auto& [ext_meta, count] : sorted) {
    auto it = ExtensionModules().find(ext_meta.first);
    if (it != ExtensionModules().end()) return it->second;
    if (ext_meta.first == ".zip") return "zip";
  }
  return "";
}

// Keeps the files with one of `module`'s extensions (or .zip), as the datasets library filters them.
std::vector<std::string> FilterModule(const std::vector<std::string>& files, const std::string& module) {
  std::vector<std::string> out;
  for (const std::string& f : files) {
    for (const std::string& s : Suffixes(f)) {
      auto it = ExtensionModules().find(s);
      if ((it != ExtensionModules().end() && it->second == module) || s == ".zip") {
        out.push_back(f);
        break;
      }
    }
  }
  return out;
}

// Why tuneforge cannot read a config's files, or "".
std::string Unreadable(const HubDataConfig& config, const json& params) {
  if (config.module != "json" && config.module != "csv" && config.module != "parquet") {
    return absl::StrCat("its files are read by the datasets library's '", config.module,
                        "' builder; tuneforge reads jsonl, json, csv and parquet files");
  }
  if (config.module == "csv" && params.is_object()) {
    for (const char* key : {"sep", "delimiter"}) {
      auto it = params.find(key);
      if (it != params.end() && (!it->is_string() || it->get<std::string>() != ",")) {
        return absl::StrCat("its csv files are read with ", key, " ", it->dump(),
                            "; tuneforge reads comma-separated files");
      }
    }
  }
  for (const HubDataSplit& s : config.splits) {
    for (const std::string& f : s.files) {
      const std::vector<std::string> suffixes = Suffixes(f, /*lower=*/true);
      const std::string last = suffixes.empty() ? "" : suffixes.back();
      if (last != ".jsonl" && last != ".ndjson" && last != ".json" && last != ".csv" && last != ".parquet") {
        return absl::StrCat("its file ", f, " is not a plain jsonl, json, csv or parquet file (compressed, ",
                            "archived or tab-separated files are not read)");
      }
    }
  }
  return "";
}

std::string FeatureType(const json& f) {
  if (!f.is_object()) return "mixed";
  if (f.contains("list") || f.contains("sequence") || f.contains("large_list")) return "list";
  if (f.contains("struct")) return "object";
  if (f.contains("class_label")) return "int";
  auto dtype = f.find("dtype");
  if (dtype == f.end() || !dtype->is_string()) return "mixed";
  const std::string t = dtype->get<std::string>();
  if (t == "string" || t == "large_string") return "string";
  if (t == "bool") return "bool";
  if (absl::StartsWith(t, "int") || absl::StartsWith(t, "uint")) return "int";
  if (absl::StartsWith(t, "float") || t == "double" || t == "half") return "float";
  if (t == "null") return "null";
  return "mixed";
}

// The card's dataset_info for `config` (a single object applies to the default config only when it names none).
const json* InfoFor(const json& card_data, const std::string& config) {
  if (!card_data.is_object()) return nullptr;
  auto it = card_data.find("dataset_info");
  if (it == card_data.end()) return nullptr;
  auto matches = [&](const json& info) {
    if (!info.is_object()) return false;
    auto name = info.find("config_name");
    return name == info.end() ? config == "default" : (name->is_string() && name->get<std::string>() == config);
  };
  if (it->is_object()) return matches(*it) ? &*it : nullptr;
  if (it->is_array()) {
    for (const json& info : *it) {
      if (matches(info)) return &info;
    }
  }
  return nullptr;
}

void ApplyInfo(const json& card_data, HubDataConfig& config) {
  const json* info = InfoFor(card_data, config.name);
  if (info == nullptr) return;
  auto features = info->find("features");
  if (features != info->end() && features->is_array()) {
    for (const json& f : *features) {
      if (f.is_object() && f.contains("name") && f["name"].is_string()) {
        config.features.push_back({f["name"].get<std::string>(), FeatureType(f)});
      }
    }
  }
  auto splits = info->find("splits");
  if (splits == info->end() || !splits->is_array()) return;
  for (const json& s : *splits) {
    if (!s.is_object() || !s.contains("name") || !s["name"].is_string()) continue;
    for (HubDataSplit& split : config.splits) {
      if (split.name != s["name"].get<std::string>()) continue;
      if (s.contains("num_examples") && s["num_examples"].is_number_integer()) {
        split.num_rows = s["num_examples"].get<int64_t>();
      }
      if (s.contains("num_bytes") && s["num_bytes"].is_number_integer()) {
        split.num_bytes = s["num_bytes"].get<int64_t>();
      }
    }
  }
}

}  // namespace

bool HubGlobMatch(std::string_view pattern, std::string_view path) {
  return MatchParts(Parts(absl::string_view(pattern.data(), pattern.size())), 0,
                    Parts(absl::string_view(path.data(), path.size())), 0);
}

absl::StatusOr<HubDatasetLayout> ResolveHubDatasetLayout(const std::vector<std::string>& paths,
                                                        const json& card_data, std::string_view field) {
  const std::string where(field);
  HubDatasetLayout layout;
  // (name, data_files or null, data_dir, is default, all parameters)
  struct Declared {
    std::string name;
    json data_files;
    std::string data_dir;
    bool is_default = false;
    json params;
  };
  std::vector<Declared> declared;
  const json* configs = nullptr;
  if (card_data.is_object()) {
    auto it = card_data.find("configs");
    if (it != card_data.end() && !it->is_null()) configs = &*it;
  }
  if (configs != nullptr) {
    if (!configs->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": the dataset card's `configs` must be a list of {config_name, data_files}; fix the README's YAML"));
    }
    std::set<std::string> names;
    for (const json& c : *configs) {
      if (!c.is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": an entry of the dataset card's `configs` is ",
                                                       c.dump().substr(0, 80), ", not {config_name, data_files}"));
      }
      Declared d;
      if (!c.contains("config_name") || !c["config_name"].is_string() || c["config_name"].get<std::string>().empty()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": an entry of the dataset card's `configs` has no "
                                                       "config_name; fix the README's YAML"));
      }
      d.name = c["config_name"].get<std::string>();
      if (!names.insert(d.name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": the dataset card declares the config '", d.name, "' twice"));
      }
      d.data_files = c.contains("data_files") ? c["data_files"] : json();
      if (c.contains("data_dir") && c["data_dir"].is_string()) d.data_dir = c["data_dir"].get<std::string>();
      d.is_default = c.contains("default") && c["default"].is_boolean() && c["default"].get<bool>();
      d.params = c;
      declared.push_back(std::move(d));
    }
    layout.from_card = !declared.empty();
  }
  if (declared.empty()) declared.push_back({"default", json(), "", false, json::object()});

  for (const Declared& d : declared) {
    if (d.is_default || d.name == "default" || declared.size() == 1) {
      if (!layout.default_config.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": the dataset card makes both '",
                                                       layout.default_config, "' and '", d.name,
                                                       "' the default config; fix the README's YAML"));
      }
      layout.default_config = d.name;
    }
  }

  // As the datasets library: with no default declared, a card whose dataset_info describes exactly one config makes
  // that config the default.
  if (layout.default_config.empty() && card_data.is_object() && card_data.contains("dataset_info")) {
    const json& info = card_data["dataset_info"];
    const json* only = info.is_object() ? &info : (info.is_array() && info.size() == 1 ? &info[0] : nullptr);
    if (only != nullptr && only->is_object()) {
      const std::string name = only->contains("config_name") && (*only)["config_name"].is_string()
                                   ? (*only)["config_name"].get<std::string>()
                                   : "default";
      for (const Declared& d : declared) {
        if (d.name == name) layout.default_config = name;
      }
    }
  }

  std::string card_module;  // the datasets library infers the builder once, from the card's first config
  for (const Declared& d : declared) {
    const std::string config_where = absl::StrCat(where, ": config '", d.name, "'");
    SplitPatterns patterns;
    if (d.data_files.is_null()) {
      ASSIGN_OR_RETURN(patterns, DefaultPatterns(d.data_dir, paths, config_where));
    } else {
      ASSIGN_OR_RETURN(patterns, CardPatterns(d.data_files, absl::StrCat(config_where, " data_files")));
    }
    HubDataConfig config;
    config.name = d.name;
    for (const auto& [split, split_patterns] : patterns) {
      HubDataSplit s;
      s.name = split;
      std::set<std::string> seen;
      for (const std::string& p : split_patterns) {
        const std::string full = JoinPath(d.data_dir, p);
        std::vector<std::string> files = Resolve(full, paths);
        if (files.empty() && !HasMagic(p)) {
          return absl::InvalidArgumentError(absl::StrCat(config_where, " names the data file '", full, "' for split '",
                                                         split, "', and the repo has no such file"));
        }
        for (std::string& f : files) {
          if (seen.insert(f).second) s.files.push_back(std::move(f));
        }
      }
      std::sort(s.files.begin(), s.files.end());
      config.splits.push_back(std::move(s));
    }
    if (d.data_files.is_null() &&
        std::all_of(config.splits.begin(), config.splits.end(),
                    [](const HubDataSplit& s) { return s.files.empty(); })) {
      return absl::NotFoundError(absl::StrCat(config_where, ": no data files",
                                              d.data_dir.empty() ? "" : absl::StrCat(" under ", d.data_dir, "/"),
                                              "; the repo has no file with a data file extension"));
    }
    std::set<std::string> modules;
    for (const HubDataSplit& s : config.splits) modules.insert(InferModule(s.files));
    if (modules.size() != 1 || modules.begin()->empty()) {
      for (const HubDataSplit& s : config.splits) {
        if (s.files.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(config_where, ": the patterns of split '", s.name,
                                                         "' match no data file; fix data_files in the README's YAML"));
        }
      }
      return absl::InvalidArgumentError(absl::StrCat(config_where, " mixes file formats across splits (",
                                                     absl::StrJoin(modules, ", "), ")"));
    }
    config.module = *modules.begin();
    if (layout.from_card) {
      if (card_module.empty()) card_module = config.module;
      config.module = card_module;
    } else {
      // Only the files of the inferred format, when the split patterns were the default ones.
      for (HubDataSplit& s : config.splits) s.files = FilterModule(s.files, config.module);
    }
    config.unreadable = Unreadable(config, d.params);
    ApplyInfo(card_data, config);
    layout.configs.push_back(std::move(config));
  }
  return layout;
}

absl::StatusOr<HubDatasetLayout> ResolveParquetConversionLayout(const std::vector<std::string>& paths,
                                                               const json& card_data, std::string_view field) {
  // config -> split -> files, in first-seen order of configs.
  std::vector<std::string> config_order;
  std::map<std::string, std::map<std::string, HubDataSplit>> found;
  for (const std::string& path : paths) {
    const std::vector<absl::string_view> parts = Parts(path);
    if (parts.size() < 2 || !absl::EndsWithIgnoreCase(parts.back(), ".parquet")) continue;
    const std::string config(parts[0]);
    std::string split;
    bool partial = false;
    if (parts.size() == 3) {  // {config}/{split}/NNNN.parquet
      split = std::string(parts[1]);
      if (absl::StartsWith(split, "partial-")) {
        partial = true;
        split = split.substr(8);
      }
    } else if (parts.size() == 2) {  // {config}/{name}-{split}[-NNNNN-of-NNNNN].parquet
      std::string stem(parts[1].substr(0, parts[1].size() - 8));
      const std::string sharded = ShardSplit(stem);
      if (!sharded.empty()) stem = sharded;
      const size_t dash = stem.rfind('-');
      if (dash == std::string::npos) continue;
      split = stem.substr(dash + 1);
    } else {
      continue;
    }
    if (!IsSplitName(split)) continue;
    if (found.count(config) == 0) config_order.push_back(config);
    HubDataSplit& s = found[config][split];
    s.name = split;
    s.partial = s.partial || partial;
    s.files.push_back(path);
  }
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat(std::string(field), ": the Hub's Parquet conversion (",
                                            kParquetConversionRevision,
                                            ") holds no Parquet file"));
  }
  std::set<std::string> card_defaults;
  if (card_data.is_object() && card_data.contains("configs") && card_data["configs"].is_array()) {
    for (const json& c : card_data["configs"]) {
      if (c.is_object() && c.value("default", false) == true && c.contains("config_name") &&
          c["config_name"].is_string()) {
        card_defaults.insert(c["config_name"].get<std::string>());
      }
    }
  }
  HubDatasetLayout layout;
  for (const std::string& name : config_order) {
    HubDataConfig config;
    config.name = name;
    config.module = "parquet";
    std::map<std::string, HubDataSplit>& splits = found[name];
    for (const char* s : kDefaultSplits) {
      auto it = splits.find(s);
      if (it == splits.end()) continue;
      config.splits.push_back(std::move(it->second));
      splits.erase(it);
    }
    for (auto& [split_name, s] : splits) config.splits.push_back(std::move(s));
    for (HubDataSplit& s : config.splits) std::sort(s.files.begin(), s.files.end());
    ApplyInfo(card_data, config);
    layout.configs.push_back(std::move(config));
  }
  for (const HubDataConfig& c : layout.configs) {
    if (card_defaults.count(c.name) > 0) layout.default_config = c.name;
  }
  if (layout.default_config.empty()) {
    for (const HubDataConfig& c : layout.configs) {
      if (c.name == "default" || layout.configs.size() == 1) layout.default_config = c.name;
    }
  }
  return layout;
}

}  // namespace tuneforge
