// Whole .safetensors files and checkpoint directories as named ATen tensors (weights, adapters,
// references), on top of common/safetensors_file.h.
#ifndef TUNEFORGE_SERVICES_TRAINER_MODEL_TENSOR_FILE_H_
#define TUNEFORGE_SERVICES_TRAINER_MODEL_TENSOR_FILE_H_

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tuneforge {

// Every tensor of the file (F32, F16, BF16, F64, I64, I32 kept in their dtype), CPU, owning its memory.
// NOT_FOUND when the file is missing; INVALID_ARGUMENT naming `label` for a bad header or dtype.
absl::StatusOr<std::map<std::string, at::Tensor>> ReadTensorFile(const std::string& path, std::string_view label);

// Every tensor of a checkpoint directory: model.safetensors, else model.safetensors.index.json and its shards.
absl::StatusOr<std::map<std::string, at::Tensor>> ReadCheckpointTensors(const std::string& dir);

// Writes `tensors` (F32/F16/BF16/F64/I64/I32, any device) in the reference layout with __metadata__
// {"format":"pt"}, in key order.
absl::Status WriteTensorFile(const std::string& path, const std::map<std::string, at::Tensor>& tensors);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_MODEL_TENSOR_FILE_H_
