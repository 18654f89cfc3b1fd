// Reads and validates the JSON header of a .safetensors file (bounds, dtypes, contiguity) without
// touching the tensor data, so the metadata service can vet weights it never loads.
#ifndef TUNEFORGE_COMMON_SAFETENSORS_HEADER_H_
#define TUNEFORGE_COMMON_SAFETENSORS_HEADER_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tuneforge {

struct TensorInfo {
  std::string name;
  std::string dtype;           // safetensors dtype name, e.g. "F32", "BF16"
  std::vector<int64_t> shape;  // row-major; [] is a scalar
  uint64_t begin = 0;          // byte offsets relative to the data section, [begin, end)
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;              // sorted by begin (ties by name)
  std::map<std::string, std::string> metadata;  // the optional "__metadata__" object
  uint64_t header_length = 0;                   // N of the 8-byte prefix
  uint64_t data_size = 0;                       // bytes after the header

  // nullptr when no tensor has that name.
  const TensorInfo* Find(std::string_view name) const;
};

// Largest header we accept, as the reference implementation does (100 MB).
inline constexpr uint64_t kMaxSafetensorsHeaderLength = 100'000'000;

// Bytes per element of a safetensors dtype (BOOL U8 I8 F8_E4M3 F8_E5M2 I16 U16 F16 BF16 I32 U32 F32
// I64 U64 F64); -1 if unknown.
int64_t SafetensorsDtypeSize(std::string_view dtype);

// Validates `header_json` (the N bytes after the 8-byte length) for a file whose data section is
// `data_size` bytes (file size - 8 - N). Errors are INVALID_ARGUMENT and start with `label`.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view header_json, uint64_t data_size,
                                                         std::string_view label);

// Reads only the 8-byte prefix and the header of the file at `path`, validates them and returns the
// header. NOT_FOUND when the file is missing; content errors are INVALID_ARGUMENT naming `label`.
absl::StatusOr<SafetensorsHeader> ReadSafetensorsHeader(const std::string& path, std::string_view label);

// The header length N from the first 8 bytes of a file of `file_size` bytes (e.g. from an HTTP Range
// fetch); checks 2 <= N <= 100 MB and 8 + N <= file_size.
absl::StatusOr<uint64_t> SafetensorsHeaderLength(std::string_view first8, uint64_t file_size, std::string_view label);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_SAFETENSORS_HEADER_H_
