// Device parsing and resolution through torch::cuda's queries, which also exist (answering "no GPU") in a
// CPU-only libtorch, so this file builds unchanged against either.
#include "services/trainer/model/device.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#if defined(TUNEFORGE_TORCH_DEVICE_STATS)
#include <c10/core/CachingDeviceAllocator.h>
#endif

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tuneforge {

namespace {

constexpr std::string_view kCudaPrefix = "cuda:";

absl::Status BadDevice(std::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat(
      "device '", std::string(text),
      "' is not one we accept; use auto (a GPU when one is visible, else the CPU), cpu, cuda or cuda:N "
      "(N the GPU index, e.g. cuda:0)"));
}

}  // namespace

absl::StatusOr<DeviceRequest> ParseDeviceRequest(std::string_view text) {
  DeviceRequest request;
  if (text == "auto") return request;
  if (text == "cpu") {
    request.kind = DeviceRequest::Kind::kCpu;
    return request;
  }
  if (text == "cuda") {
    request.kind = DeviceRequest::Kind::kCuda;
    return request;
  }
  if (text.substr(0, kCudaPrefix.size()) != kCudaPrefix) return BadDevice(text);
  const std::string_view digits = text.substr(kCudaPrefix.size());
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos) return BadDevice(text);
  int index = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
  // c10::DeviceIndex is int8_t, so larger indices cannot name a GPU.
  if (error != std::errc() || end != digits.data() + digits.size() || index > 127) return BadDevice(text);
  request.kind = DeviceRequest::Kind::kCuda;
  request.index = index;
  return request;
}

absl::StatusOr<c10::Device> ResolveDevice(const DeviceRequest& request) {
  switch (request.kind) {
    case DeviceRequest::Kind::kCpu:
      return c10::Device(c10::kCPU);
    case DeviceRequest::Kind::kAuto:
      if (torch::cuda::is_available()) return c10::Device(c10::kCUDA, 0);
      return c10::Device(c10::kCPU);
    case DeviceRequest::Kind::kCuda: {
      if (!torch::cuda::is_available()) {
        return absl::FailedPreconditionError(
            "device cuda: this build of libtorch has no CUDA (or no GPU is visible); use device cpu or auto");
      }
      const size_t count = torch::cuda::device_count();
      const int index = request.index < 0 ? 0 : request.index;
      if (static_cast<size_t>(index) >= count) {
        return absl::FailedPreconditionError(absl::StrCat("device cuda:", index, ": only ", count,
                                                          " GPU(s) are visible (cuda:0 to cuda:", count - 1,
                                                          "); pick one of those or use auto"));
      }
      return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
    }
  }
  return absl::InternalError("device: unknown request kind");
}

std::string DescribeDevice(const c10::Device& device) {
  std::string out;
  const int threads = at::get_num_threads();
  if (device.is_cuda()) {
    absl::StrAppend(&out, device.str(), " of ", torch::cuda::device_count(), " GPUs, ", threads, " CPU threads");
  } else {
    absl::StrAppend(&out, device.str(), ", ", threads, " threads");
  }
  return out;
}

namespace {

// A "Name:   N kB" line of /proc/self/status, in bytes.
std::optional<int64_t> ProcStatusBytes(const char* name) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return std::nullopt;
  char line[256];
  std::optional<int64_t> out;
  const size_t n = std::strlen(name);
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, name, n) == 0) out = std::atoll(line + n) * 1024;
  }
  std::fclose(f);
  return out;
}

}  // namespace

std::optional<int64_t> PeakDeviceMemoryBytes(const c10::Device& device) {
  if (device.is_cuda()) {
#if defined(TUNEFORGE_TORCH_DEVICE_STATS)
    const auto stats = c10::getDeviceAllocator(c10::DeviceType::CUDA)->getDeviceStats(device.index());
    return stats.allocated_bytes[0].peak;  // [0]: StatType::AGGREGATE, every pool
#else
    return std::nullopt;
#endif
  }
  return ProcStatusBytes("VmHWM:");
}

void ResetPeakDeviceMemory(const c10::Device& device) {
  if (device.is_cuda()) {
#if defined(TUNEFORGE_TORCH_DEVICE_STATS)
    c10::getDeviceAllocator(c10::DeviceType::CUDA)->resetPeakStats(device.index());
#endif
    return;
  }
  if (std::FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);  // 5: reset the resident high-water mark
    std::fclose(f);
  }
}

std::optional<int64_t> ResidentMemoryBytes() { return ProcStatusBytes("VmRSS:"); }

double PeakMatmulFlops(c10::ScalarType dtype, const c10::Device& device) {
  static std::mutex mu;
  static auto* measured = new std::map<std::pair<std::string, int>, double>;
  const auto key = std::make_pair(device.str(), static_cast<int>(dtype));
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = measured->find(key); it != measured->end()) return it->second;
  }
  at::NoGradGuard no_grad;
  const int64_t n = device.is_cuda() ? 8192 : 2048;
  const auto options = at::TensorOptions().dtype(dtype).device(device);
  const at::Tensor a = at::randn({n, n}, options), b = at::randn({n, n}, options);
  at::Tensor c = at::mm(a, b);  // warm-up: kernel selection, packing buffers
  SynchronizeDevice(device);
  double best = 0;
  for (int i = 0; i < (device.is_cuda() ? 10 : 3); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    c = at::mm(a, b);
    SynchronizeDevice(device);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (seconds > 0) best = std::max(best, 2.0 * static_cast<double>(n) * n * n / seconds);
  }
  std::lock_guard<std::mutex> lock(mu);
  (*measured)[key] = best;
  return best;
}

void SynchronizeDevice(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace tuneforge
