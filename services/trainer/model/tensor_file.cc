// Copies tensor bytes out of the mmapped safetensors files into owning ATen tensors (the mapping is only
// as aligned as the file makes it), and back for writing.
#include "services/trainer/model/tensor_file.h"

#include <ATen/ATen.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/safetensors_file.h"
#include "common/status_macros.h"

namespace tuneforge {
namespace {

absl::StatusOr<at::ScalarType> ScalarTypeOf(const std::string& dtype, std::string_view label, const std::string& name) {
  if (dtype == "F32") return at::kFloat;
  if (dtype == "F16") return at::kHalf;
  if (dtype == "BF16") return at::kBFloat16;
  if (dtype == "F64") return at::kDouble;
  if (dtype == "I64") return at::kLong;
  if (dtype == "I32") return at::kInt;
  return absl::InvalidArgumentError(absl::StrCat(std::string(label), ": tensor '", name, "' has dtype ", dtype,
                                                 "; only F32, F16, BF16, F64, I64 and I32 can be loaded"));
}

const char* DtypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "F32";
    case at::kHalf:
      return "F16";
    case at::kBFloat16:
      return "BF16";
    case at::kDouble:
      return "F64";
    case at::kLong:
      return "I64";
    case at::kInt:
      return "I32";
    default:
      return nullptr;
  }
}

absl::StatusOr<at::Tensor> CopyTensor(const TensorInfo& info, absl::Span<const uint8_t> bytes, std::string_view label) {
  ASSIGN_OR_RETURN(at::ScalarType type, ScalarTypeOf(info.dtype, label, info.name));
  at::Tensor t = at::empty(info.shape, at::TensorOptions().dtype(type));
  if (bytes.size() != static_cast<size_t>(t.nbytes())) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(label), ": tensor '", info.name, "' has ", bytes.size(),
                                                   " bytes, its shape and dtype need ", t.nbytes()));
  }
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

}  // namespace

absl::StatusOr<std::map<std::string, at::Tensor>> ReadTensorFile(const std::string& path, std::string_view label) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path, label));
  std::map<std::string, at::Tensor> out;
  for (const TensorInfo& info : file->header().tensors) {
    ASSIGN_OR_RETURN(at::Tensor t, CopyTensor(info, file->TensorBytes(info), label));
    out.emplace(info.name, std::move(t));
  }
  return out;
}

absl::StatusOr<std::map<std::string, at::Tensor>> ReadCheckpointTensors(const std::string& dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<ShardedSafetensors> checkpoint, ShardedSafetensors::OpenDirectory(dir));
  std::map<std::string, at::Tensor> out;
  for (const std::string& name : checkpoint->TensorNames()) {
    ASSIGN_OR_RETURN(CheckpointTensorView view, checkpoint->Find(name));
    ASSIGN_OR_RETURN(at::Tensor t, CopyTensor(*view.info, view.bytes, view.file->path()));
    out.emplace(name, std::move(t));
  }
  return out;
}

absl::Status WriteTensorFile(const std::string& path, const std::map<std::string, at::Tensor>& tensors) {
  std::vector<at::Tensor> keep;  // owns the contiguous CPU copies the views point into
  std::vector<TensorToWrite> views;
  for (const auto& [name, tensor] : tensors) {
    const char* dtype = DtypeName(tensor.scalar_type());
    if (dtype == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", name, "' has a dtype we do not write (F32, F16, BF16, F64, I64, I32)"));
    }
    keep.push_back(tensor.detach().to(at::kCPU).contiguous());
    const at::Tensor& t = keep.back();
    views.push_back({name, dtype, t.sizes().vec(),
                     std::string_view(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.nbytes()))});
  }
  return WriteSafetensors(path, views, {{"format", "pt"}});
}

}  // namespace tuneforge
