// A trainer worker against the real metadata service and the fake Hub: a job whose model and dataset live on the
// Hub downloads them into the Hugging Face cache (a transfer cut mid-file resumes with Range, no corrupt blob is
// left), trains, and registers its adapter; the Hub token reaches the Hub and no job record.
#include <chrono>
#include <filesystem>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "common/dataset_files.h"
#include "common/parquet_file.h"
#include "tests/support/testdata.h"
#include "common/sha256.h"
#include "services/trainer/data/batching.h"
#include "services/trainer/data/examples.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/peft/lora_adapter.h"
#include "services/trainer/train/causal_lm_loss.h"
#include "services/trainer/worker/job_runner.h"
#include "services/trainer/worker/trainer_service.h"
#include "services/trainer/worker/worker.h"
#include "tests/metadata/support/job_fixtures.h"
#include "tests/metadata/support/metadata_test_env.h"
#include "tests/trainer/support/worker_run.h"

namespace tuneforge {
namespace {

using ::testing::HasSubstr;
using ::tuneforge::testing::AddDataset;
using ::tuneforge::testing::AddHubDataset;
using ::tuneforge::testing::AddHubModel;
using ::tuneforge::testing::AddLocalModel;
using ::tuneforge::testing::AddQaPrompt;
using ::tuneforge::testing::CommitDemoToHub;
using ::tuneforge::testing::Context;
using ::tuneforge::testing::FakeHubClientOptions;
using ::tuneforge::testing::MetadataTestEnv;
using ::tuneforge::testing::RunUntilEnd;
using ::tuneforge::testing::ScratchDir;
using ::tuneforge::testing::ShortQaJob;
using ::tuneforge::testing::StartJob;
using ::tuneforge::testing::TestWorkerOptions;
using ::tuneforge::testing::WorkerContext;
using ::tuneforge::testing::ParquetReference;
using ::tuneforge::testing::ReadFileBytes;
using ::tuneforge::testing::WriteDemoData;

constexpr char kHubToken[] = "hf_test-token-for-the-fake-hub";

TEST(WorkerHubTest, ALeaseThatPointsOutsideTheJobsFolderIsRefusedBeforeAnythingIsWritten) {
  ScratchDir artifacts("tuneforge-artifacts");
  JobRunnerOptions options;
  options.artifacts_dir = artifacts.path();
  internal::v1::JobLease lease;
  lease.set_job_id("0b8e3a52-5c0f-4f1e-9d7a-2f6f3f1c1a10");
  const std::string job_dir = artifacts.path() + "/jobs/" + lease.job_id();
  bool touched = false;
  FineTuneHooks hooks;
  hooks.on_event = [&](std::string_view, std::string_view) { touched = true; };
  auto run = [&](const std::string& output_dir, const std::string& checkpoint_dir) {
    lease.set_output_dir(output_dir);
    lease.set_checkpoint_dir(checkpoint_dir);
    return RunLeasedJob(lease, options, hooks).status();
  };
  absl::Status s = run("/etc/cron.d", job_dir + "/checkpoints");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("output_dir: '/etc/cron.d' is outside this job's folder in the trainer's "
                                     "artifacts directory (tuneforge-trainer --artifacts-dir)"));
  s = run(job_dir + "/adapter", "/srv/not-the-artifacts");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("checkpoint_dir: '/srv/not-the-artifacts' is outside"));
  s = run(job_dir + "/../../../../etc", job_dir + "/checkpoints");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("has a '..' component"));
  // Another job's folder is outside this one's, and a job id cannot climb out of jobs/.
  s = run(artifacts.path() + "/jobs/other/adapter", job_dir + "/checkpoints");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  lease.set_job_id("../../../../../../etc");
  s = run("/etc/adapter", "/etc/checkpoints");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_FALSE(touched);
  EXPECT_FALSE(std::filesystem::exists(artifacts.path() + "/jobs"));
}

TEST(WorkerHubTest, HubModelAndDatasetAreDownloadedResumedAndTrained) {
  MetadataTestEnv env;
  ScratchDir demo("tuneforge-demo");
  ASSERT_TRUE(WriteDemoData(demo.path()));
  env.hub().AllowToken(kHubToken);
  const std::string model_sha = CommitDemoToHub(env, demo.path());
  env.hub().SetPrivate("org/demo-llama", true);

  ASSERT_TRUE(AddHubModel(env, "hub-llama", "org/demo-llama", kHubToken));
  ASSERT_TRUE(AddHubDataset(env, "hub-instructions", "org/demo-instructions"));
  ASSERT_TRUE(AddQaPrompt(env, "qa", "hub-instructions"));

  v1::StartFineTuningJobRequest start = ShortQaJob("from-hub", "hub-llama", "hub-instructions", /*max_steps=*/6);
  (*start.mutable_training()->mutable_fields())["learning_rate"].set_number_value(0.005);
  ASSERT_TRUE(StartJob(env, start));

  // The first file transfer is cut after 100 bytes (every file of the repo is larger).
  env.hub().DropNextBodies(1, 100);
  ScratchDir cache("tuneforge-cache");
  HubClientOptions hub_options = FakeHubClientOptions(env);
  hub_options.initial_backoff = std::chrono::milliseconds(10);
  HubClient hub(hub_options);
  WorkerOptions options = TestWorkerOptions(env, hub, cache.path());
  options.runner.hf_token = kHubToken;
  const v1::FineTuningJob job = RunUntilEnd(env, options, "from-hub");

  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error().code() << ": " << job.error().message();
  EXPECT_EQ(job.progress().step(), 6);
  EXPECT_FALSE(job.adapter_id().empty());
  // The cache holds the pinned snapshot, every blob whole, nothing incomplete.
  const std::string repo = cache.path() + "/models--org--demo-llama";
  EXPECT_TRUE(std::filesystem::is_symlink(repo + "/snapshots/" + model_sha + "/model.safetensors"));
  int blobs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(repo + "/blobs")) {
    EXPECT_EQ(entry.path().extension(), "") << entry.path();  // no .incomplete left
    ++blobs;
  }
  EXPECT_EQ(blobs, 4);  // config.json, model.safetensors, tokenizer.json, tokenizer_config.json
  auto weights_sha = Sha256File(repo + "/snapshots/" + model_sha + "/model.safetensors");
  ASSERT_TRUE(weights_sha.ok());
  auto source_sha = Sha256File(demo.path() + "/demo-llama/model.safetensors");
  ASSERT_TRUE(source_sha.ok());
  EXPECT_EQ(*weights_sha, *source_sha);
  EXPECT_FALSE(env.hub().range_requests().empty()) << "the cut download was not resumed with a Range request";
  EXPECT_TRUE(std::filesystem::exists(cache.path() + "/datasets--org--demo-instructions"));
  // The token went to the Hub as a Bearer header and into no job record.
  bool sent = false;
  for (const std::string& h : env.hub().authorization_headers()) sent |= h == std::string("Bearer ") + kHubToken;
  EXPECT_TRUE(sent);
  EXPECT_THAT(job.DebugString(), ::testing::Not(HasSubstr(kHubToken)));
}

// A Hub dataset whose own files tuneforge cannot read trains from the Hub's Parquet conversion: the worker downloads
// the conversion branch's commit, and of it only the chosen config's split files.
TEST(WorkerHubTest, AHubDatasetFromTheParquetConversionBranchTrainsFromItsChosenFilesOnly) {
  const std::string parquet = ParquetReference();
  if (parquet.empty() || !ParquetSupported()) {
    GTEST_SKIP() << "needs the Parquet files the parquet_files test writes with pyarrow, and a build that reads them";
  }
  MetadataTestEnv env;
  ScratchDir demo("tuneforge-demo");
  ASSERT_TRUE(WriteDemoData(demo.path()));
  const std::string model_dir = env.CopyDir(demo.path() + "/demo-llama", "demo-llama");
  ASSERT_TRUE(AddLocalModel(env, "demo-llama", model_dir));
  const std::string main_sha = env.hub().AddCommit(
      RepoKind::kDataset, "org/qa-text", {{"data/train.txt", "what is 1 + 1? 2\n"}, {"README.md", "# qa\n"}});
  // question / answer / score rows, 50 in each file.
  const std::string converted_sha = env.hub().AddCommit(
      RepoKind::kDataset, "org/qa-text",
      {{"default/train/0000.parquet", ReadFileBytes(parquet + "/codec_snappy.parquet")},
       {"default/test/0000.parquet", ReadFileBytes(parquet + "/codec_zstd.parquet")},
       {"other/train/0000.parquet", std::string(1 << 20, 'x')}},
      "refs/convert/parquet");
  ASSERT_TRUE(AddHubDataset(env, "qa-text", "org/qa-text"));
  ASSERT_TRUE(AddQaPrompt(env, "qa", "qa-text"));
  v1::StartFineTuningJobRequest start = ShortQaJob("from-conversion", "demo-llama", "qa-text", /*max_steps=*/2);
  ASSERT_TRUE(StartJob(env, start));

  ScratchDir cache("tuneforge-cache");
  HubClient hub(FakeHubClientOptions(env));
  const v1::FineTuningJob job = RunUntilEnd(env, TestWorkerOptions(env, hub, cache.path()), "from-conversion");
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error().code() << ": " << job.error().message();
  const std::string snapshot = cache.path() + "/datasets--org--qa-text/snapshots/";
  EXPECT_TRUE(std::filesystem::exists(snapshot + converted_sha + "/default/train/0000.parquet"));
  EXPECT_TRUE(std::filesystem::exists(snapshot + converted_sha + "/default/test/0000.parquet"));
  EXPECT_FALSE(std::filesystem::exists(snapshot + converted_sha + "/other/train/0000.parquet"))
      << "another config's files are not downloaded";
  EXPECT_FALSE(std::filesystem::exists(snapshot + main_sha)) << "the repo's own files are not read";
  EXPECT_EQ(job.progress().step(), 2);
}

// The token-weighted loss of `model` over the rows through the demo prompt, as the trainer evaluates.
double EvalLoss(const CausalLM& model, const std::string& model_dir, const std::vector<nlohmann::json>& rows) {
  auto tokenizer = Tokenizer::FromFile(model_dir + "/tokenizer.json");
  EXPECT_TRUE(tokenizer.ok());
  auto config = ReadTokenizerConfig(model_dir + "/tokenizer_config.json");
  EXPECT_TRUE(config.ok());
  PromptFormat prompt;
  prompt.input_template = "Q: {question}\nA: ";
  prompt.completion_template = "{answer}";
  ExampleOptions options;
  options.max_seq_len = 64;
  options.eos_id = ResolveEosId(**tokenizer, config->eos_token, {});
  auto builder = ExampleBuilder::Create(tokenizer->get(), nullptr, prompt, options);
  EXPECT_TRUE(builder.ok());
  auto set = builder->BuildAll(rows, "test");
  EXPECT_TRUE(set.ok());
  at::NoGradGuard no_grad;
  double sum = 0;
  int64_t tokens = 0;
  BatchOptions batch_options;
  batch_options.batch_size = 4;
  batch_options.max_seq_len = 64;
  for (const Batch& b : MakeBatches(set->examples, EpochOrder(set->examples.size(), 0, 0, false), batch_options)) {
    auto t = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).view({b.rows, b.cols}); };
    at::Tensor logits = model.Forward(t(b.input_ids), t(b.attention_mask), t(b.position_ids));
    sum += CausalLmLoss(logits, t(b.labels)).item<double>() * static_cast<double>(b.label_tokens);
    tokens += b.label_tokens;
  }
  return sum / static_cast<double>(tokens);
}

TEST(WorkerHubTest, TheRegisteredAdapterReproducesTheTrainedModel) {
  MetadataTestEnv env;
  ScratchDir demo("tuneforge-demo");
  ASSERT_TRUE(WriteDemoData(demo.path()));
  const std::string model_dir = env.CopyDir(demo.path() + "/demo-llama", "demo-llama");
  const std::string data_dir = env.CopyDir(demo.path() + "/demo-instructions", "demo-instructions");
  ASSERT_TRUE(AddLocalModel(env, "demo-llama", model_dir));
  v1::AddDatasetRequest dataset;
  dataset.set_name("demo-instructions");
  dataset.mutable_local()->set_train_path(data_dir + "/train.jsonl");
  dataset.mutable_local()->set_test_path(data_dir + "/test.jsonl");
  ASSERT_TRUE(AddDataset(env, dataset));
  ASSERT_TRUE(AddQaPrompt(env, "qa", "demo-instructions"));
  v1::StartFineTuningJobRequest start = ShortQaJob("local", "demo-llama", "demo-instructions", /*max_steps=*/10);
  auto& lora = *start.mutable_lora()->mutable_fields();
  lora["r"].set_number_value(8);
  lora["lora_dropout"].set_number_value(0);
  (*start.mutable_training()->mutable_fields())["learning_rate"].set_number_value(0.005);
  ASSERT_TRUE(StartJob(env, start));

  HubClient hub;
  const v1::FineTuningJob job = RunUntilEnd(env, TestWorkerOptions(env, hub), "local");
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error().message();
  ASSERT_TRUE(job.metrics().has_eval_loss());

  // The adapter the job registered, loaded onto the base model, gives the eval loss the trainer reported.
  v1::GetAdapterRequest get;
  get.set_adapter(job.adapter_id());
  v1::GetAdapterResponse adapter;
  ASSERT_TRUE(env.adapters()->GetAdapter(Context().get(), get, &adapter).ok());
  auto arch = CausalLM::Load(model_dir, {});
  ASSERT_TRUE(arch.ok());
  auto lora_options = ReadLoraOptions(adapter.adapter().source(), (*arch)->config().arch);
  ASSERT_TRUE(lora_options.ok()) << lora_options.status();
  BuildOptions build;
  build.lora = *lora_options;
  auto tuned = CausalLM::Load(model_dir, build);
  ASSERT_TRUE(tuned.ok());
  ASSERT_TRUE(LoadLoraWeights(adapter.adapter().source(), **tuned).ok());
  auto test_rows = LoadDatasetFile(data_dir + "/test.jsonl", DatasetFormat::kJsonl, "test.jsonl");
  ASSERT_TRUE(test_rows.ok());
  const double with_adapter = EvalLoss(**tuned, model_dir, test_rows->rows);
  EXPECT_NEAR(with_adapter, job.metrics().eval_loss(), 1e-4);
  EXPECT_LT(with_adapter, EvalLoss(**arch, model_dir, test_rows->rows) - 0.1);  // and it learned something
}

// The datasets library reads .jsonl and .json files of one config with the same builder; a worker reads each file in
// its own format, so a config whose train split is JSON lines and whose test split is a JSON array trains and
// evaluates.
TEST(WorkerHubTest, AHubConfigOfJsonLinesAndAJsonArrayTrainsAndEvaluates) {
  MetadataTestEnv env;
  ScratchDir demo("tuneforge-demo");
  ASSERT_TRUE(WriteDemoData(demo.path()));
  const std::string model_dir = env.CopyDir(demo.path() + "/demo-llama", "demo-llama");
  ASSERT_TRUE(AddLocalModel(env, "demo-llama", model_dir));
  std::string lines, array = "[";
  for (int i = 0; i < 12; ++i) {
    const std::string row = "{\"question\": \"what is " + std::to_string(i) + " + 1?\", \"answer\": \"" +
                            std::to_string(i + 1) + "\"}";
    lines += row + "\n";
    if (i < 4) array += (i > 0 ? ", " : "") + row;
  }
  array += "]";
  env.hub().AddCommit(RepoKind::kDataset, "org/qa-mixed", {{"train.jsonl", lines}, {"test.json", array}});
  ASSERT_TRUE(AddHubDataset(env, "qa-mixed", "org/qa-mixed"));
  ASSERT_TRUE(AddQaPrompt(env, "qa", "qa-mixed"));
  ASSERT_TRUE(StartJob(env, ShortQaJob("mixed-formats", "demo-llama", "qa-mixed", /*max_steps=*/2)));

  ScratchDir cache("tuneforge-cache");
  HubClient hub(FakeHubClientOptions(env));
  const v1::FineTuningJob job = RunUntilEnd(env, TestWorkerOptions(env, hub, cache.path()), "mixed-formats");
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error().code() << ": " << job.error().message();
  EXPECT_TRUE(job.metrics().has_eval_loss()) << "the JSON-array test split was evaluated";
}

TEST(WorkerHubTest, ABadRowFailsTheJobWithTheRowAndColumnAndNoRetry) {
  MetadataTestEnv env;
  ScratchDir demo("tuneforge-demo");
  ASSERT_TRUE(WriteDemoData(demo.path()));
  const std::string model_dir = env.CopyDir(demo.path() + "/demo-llama", "demo-llama");
  std::string rows;
  for (int i = 0; i < 10; ++i) rows += "{\"question\": \"q" + std::to_string(i) + "\", \"answer\": \"a\"}\n";
  rows += "{\"question\": \"q10\", \"answer\": null}\n";
  const std::string train = env.WriteFile("bad/train.jsonl", rows);
  ASSERT_TRUE(AddLocalModel(env, "demo-llama", model_dir));
  v1::AddDatasetRequest dataset;
  dataset.set_name("bad");
  dataset.mutable_local()->set_train_path(train);
  dataset.mutable_local()->set_test_size(0.1);
  ASSERT_TRUE(AddDataset(env, dataset));
  ASSERT_TRUE(AddQaPrompt(env, "qa", "bad"));
  v1::StartFineTuningJobRequest start;
  start.set_name("bad-job");
  start.set_model("demo-llama");
  start.set_dataset("bad");
  start.set_prompt("qa");
  (*start.mutable_training()->mutable_fields())["dtype"].set_string_value("fp32");
  ASSERT_TRUE(StartJob(env, start));

  HubClient hub;
  const v1::FineTuningJob job = RunUntilEnd(env, TestWorkerOptions(env, hub), "bad-job");
  EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(job.attempts(), 1);  // a data error is not retried
  EXPECT_EQ(job.error().code(), "INVALID_ARGUMENT");
  EXPECT_THAT(job.error().message(), HasSubstr("has a null value in column 'answer'"));
  // Named where it is in the file, whichever split it fell in.
  EXPECT_THAT(job.error().message(), HasSubstr("train.jsonl row 11 has a null value"));
}

TEST(WorkerHubTest, AShareGptTurnWithoutFromFailsTheJobNamingTheFileRowAndTurn) {
  MetadataTestEnv env;
  ScratchDir demo("tuneforge-demo");
  ASSERT_TRUE(WriteDemoData(demo.path()));
  const std::string model_dir = env.CopyDir(demo.path() + "/demo-llama", "demo-llama");
  std::string rows;
  for (int i = 0; i < 10; ++i) {
    rows += "{\"conversations\": [{\"from\": \"human\", \"value\": \"q" + std::to_string(i) +
            "\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}\n";
  }
  rows += "{\"conversations\": [{\"from\": \"human\", \"value\": \"q10\"}, {\"value\": \"a\"}]}\n";
  const std::string train = env.WriteFile("sharegpt/train.jsonl", rows);
  ASSERT_TRUE(AddLocalModel(env, "demo-llama", model_dir));
  v1::AddDatasetRequest dataset;
  dataset.set_name("sharegpt");
  dataset.mutable_local()->set_train_path(train);
  dataset.mutable_local()->set_test_size(0.1);
  ASSERT_TRUE(AddDataset(env, dataset));
  v1::AddPromptRequest prompt;
  prompt.set_name("sharegpt");
  prompt.set_dataset("sharegpt");
  prompt.mutable_chat()->set_messages_column("conversations");
  prompt.mutable_chat()->set_message_format("sharegpt");
  v1::AddPromptResponse added;
  ASSERT_TRUE(env.prompts()->AddPrompt(Context().get(), prompt, &added).ok());
  v1::StartFineTuningJobRequest start;
  start.set_name("sharegpt-job");
  start.set_model("demo-llama");
  start.set_dataset("sharegpt");
  start.set_prompt("sharegpt");
  (*start.mutable_training()->mutable_fields())["dtype"].set_string_value("fp32");
  ASSERT_TRUE(StartJob(env, start));

  HubClient hub;
  const v1::FineTuningJob job = RunUntilEnd(env, TestWorkerOptions(env, hub), "sharegpt-job");
  EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(job.error().code(), "INVALID_ARGUMENT");
  EXPECT_THAT(job.error().message(),
              HasSubstr("train.jsonl row 11: column 'conversations' turn 2 has no string \"from\""));
}

TEST(WorkerHubTest, TrainerServicePrefetchesIntoTheCacheAndReportsStatus) {
  MetadataTestEnv env;
  ScratchDir demo("tuneforge-demo");
  ASSERT_TRUE(WriteDemoData(demo.path()));
  const std::string sha = env.hub().AddCommitFromDir(RepoKind::kModel, "org/demo-llama", demo.path() + "/demo-llama");
  ScratchDir cache("tuneforge-cache");
  HubClient hub(FakeHubClientOptions(env));
  WorkerOptions options = TestWorkerOptions(env, hub, cache.path());
  options.worker_id = "ops-trainer";
  Worker worker(options);
  TrainerService service(worker, options, "cpu", 1);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(port, 0);
  auto stub = internal::v1::Trainer::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  internal::v1::PrefetchRequest prefetch;
  prefetch.set_repo_id("org/demo-llama");
  internal::v1::PrefetchResponse fetched;
  EXPECT_EQ(stub->Prefetch(Context().get(), prefetch, &fetched).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status s = stub->Prefetch(WorkerContext().get(), prefetch, &fetched);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(fetched.commit_sha(), sha);
  EXPECT_EQ(fetched.files(), 4);
  EXPECT_GT(fetched.bytes_downloaded(), 0);
  EXPECT_TRUE(std::filesystem::exists(fetched.snapshot_dir() + "/model.safetensors"));
  s = stub->Prefetch(WorkerContext().get(), prefetch, &fetched);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(fetched.bytes_downloaded(), 0);  // all cached
  prefetch.set_repo_type("space");
  EXPECT_EQ(stub->Prefetch(WorkerContext().get(), prefetch, &fetched).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  internal::v1::GetTrainerStatusResponse status;
  ASSERT_TRUE(stub->GetTrainerStatus(WorkerContext().get(), {}, &status).ok());
  EXPECT_EQ(status.worker_id(), "ops-trainer");
  EXPECT_EQ(status.state(), "idle");
  EXPECT_EQ(status.cache_dir(), cache.path());
  EXPECT_GT(status.cache_bytes(), 0);
  server->Shutdown();
}

}  // namespace
}  // namespace tuneforge
