// The `device` setting: which spellings parse, what auto and cuda resolve to on the machine running the
// test (CPU-only here; the GPU branches run where libtorch sees a GPU), and the log description.
#include "services/trainer/model/device.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <optional>
#include <string>

#include "tests/support/status_matchers.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::StatusIs;

DeviceRequest Parse(const std::string& text) {
  absl::StatusOr<DeviceRequest> request = ParseDeviceRequest(text);
  EXPECT_THAT(request.status(), IsOk()) << text;
  return request.ok() ? *request : DeviceRequest{};
}

TEST(DeviceTest, ParsesTheAcceptedForms) {
  EXPECT_EQ(Parse("auto").kind, DeviceRequest::Kind::kAuto);
  EXPECT_EQ(Parse("cpu").kind, DeviceRequest::Kind::kCpu);
  EXPECT_EQ(Parse("cpu").index, -1);
  EXPECT_EQ(Parse("cuda").kind, DeviceRequest::Kind::kCuda);
  EXPECT_EQ(Parse("cuda").index, -1);
  EXPECT_EQ(Parse("cuda:0").kind, DeviceRequest::Kind::kCuda);
  EXPECT_EQ(Parse("cuda:0").index, 0);
  EXPECT_EQ(Parse("cuda:3").index, 3);
  EXPECT_EQ(Parse("cuda:127").index, 127);
}

TEST(DeviceTest, RejectsEverythingElseNamingTheAcceptedForms) {
  for (const char* text : {"", "CPU", "Cuda", "gpu", "mps", " cpu", "cpu ", "cuda:", "cuda:-1", "cuda:+1", "cuda:x",
                           "cuda:1.0", "cuda:0 ", "cuda:128", "cuda:99999999999", "cuda0", "cpu:0"}) {
    EXPECT_THAT(ParseDeviceRequest(text).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(std::string("device '") + text + "' is not one we accept; use auto")))
        << text;
  }
  EXPECT_THAT(ParseDeviceRequest("tpu").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cpu, cuda or cuda:N (N the GPU index")));
}

TEST(DeviceTest, CpuResolvesToCpu) {
  absl::StatusOr<c10::Device> device = ResolveDevice(Parse("cpu"));
  ASSERT_THAT(device.status(), IsOk());
  EXPECT_EQ(device->str(), "cpu");
}

TEST(DeviceTest, AutoResolvesToTheFirstGpuOrElseCpu) {
  absl::StatusOr<c10::Device> device = ResolveDevice(Parse("auto"));
  ASSERT_THAT(device.status(), IsOk());
  EXPECT_EQ(device->str(), torch::cuda::is_available() ? "cuda:0" : "cpu");
}

TEST(DeviceTest, CudaWithoutAGpuIsAFailedPrecondition) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is visible; see CudaIndexPastTheLastGpu";
  for (const char* text : {"cuda", "cuda:0", "cuda:1"}) {
    EXPECT_THAT(ResolveDevice(Parse(text)).status(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("this build of libtorch has no CUDA (or no GPU is visible); use device cpu or "
                                   "auto")))
        << text;
  }
}

TEST(DeviceTest, CudaIndexPastTheLastGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU visible; see CudaWithoutAGpuIsAFailedPrecondition";
  const size_t count = torch::cuda::device_count();
  EXPECT_THAT(ResolveDevice(Parse("cuda:" + std::to_string(count))).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("only " + std::to_string(count) + " GPU(s) are visible")));
  absl::StatusOr<c10::Device> first = ResolveDevice(Parse("cuda"));
  ASSERT_THAT(first.status(), IsOk());
  EXPECT_EQ(first->str(), "cuda:0");
}

TEST(DeviceTest, DescriptionNamesDeviceAndThreads) {
  const int saved_threads = at::get_num_threads();
  at::set_num_threads(3);
  const std::string cpu = DescribeDevice(c10::Device(c10::kCPU));
  const std::string gpu = DescribeDevice(c10::Device(c10::kCUDA, 1));
  at::set_num_threads(saved_threads);

  EXPECT_EQ(cpu, "cpu, 3 threads");
  EXPECT_EQ(gpu, "cuda:1 of " + std::to_string(torch::cuda::device_count()) + " GPUs, 3 CPU threads");
}

// On the CPU the peak is the process's resident high-water mark, which a reset brings down to what is resident now.
TEST(DeviceTest, PeakMemoryOnTheCpuIsTheResidentHighWaterMark) {
  const c10::Device cpu(c10::kCPU);
  {
    // 256 MiB touched, then freed: the high-water mark stays above it until a reset.
    at::Tensor t = at::ones({int64_t{256} << 20}, at::TensorOptions().dtype(at::kByte));
    ASSERT_EQ(t.sum().item<int64_t>(), int64_t{256} << 20);
  }
  const std::optional<int64_t> resident = ResidentMemoryBytes();
  const std::optional<int64_t> high = PeakDeviceMemoryBytes(cpu);
  if (!resident.has_value() || !high.has_value()) GTEST_SKIP() << "no /proc/self/status here";
  ResetPeakDeviceMemory(cpu);
  const std::optional<int64_t> after_reset = PeakDeviceMemoryBytes(cpu);
  ASSERT_TRUE(after_reset.has_value());
  EXPECT_LT(*after_reset, *high - (int64_t{128} << 20)) << "the reset did not bring the high-water mark down";
  {
    at::Tensor t = at::ones({int64_t{64} << 20}, at::TensorOptions().dtype(at::kByte));
    ASSERT_EQ(t.sum().item<int64_t>(), int64_t{64} << 20);
  }
  EXPECT_GE(*PeakDeviceMemoryBytes(cpu), *after_reset + (int64_t{48} << 20));
}

TEST(DeviceTest, PeakMemoryOfAGpuIsTheAllocatorsPeak) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU visible: the CUDA branch runs where one is";
  const c10::Device gpu(c10::kCUDA, 0);
  ResetPeakDeviceMemory(gpu);
  const std::optional<int64_t> before = PeakDeviceMemoryBytes(gpu);
  if (!before.has_value()) GTEST_SKIP() << "this libtorch has no device-generic allocator statistics (< 2.9)";
  {
    at::Tensor t = at::empty({64 << 20}, at::TensorOptions().dtype(at::kByte).device(gpu));  // 64 MiB
    SynchronizeDevice(gpu);
  }
  EXPECT_GE(*PeakDeviceMemoryBytes(gpu), *before + (64 << 20));
}

}  // namespace
}  // namespace tuneforge
