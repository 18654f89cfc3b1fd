// Where a job's tensors live: the `device` setting ("auto" | "cpu" | "cuda" | "cuda:N"), checked when the
// job is read and resolved against the GPUs libtorch can see when it runs, plus a one-line description for logs.
#ifndef TUNEFORGE_SERVICES_TRAINER_MODEL_DEVICE_H_
#define TUNEFORGE_SERVICES_TRAINER_MODEL_DEVICE_H_

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tuneforge {

struct DeviceRequest {
  enum class Kind { kAuto, kCpu, kCuda };
  Kind kind = Kind::kAuto;
  int index = -1;  // GPU index of "cuda:N"; -1 for "cuda" (= GPU 0), "cpu" and "auto"
};

// Exactly "auto", "cpu", "cuda" or "cuda:N" (N decimal digits); INVALID_ARGUMENT naming `device` and the
// accepted forms otherwise. Needs no GPU, so a job can be rejected before it is queued.
absl::StatusOr<DeviceRequest> ParseDeviceRequest(std::string_view text);

// auto: CUDA device 0 when libtorch sees a GPU, else CPU. cuda / cuda:N: FAILED_PRECONDITION when this
// libtorch has no CUDA or no GPU is visible, or when N is not below the number of visible GPUs.
absl::StatusOr<c10::Device> ResolveDevice(const DeviceRequest& request);

// For the start-of-run log, e.g. "cpu, 8 threads" or "cuda:0 of 2 GPUs, 8 CPU threads".
std::string DescribeDevice(const c10::Device& device);

// Peak bytes of tensors held by libtorch's caching allocator on a GPU since the last reset (what
// torch.cuda.max_memory_allocated reports; nullopt with a libtorch older than 2.9, whose device-generic allocator
// statistics this reads). On the CPU: the process's resident high-water mark since the last reset (Linux's VmHWM,
// reset through /proc/self/clear_refs), nullopt where /proc does not say.
std::optional<int64_t> PeakDeviceMemoryBytes(const c10::Device& device);
void ResetPeakDeviceMemory(const c10::Device& device);
// The process's resident memory now (VmRSS), nullopt where /proc does not say: PeakDeviceMemoryBytes(cpu) less this
// value taken at the reset is what the steps since added.
std::optional<int64_t> ResidentMemoryBytes();

// The best matrix-multiply rate of `dtype` on `device`, in FLOP/s: square products timed after a warm-up (2048 on
// the CPU, 8192 on a GPU). Measured once per device and dtype in a process (about a second on a CPU), then
// remembered. The denominator of MFU.
double PeakMatmulFlops(c10::ScalarType dtype, const c10::Device& device);

// Waits for the work queued on `device` (a no-op on the CPU): for timing.
void SynchronizeDevice(const c10::Device& device);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_MODEL_DEVICE_H_
