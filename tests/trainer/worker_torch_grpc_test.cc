// The trainer process carries PyTorch's libtorch (from the PyPI wheel) and the system's gRPC, protobuf and abseil
// side by side. This test is one such process: both libraries are loaded, a gRPC server answers calls and protobuf
// reflection works while libtorch trains a small model on other threads, and the numbers come out as they do alone.
#include <link.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <grpcpp/grpcpp.h>
#include <google/protobuf/util/json_util.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/decoder_config.h"
#include "services/trainer/train/adamw.h"
#include "services/trainer/train/causal_lm_loss.h"
#include "tests/support/status_matchers.h"
#include "tuneforge/v1/jobs.pb.h"

namespace tuneforge {
namespace {

using ::tuneforge::testing::IsOk;

std::vector<std::string> LoadedLibraries() {
  std::vector<std::string> out;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        if (info->dlpi_name != nullptr && info->dlpi_name[0] != '\0') {
          static_cast<std::vector<std::string>*>(data)->push_back(info->dlpi_name);
        }
        return 0;
      },
      &out);
  return out;
}

bool AnyContains(const std::vector<std::string>& names, const std::string& part) {
  for (const std::string& n : names) {
    if (n.find(part) != std::string::npos) return true;
  }
  return false;
}

// grpc.health.v1.Health answering SERVING, with the system's protobuf messages.
class HealthService final : public grpc::health::v1::Health::Service {
  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest*,
                     grpc::health::v1::HealthCheckResponse* response) override {
    response->set_status(grpc::health::v1::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

// Losses of a few LoRA steps on a tiny random Llama, all on this thread.
std::vector<double> TrainTinyModel(int steps) {
  constexpr char kConfig[] = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 64,
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "tie_word_embeddings": false})";
  auto config = ParseDecoderConfig(kConfig, "", "config.json");
  EXPECT_THAT(config.status(), IsOk());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  std::map<std::string, at::Tensor> weights;
  for (const auto& [name, shape] : ExpectedWeightShapes(config->arch)) weights[name] = at::randn(shape, gen) * 0.2;
  BuildOptions options;
  options.lora.rank = 4;
  options.lora.alpha = 8;
  options.lora.target_modules = {"all-linear"};
  auto model = CausalLM::Build(*config, weights, options);
  EXPECT_THAT(model.status(), IsOk());
  (*model)->set_training(true);
  AdamWSettings settings;
  settings.lr = 1e-2;
  AdamWOptimizer optimizer((*model)->TrainableParameters(), settings);
  at::Tensor ids = at::randint(0, 64, {2, 16}, gen);
  std::vector<double> losses;
  for (int i = 0; i < steps; ++i) {
    at::Tensor loss = CausalLmLoss((*model)->Forward(ids), ids);
    loss.backward();
    optimizer.Step();
    optimizer.ZeroGrad();
    losses.push_back(loss.item<double>());
  }
  return losses;
}

TEST(TorchAndGrpcTest, BothLibrariesServeOneProcess) {
  // Both are really here: libtorch from the torch wheel and the system's protobuf and gRPC.
  const std::vector<std::string> libs = LoadedLibraries();
  EXPECT_TRUE(AnyContains(libs, "libtorch_cpu.so")) << "libtorch_cpu is not loaded";
  EXPECT_TRUE(AnyContains(libs, "libprotobuf.so")) << "the system's libprotobuf is not loaded";
  EXPECT_TRUE(AnyContains(libs, "libgrpc++.so")) << "libgrpc++ is not loaded";
  (void)torch::cuda::is_available();  // initialises libtorch's CUDA hooks, GPU or not
  // libtorch.so exports copies of std::filesystem that crash when called from here; the system's libstdc++, first
  // in the binary's NEEDED list, must be the one that answers.
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("tuneforge-fs-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir / "a" / "b");
  std::error_code error;
  EXPECT_EQ(std::filesystem::remove_all(dir, error), 3u) << error.message();
  EXPECT_FALSE(std::filesystem::exists(dir));

  const std::vector<double> alone = TrainTinyModel(5);

  // A gRPC server with a health service, on loopback.
  HealthService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);

  // Training on one thread while gRPC calls and protobuf reflection run on another.
  std::atomic<int> calls{0}, serving{0}, json_ok{0};
  std::atomic<bool> done{false};
  std::thread rpc([&] {
    while (!done.load() || calls.load() < 20) {
      grpc::ClientContext context;
      grpc::health::v1::HealthCheckRequest request;
      grpc::health::v1::HealthCheckResponse response;
      if (health->Check(&context, request, &response).ok() &&
          response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
        ++serving;
      }
      v1::FineTuningJob job;
      job.set_name("job-" + std::to_string(calls.load()));
      job.set_state(v1::JOB_STATE_RUNNING);
      std::string json;
      v1::FineTuningJob back;
      if (google::protobuf::util::MessageToJsonString(job, &json).ok() &&
          google::protobuf::util::JsonStringToMessage(json, &back).ok() && back.name() == job.name() &&
          back.state() == job.state()) {
        ++json_ok;
      }
      ++calls;
    }
  });
  const std::vector<double> beside_grpc = TrainTinyModel(5);
  done = true;
  rpc.join();
  server->Shutdown();

  EXPECT_EQ(serving.load(), calls.load());
  EXPECT_EQ(json_ok.load(), calls.load());
  ASSERT_EQ(beside_grpc.size(), alone.size());
  for (size_t i = 0; i < alone.size(); ++i) EXPECT_DOUBLE_EQ(beside_grpc[i], alone[i]) << "step " << i;
  EXPECT_LT(alone.back(), alone.front());  // it does train
}

}  // namespace
}  // namespace tuneforge
