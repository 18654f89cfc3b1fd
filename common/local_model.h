// Validates a local Hugging Face model directory (config.json + safetensors checkpoint) without loading
// weights, and fingerprints its files; the listing/fingerprint helpers are shared with adapter dirs.
#ifndef TUNEFORGE_COMMON_LOCAL_MODEL_H_
#define TUNEFORGE_COMMON_LOCAL_MODEL_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model_config.h"

namespace tuneforge {

struct LocalFile {
  std::string path;    // relative to the directory, '/'-separated
  int64_t size = 0;    // bytes
  std::string sha256;  // lowercase hex
  // What stat(2) said when the directory was listed (of a symlink's target): with the size, what
  // LocalModelInspector compares to tell that a file has not changed since it was hashed.
  uint64_t device = 0, inode = 0;
  int64_t mtime_ns = 0, ctime_ns = 0;  // since the epoch
};

struct LocalModelInfo {
  std::string directory;
  std::vector<LocalFile> files;  // sorted by path
  std::string fingerprint;       // DirectoryFingerprint(files)
  std::string config_json;       // config.json as read
  ModelArchitecture arch;
};

// Regular files under `directory`, sorted by path, with sizes but no sha256 yet. Hidden entries (".git",
// ".cache", ...) are skipped. A symlink whose target resolves outside `directory` is PERMISSION_DENIED
// naming it; a dangling one NOT_FOUND; one to a directory inside is skipped (its files are listed under
// their real path); sockets, FIFOs and devices are INVALID_ARGUMENT.
absl::StatusOr<std::vector<LocalFile>> ListDirectoryFiles(const std::string& directory);

// Fills in the sha256 of every file (streaming).
absl::Status HashDirectoryFiles(const std::string& directory, std::vector<LocalFile>& files);

// sha256 over, for each file in the given order (sorted by path): path, '\0', decimal size, '\0',
// sha256 hex, '\n'.
std::string DirectoryFingerprint(const std::vector<LocalFile>& files);

// Reads a small text file of the directory listed in `files` (config.json, an index, ...).
// NOT_FOUND when it is not listed.
absl::StatusOr<std::string> ReadDirectoryTextFile(const std::string& directory, const std::vector<LocalFile>& files,
                                                  const std::string& relative);

// `directory` is already canonical and confined by the caller. Requires config.json and a safetensors
// checkpoint (model.safetensors, else the shards of model.safetensors.index.json) whose tensors are exactly
// ExpectedWeightShapes of the config; other files are listed. Content errors are INVALID_ARGUMENT naming
// the file and tensor, missing files NOT_FOUND.
absl::StatusOr<LocalModelInfo> InspectLocalModelDirectory(const std::string& directory);

// InspectLocalModelDirectory with a memory of recent answers: while a fresh listing of a directory shows the same
// files with the same device, inode, size, mtime and ctime as when it was inspected, the earlier answer is returned
// without reading or hashing anything (the stat check git's index and make rely on). An inspection is remembered
// only when every file had been unchanged for kSettledSeconds before it started, so that an edit right after it
// cannot share the timestamps it saw (file systems store times at a granularity of up to 2 s). Thread-safe.
class LocalModelInspector {
 public:
  static constexpr int kSettledSeconds = 2;
  explicit LocalModelInspector(size_t capacity = 64) : capacity_(capacity) {}

  absl::StatusOr<LocalModelInfo> Inspect(const std::string& directory);

 private:
  const size_t capacity_;  // directories remembered
  std::mutex mu_;
  std::map<std::string, LocalModelInfo> remembered_;  // by directory
};

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_LOCAL_MODEL_H_
