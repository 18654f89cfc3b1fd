// Memory-mapped .safetensors files (validated header before any data is touched), the reference writer, and
// sharded checkpoints (model.safetensors.index.json + model-0000i-of-0000n.safetensors).
#ifndef TUNEFORGE_COMMON_SAFETENSORS_FILE_H_
#define TUNEFORGE_COMMON_SAFETENSORS_FILE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/safetensors_header.h"

namespace tuneforge {

// A read-only mapping of a .safetensors file. Tensor bytes are little-endian and only as aligned as the file
// makes them (8 + header length); copy them (memcpy) rather than casting when alignment matters. The file must
// not be truncated while it is open (reading a truncated mapping raises SIGBUS).
class SafetensorsFile {
 public:
  // NOT_FOUND when `path` is missing, PERMISSION_DENIED when unreadable, INVALID_ARGUMENT (starting with
  // `label`, default `path`, and naming the tensor) when it is not a valid safetensors file.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path, std::string_view label = {});

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }

  // The bytes of tensor `name` inside the mapping; NOT_FOUND naming the tensor and the file when absent.
  absl::StatusOr<absl::Span<const uint8_t>> TensorBytes(std::string_view name) const;
  // The bytes of a tensor of header().
  absl::Span<const uint8_t> TensorBytes(const TensorInfo& info) const;

 private:
  SafetensorsFile() = default;

  std::string path_;
  std::string label_;
  SafetensorsHeader header_;
  std::map<std::string, const TensorInfo*, std::less<>> by_name_;
  const uint8_t* mapping_ = nullptr;
  uint64_t mapping_size_ = 0;
  const uint8_t* data_ = nullptr;  // mapping_ + 8 + header length
};

// A tensor to write: dtype name (SafetensorsDtypeSize), row-major shape, raw little-endian bytes whose size is
// product(shape) * dtype size: either `data`, or, when `fill` is set, what `fill` puts into `bytes` when the writer
// reaches the tensor (so a checkpoint larger than memory is produced one tensor at a time; `data` is ignored).
// The writer refuses a fill of another size (INVALID_ARGUMENT naming the tensor) and returns a fill error as is.
struct TensorToWrite {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string_view data;
  std::function<absl::Status(std::string* bytes)> fill = nullptr;
};

// Writes the reference layout: the 8-byte little-endian header length, the compact JSON header with
// "__metadata__" first (when `metadata` is not empty) then the tensors in the given order with contiguous
// data_offsets, padded with spaces to a multiple of 8 bytes, then the data. Validates names (non-empty, unique,
// valid UTF-8, not "__metadata__"), dtypes and sizes before writing anything (INVALID_ARGUMENT naming the
// tensor). Writes `path`.tmp, syncs it and renames it over `path`, so `path` is never half-written: an error
// (a fill's included) leaves `path` as it was and no `path`.tmp.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata);

// model.safetensors.index.json, checked: a non-empty weight_map whose values are relative paths inside the
// directory. Errors are INVALID_ARGUMENT starting with `label`.
struct SafetensorsIndex {
  std::map<std::string, std::string> weight_map;      // tensor -> shard file
  std::map<std::string, std::set<std::string>> shards;  // shard file -> the tensors mapped to it
};
absl::StatusOr<SafetensorsIndex> ParseSafetensorsIndex(std::string_view index_json, std::string_view label);

// INVALID_ARGUMENT unless `header` (of shard `shard`, named `shard_label` in messages) holds exactly the tensors
// that `index` (named `index_label`) maps to `shard`.
absl::Status CheckShardMatchesIndex(const SafetensorsIndex& index, const std::string& shard,
                                    const SafetensorsHeader& header, std::string_view index_label,
                                    std::string_view shard_label);

inline constexpr char kSafetensorsSingleFile[] = "model.safetensors";
inline constexpr char kSafetensorsIndexFile[] = "model.safetensors.index.json";

// One tensor of a (possibly sharded) checkpoint.
struct CheckpointTensorView {
  const TensorInfo* info = nullptr;        // name, dtype, shape
  absl::Span<const uint8_t> bytes;         // inside the shard's mapping
  const SafetensorsFile* file = nullptr;   // the shard that holds it
};

// The tensors of a checkpoint directory, each shard opened (and validated against the index) once.
class ShardedSafetensors {
 public:
  // model.safetensors when present (transformers prefers it), else model.safetensors.index.json and its shards.
  // NOT_FOUND when neither or a shard is missing; errors name the index, the shard and the tensor.
  static absl::StatusOr<std::unique_ptr<ShardedSafetensors>> OpenDirectory(const std::string& dir);

  // NOT_FOUND naming the tensor and the directory when absent.
  absl::StatusOr<CheckpointTensorView> Find(std::string_view name) const;
  std::vector<std::string> TensorNames() const;  // sorted
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  ShardedSafetensors() = default;

  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, CheckpointTensorView, std::less<>> tensors_;
};

// Writes `tensors` (in order) into shards of at most `max_shard_bytes` of tensor data each (a larger tensor gets
// a shard of its own), named model-00001-of-00003.safetensors with model.safetensors.index.json
// ({"metadata": {"total_size": N}, "weight_map": ...}) as transformers does; a single shard is written as
// model.safetensors without an index. Every shard carries `metadata`. The index is written last; stale
// model.safetensors / index / model-*-of-*.safetensors files of an earlier write are removed afterwards. Sizes are
// checked before the first file is written; when a later error (a fill's, a full disk) stops the write, the shards
// this call wrote are removed again, so no shard or index of a half-written checkpoint is left behind (nor the
// shards of an earlier write that they had replaced).
absl::Status WriteShardedSafetensors(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                                     uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_SAFETENSORS_FILE_H_
