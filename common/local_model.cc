// Local model directories: listing and fingerprinting files, and checking that config.json and the
// safetensors checkpoint describe the same model.
#include "common/local_model.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/safetensors_file.h"
#include "common/safetensors_header.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr char kConfig[] = "config.json";
constexpr char kGenerationConfig[] = "generation_config.json";
constexpr const char* kSingleCheckpoint = kSafetensorsSingleFile;
constexpr const char* kShardIndex = kSafetensorsIndexFile;
constexpr uintmax_t kMaxTextFileSize = 64 << 20;

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

bool IsListed(const std::vector<LocalFile>& files, std::string_view relative) {
  return std::any_of(files.begin(), files.end(), [&](const LocalFile& f) { return f.path == relative; });
}

// True when `path` is `root` or below it (both canonical).
bool IsInside(const fs::path& path, const fs::path& root) {
  auto [root_end, unused] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return root_end == root.end();
}

// Checkpoint tensors HF loads without complaint that ExpectedWeightShapes does not list: the rotary
// inv_freq buffers older Llama conversions saved, and an lm_head that the config ties to the embedding.
bool IsIgnorableWeight(const ModelArchitecture& arch, const TensorInfo& t) {
  if (absl::EndsWith(t.name, ".rotary_emb.inv_freq")) return true;
  return arch.tie_word_embeddings && t.name == "lm_head.weight" &&
         t.shape == std::vector<int64_t>{arch.vocab_size, arch.hidden_size};
}

bool IsFloatingDtype(std::string_view dtype) {
  return dtype == "F32" || dtype == "F16" || dtype == "BF16" || dtype == "F64";
}

struct CheckpointTensor {
  TensorInfo info;
  std::string file;  // the shard that holds it
};

// Reads the shards named by model.safetensors.index.json, each holding exactly the tensors mapped to it.
absl::Status ReadShardedCheckpoint(const std::string& directory, const std::vector<LocalFile>& files,
                                   std::map<std::string, CheckpointTensor>* tensors) {
  ASSIGN_OR_RETURN(std::string index_text, ReadDirectoryTextFile(directory, files, kShardIndex));
  ASSIGN_OR_RETURN(SafetensorsIndex index, ParseSafetensorsIndex(index_text, kShardIndex));
  for (const auto& [shard, names] : index.shards) {
    if (!IsListed(files, shard)) {
      return absl::NotFoundError(absl::StrCat(kShardIndex, ": shard '", shard, "' (holding '", *names.begin(),
                                              "') is not in the model directory; download the missing shard"));
    }
    ASSIGN_OR_RETURN(SafetensorsHeader header, ReadSafetensorsHeader((fs::path(directory) / shard).string(), shard));
    RETURN_IF_ERROR(CheckShardMatchesIndex(index, shard, header, kShardIndex, shard));
    for (TensorInfo& t : header.tensors) {
      std::string name = t.name;
      (*tensors)[name] = CheckpointTensor{std::move(t), shard};
    }
  }
  return absl::OkStatus();
}

// The union of the checkpoint's tensors must be exactly what config.json describes.
absl::Status CheckWeightsMatchConfig(const ModelArchitecture& arch,
                                     const std::map<std::string, CheckpointTensor>& tensors) {
  const std::map<std::string, std::vector<int64_t>> expected = ExpectedWeightShapes(arch);
  const std::string model =
      absl::StrCat(arch.family, " model (", arch.num_hidden_layers, " layers, hidden_size ", arch.hidden_size, ")");
  std::vector<std::string> missing;
  std::vector<const CheckpointTensor*> unexpected;
  for (const auto& [name, shape] : expected) {
    if (tensors.count(name) == 0) missing.push_back(name);
  }
  for (const auto& [name, t] : tensors) {
    if (expected.count(name) == 0 && !IsIgnorableWeight(arch, t.info)) unexpected.push_back(&t);
  }
  if (!missing.empty() || !unexpected.empty()) {
    std::string what;
    if (!missing.empty()) {
      absl::StrAppend(&what, "tensor '", missing.front(), "' ", ShapeString(expected.at(missing.front())),
                      " is missing");
      if (missing.size() > 1) absl::StrAppend(&what, " (and ", missing.size() - 1, " more)");
    }
    if (!unexpected.empty()) {
      absl::StrAppend(&what, what.empty() ? "" : "; ", unexpected.front()->file, " holds unexpected tensor '",
                      unexpected.front()->info.name, "'");
      if (unexpected.size() > 1) absl::StrAppend(&what, " (and ", unexpected.size() - 1, " more)");
    }
    return absl::InvalidArgumentError(absl::StrCat("the weights do not match config.json, which describes a ", model,
                                                   ": ", what, "; use the config.json that belongs to these weights"));
  }
  for (const auto& [name, t] : tensors) {
    auto it = expected.find(name);
    if (it == expected.end()) continue;
    if (t.info.shape != it->second) {
      return absl::InvalidArgumentError(absl::StrCat(
          t.file, ": tensor '", name, "' has shape ", ShapeString(t.info.shape), " but config.json (", model,
          ") needs ", ShapeString(it->second), "; use the config.json that belongs to these weights"));
    }
    if (!IsFloatingDtype(t.info.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(t.file, ": tensor '", name, "' has dtype ", t.info.dtype,
                                                     "; tuneforge needs unquantized F32, F16, BF16 or F64 weights"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<LocalFile>> ListDirectoryFiles(const std::string& directory) {
  std::error_code ec;
  const fs::file_status root_status = fs::status(directory, ec);
  if (ec || !fs::exists(root_status)) {
    return absl::NotFoundError(absl::StrCat("directory '", directory, "' does not exist"));
  }
  if (!fs::is_directory(root_status)) {
    return absl::InvalidArgumentError(absl::StrCat("'", directory, "' is not a directory"));
  }
  const fs::path root = fs::canonical(directory, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot resolve '", directory, "': ", ec.message()));

  std::vector<LocalFile> files;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  const fs::recursive_directory_iterator end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    const std::string relative = path.lexically_relative(root).generic_string();
    if (path.filename().string().front() == '.') {
      if (it->is_directory(ec) && !it->is_symlink(ec)) it.disable_recursion_pending();
      continue;
    }
    const fs::file_status link_status = it->symlink_status(ec);
    if (ec) break;
    fs::path target = path;
    if (fs::is_symlink(link_status)) {
      const fs::path resolved = fs::weakly_canonical(path, ec);
      if (ec) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", relative, "' is a symlink that cannot be resolved (", ec.message(), "); remove it"));
      }
      if (!IsInside(resolved, root)) {
        return absl::PermissionDeniedError(absl::StrCat("'", relative, "' is a symlink to '",
                                                        fs::read_symlink(path, ec).string(),
                                                        "' outside the directory; copy the file in instead"));
      }
      if (!fs::exists(resolved, ec)) {
        return absl::NotFoundError(
            absl::StrCat("'", relative, "' is a symlink to a missing file; remove it or restore its target"));
      }
      // A linked directory inside the root is listed under its real path already.
      if (fs::is_directory(resolved, ec)) continue;
      target = resolved;
    } else if (fs::is_directory(link_status)) {
      continue;
    }
    struct stat st;
    if (::stat(target.c_str(), &st) != 0) {
      ec = std::error_code(errno, std::generic_category());
      break;
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat("'", relative, "' is not a regular file; remove it"));
    }
    LocalFile& file = files.emplace_back();
    file.path = relative;
    file.size = static_cast<int64_t>(st.st_size);
    file.device = st.st_dev;
    file.inode = st.st_ino;
    file.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    file.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  }
  if (ec) {
    if (ec == std::errc::permission_denied) {
      return absl::PermissionDeniedError(absl::StrCat("cannot read '", directory, "': ", ec.message()));
    }
    return absl::InternalError(absl::StrCat("cannot list '", directory, "': ", ec.message()));
  }
  std::sort(files.begin(), files.end(), [](const LocalFile& a, const LocalFile& b) { return a.path < b.path; });
  return files;
}

absl::Status HashDirectoryFiles(const std::string& directory, std::vector<LocalFile>& files) {
  for (LocalFile& f : files) {
    ASSIGN_OR_RETURN(f.sha256, Sha256File((fs::path(directory) / f.path).string()));
  }
  return absl::OkStatus();
}

std::string DirectoryFingerprint(const std::vector<LocalFile>& files) {
  Sha256 h;
  for (const LocalFile& f : files) {
    h.Update(f.path);
    h.Update(std::string_view("\0", 1));
    h.Update(std::to_string(f.size));
    h.Update(std::string_view("\0", 1));
    h.Update(f.sha256);
    h.Update("\n");
  }
  return h.HexDigest();
}

absl::StatusOr<std::string> ReadDirectoryTextFile(const std::string& directory, const std::vector<LocalFile>& files,
                                                  const std::string& relative) {
  auto it = std::find_if(files.begin(), files.end(), [&](const LocalFile& f) { return f.path == relative; });
  if (it == files.end()) {
    return absl::NotFoundError(absl::StrCat(relative, " is not in '", directory, "'"));
  }
  if (static_cast<uintmax_t>(it->size) > kMaxTextFileSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(relative, ": is ", it->size, " bytes, larger than the ", kMaxTextFileSize, " bytes we accept"));
  }
  std::ifstream in(fs::path(directory) / relative, std::ios::binary);
  if (!in.is_open()) {
    return absl::PermissionDeniedError(absl::StrCat(relative, ": cannot open it in '", directory, "'"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return absl::DataLossError(absl::StrCat(relative, ": read error in '", directory, "'"));
  }
  return text.str();
}

namespace {

// InspectLocalModelDirectory once the directory is listed.
absl::StatusOr<LocalModelInfo> InspectListedModelDirectory(const std::string& directory, std::vector<LocalFile> files) {
  LocalModelInfo info;
  info.directory = directory;
  info.files = std::move(files);
  if (!IsListed(info.files, kConfig)) {
    return absl::NotFoundError(
        absl::StrCat("config.json is not in '", directory, "'; a model directory needs the transformers config.json"));
  }
  ASSIGN_OR_RETURN(info.config_json, ReadDirectoryTextFile(directory, info.files, kConfig));
  std::string generation_config;
  if (IsListed(info.files, kGenerationConfig)) {
    ASSIGN_OR_RETURN(generation_config, ReadDirectoryTextFile(directory, info.files, kGenerationConfig));
  }
  ASSIGN_OR_RETURN(info.arch, ParseModelConfig(info.config_json, generation_config, kConfig));

  // transformers prefers model.safetensors over an index when both exist; so do we.
  std::map<std::string, CheckpointTensor> tensors;
  if (IsListed(info.files, kSingleCheckpoint)) {
    ASSIGN_OR_RETURN(SafetensorsHeader header,
                     ReadSafetensorsHeader((fs::path(directory) / kSingleCheckpoint).string(), kSingleCheckpoint));
    for (TensorInfo& t : header.tensors) {
      std::string name = t.name;
      tensors[name] = CheckpointTensor{std::move(t), kSingleCheckpoint};
    }
  } else if (IsListed(info.files, kShardIndex)) {
    RETURN_IF_ERROR(ReadShardedCheckpoint(directory, info.files, &tensors));
  } else {
    const bool has_bin =
        IsListed(info.files, "pytorch_model.bin") || IsListed(info.files, "pytorch_model.bin.index.json");
    return absl::NotFoundError(absl::StrCat("neither model.safetensors nor model.safetensors.index.json is in '",
                                            directory, "'",
                                            has_bin ? "; tuneforge reads safetensors only: convert pytorch_model.bin "
                                                      "with save_pretrained(safe_serialization=True)"
                                                    : "; the directory needs the model weights in safetensors format"));
  }
  RETURN_IF_ERROR(CheckWeightsMatchConfig(info.arch, tensors));

  RETURN_IF_ERROR(HashDirectoryFiles(directory, info.files));
  info.fingerprint = DirectoryFingerprint(info.files);
  return info;
}

bool SameStamps(const std::vector<LocalFile>& a, const std::vector<LocalFile>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const LocalFile& x, const LocalFile& y) {
    return x.path == y.path && x.size == y.size && x.device == y.device && x.inode == y.inode &&
           x.mtime_ns == y.mtime_ns && x.ctime_ns == y.ctime_ns;
  });
}

}  // namespace

absl::StatusOr<LocalModelInfo> InspectLocalModelDirectory(const std::string& directory) {
  ASSIGN_OR_RETURN(std::vector<LocalFile> files, ListDirectoryFiles(directory));
  return InspectListedModelDirectory(directory, std::move(files));
}

absl::StatusOr<LocalModelInfo> LocalModelInspector::Inspect(const std::string& directory) {
  const int64_t started_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  ASSIGN_OR_RETURN(std::vector<LocalFile> files, ListDirectoryFiles(directory));
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = remembered_.find(directory);
    if (it != remembered_.end() && SameStamps(it->second.files, files)) return it->second;
  }
  ASSIGN_OR_RETURN(LocalModelInfo info, InspectListedModelDirectory(directory, std::move(files)));
  const int64_t settled_before_ns = started_ns - int64_t{kSettledSeconds} * 1000000000;
  const bool settled = std::all_of(info.files.begin(), info.files.end(), [&](const LocalFile& f) {
    return f.mtime_ns < settled_before_ns && f.ctime_ns < settled_before_ns;
  });
  if (settled) {
    std::lock_guard<std::mutex> lock(mu_);
    if (remembered_.size() >= capacity_ && remembered_.count(directory) == 0) remembered_.erase(remembered_.begin());
    remembered_[directory] = info;
  }
  return info;
}

}  // namespace tuneforge
