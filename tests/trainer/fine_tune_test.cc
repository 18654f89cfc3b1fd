// The fine-tuning recipe end to end on the tiny reference Llama with a character-level tokenizer written here:
// loss falls, the adapter reloads, runs are deterministic, a cancelled run resumes exactly, accumulation equals a
// big batch, packing trains, and bad settings or data give errors that name what to fix.
#include "services/trainer/recipes/fine_tune.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/model_config.h"
#include "services/trainer/data/batching.h"
#include "services/trainer/data/examples.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/tensor_file.h"
#include "services/trainer/peft/lora_adapter.h"
#include "services/trainer/tokenizer/tokenizer.h"
#include "services/trainer/train/causal_lm_loss.h"
#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneforge::testing::GeneratedReference;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::ReadFileBytes;
using ::tuneforge::testing::ScratchDir;
using ::tuneforge::testing::StatusIs;
using Json = nlohmann::json;

// A character-level BPE tokenizer that fits the tiny model's 320-token vocabulary: <unk>, <s>, </s>, printable
// ASCII, newline, and a few merges.
std::string TinyTokenizerJson() {
  Json vocab = Json::object();
  vocab["<unk>"] = 0;
  vocab["<s>"] = 1;
  vocab["</s>"] = 2;
  int id = 3;
  for (char c = 32; c < 127; ++c) vocab[std::string(1, c)] = id++;
  vocab["\n"] = id++;
  const std::vector<std::string> merges = {"I t", "i s", "o r", "e d", "l o"};
  for (const std::string& m : merges) {
    std::string merged = m;
    merged.erase(merged.find(' '), 1);
    vocab[merged] = id++;
  }
  Json added = Json::array();
  for (const auto& [tid, content] : std::vector<std::pair<int, std::string>>{{0, "<unk>"}, {1, "<s>"}, {2, "</s>"}}) {
    added.push_back({{"id", tid}, {"content", content}, {"special", true}});
  }
  return Json{{"added_tokens", added},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"unk_token", "<unk>"}}}}
      .dump();
}

std::vector<Json> ColorRows(int n, int offset = 0) {
  const std::vector<std::string> colors = {"red", "green", "blue", "yellow"};
  std::vector<Json> rows;
  for (int k = offset; k < offset + n; ++k) {
    rows.push_back({{"name", "item " + std::to_string(k * 7)}, {"color", colors[k % colors.size()]}});
  }
  return rows;
}

PromptFormat ColorPrompt() {
  PromptFormat p;
  p.mode = PromptFormat::Mode::kTemplate;
  p.input_template = "Q: color of {name}?\nA:";
  p.completion_template = " It is {color}.";
  return p;
}

struct Recorder {
  std::vector<FineTuneProgress> progress;
  std::vector<std::pair<std::string, std::string>> events;
  std::vector<CheckpointInfo> checkpoints;
  std::function<bool(const Recorder&)> cancel;

  FineTuneHooks Hooks() {
    FineTuneHooks h;
    h.on_progress = [this](const FineTuneProgress& p) { progress.push_back(p); };
    h.on_event = [this](std::string_view level, std::string_view message) {
      events.emplace_back(std::string(level), std::string(message));
    };
    h.on_checkpoint = [this](const CheckpointInfo& c) { checkpoints.push_back(c); };
    h.cancelled = [this] { return cancel && cancel(*this); };
    return h;
  }
  bool HasEvent(const std::string& level, const std::string& part) const {
    return std::any_of(events.begin(), events.end(),
                       [&](const auto& e) { return e.first == level && e.second.find(part) != std::string::npos; });
  }
  std::string AllEvents() const {
    std::string out;
    for (const auto& [level, message] : events) out += level + ": " + message + "\n";
    return out;
  }
};

std::map<std::string, at::Tensor> AdapterTensors(const std::string& dir) {
  auto tensors = ReadTensorFile(dir + "/adapter_model.safetensors", "adapter");
  EXPECT_THAT(tensors.status(), IsOk());
  return tensors.ok() ? *tensors : std::map<std::string, at::Tensor>{};
}

double MaxAbsDiff(const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end()) {
      ADD_FAILURE() << "missing " << name;
      continue;
    }
    worst = std::max(worst, (t - it->second).abs().max().item<double>());
  }
  return worst;
}

double Mean(const std::vector<double>& v, size_t from, size_t to) {
  double sum = 0;
  for (size_t i = from; i < to; ++i) sum += v[i];
  return sum / static_cast<double>(to - from);
}

class FineTuneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
    const std::string ref = GeneratedReference() + "/llama";  // its model files, with a tokenizer written here
    for (const char* f : {"config.json", "generation_config.json", "model.safetensors"}) {
      fs::copy_file(ref + "/" + f, model_.path() + "/" + f);
    }
    model_.WriteFile("tokenizer.json", TinyTokenizerJson());
    model_.WriteFile("tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": "</s>", "pad_token": null})");
  }

  FineTuneSpec Spec(const Json& lora, const Json& training, const std::string& run) const {
    FineTuneSpec spec;
    spec.model_dir = model_.path();
    spec.base_model_name = "tiny/llama";
    spec.train_rows = ColorRows(24);
    spec.test_rows = ColorRows(6, 100);
    spec.prompt = ColorPrompt();
    spec.lora = lora;
    spec.training = training;
    spec.output_dir = work_.path() + "/" + run + "/adapter";
    spec.checkpoint_dir = work_.path() + "/" + run + "/checkpoints";
    spec.threads = 1;
    return spec;
  }

  ScratchDir model_{"tuneforge-finetune-model"};
  ScratchDir work_{"tuneforge-finetune-work"};
};

TEST_F(FineTuneTest, LossFallsOverEpochsAndTheAdapterReloads) {
  const Json lora = {{"r", 8}, {"lora_alpha", 16}, {"target_modules", "all-linear"}};
  const Json training = {{"num_epochs", 4},
                         {"learning_rate", 1e-2},
                         {"lr_scheduler", "linear"},
                         {"warmup_steps", 2},
                         {"per_device_batch_size", 4},
                         {"max_seq_len", 64},
                         {"logging_steps", 1},
                         {"seed", 7},
                         {"device", "cpu"}};
  FineTuneSpec spec = Spec(lora, training, "run");
  spec.train_rows = ColorRows(32);
  spec.test_rows = ColorRows(8, 100);
  Recorder rec;
  auto result = RunFineTune(spec, rec.Hooks());
  ASSERT_THAT(result.status(), IsOk());

  // 32 examples in micro-batches of 4: 8 steps an epoch.
  EXPECT_EQ(result->steps, 32);
  ASSERT_EQ(result->step_losses.size(), 32u);
  const double first = result->step_losses[0];
  EXPECT_GT(first, 3.0);  // about ln(320) before training
  EXPECT_LT(Mean(result->step_losses, 24, 32), 0.5 * first) << "first " << first;
  ASSERT_EQ(result->eval_losses.size(), 4u);
  EXPECT_LT(result->eval_losses.back(), result->eval_losses.front() - 0.5);

  // One progress report a step (logging_steps 1), each with the run's totals; eval loss on epoch ends.
  ASSERT_EQ(rec.progress.size(), 32u);
  int64_t tokens = 0;
  for (const FineTuneProgress& p : rec.progress) {
    SCOPED_TRACE(p.step);
    EXPECT_EQ(p.total_steps, 32);
    EXPECT_EQ(p.num_epochs, 4);
    EXPECT_EQ(p.epoch, (p.step - 1) / 8 + 1);
    EXPECT_GT(p.tokens, tokens);
    tokens = p.tokens;
    EXPECT_DOUBLE_EQ(p.loss, result->step_losses[p.step - 1]);
    EXPECT_GT(p.grad_norm, 0);
    EXPECT_GT(p.tokens_per_second, 0);
    // MFU of a real step is a fraction: above zero, below one.
    EXPECT_GT(p.mfu, 0);
    EXPECT_LT(p.mfu, 1);
    // On the CPU, the trainer process's resident peak: at least the model it holds.
    ASSERT_TRUE(p.peak_device_memory_bytes.has_value());
    EXPECT_GT(*p.peak_device_memory_bytes, 1 << 20);
    EXPECT_EQ(p.eval_loss.has_value(), p.step % 8 == 0);
    if (p.eval_loss) {
      EXPECT_DOUBLE_EQ(*p.eval_loss, result->eval_losses[p.step / 8 - 1]);
    }
  }
  EXPECT_EQ(rec.progress[0].step, 1);
  EXPECT_EQ(tokens, result->train_tokens);
  // Linear warmup over 2 steps, then linear decay over the remaining 30.
  EXPECT_DOUBLE_EQ(rec.progress[0].learning_rate, 0.0);
  EXPECT_DOUBLE_EQ(rec.progress[1].learning_rate, 0.5e-2);
  EXPECT_NEAR(rec.progress[2].learning_rate, 1e-2, 1e-12);
  EXPECT_NEAR(rec.progress[17].learning_rate, 1e-2 * 15.0 / 30.0, 1e-12);  // schedule step 17

  EXPECT_TRUE(rec.HasEvent("info", "train: 32 examples from 32 rows (0 truncated")) << rec.AllEvents();
  EXPECT_TRUE(rec.HasEvent("info", "test: 8 examples")) << rec.AllEvents();
  EXPECT_TRUE(rec.HasEvent("info", "device: cpu")) << rec.AllEvents();
  EXPECT_TRUE(rec.HasEvent("info", "schedule: 32 optimizer steps over 4 epochs")) << rec.AllEvents();
  EXPECT_TRUE(rec.HasEvent("info", "epoch 4 eval loss")) << rec.AllEvents();
  EXPECT_FALSE(rec.HasEvent("warning", "")) << rec.AllEvents();

  // Checkpoints at every epoch end (save_steps 0); the last two are kept.
  ASSERT_EQ(rec.checkpoints.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(rec.checkpoints[i].step, 8 * (i + 1));
    EXPECT_EQ(rec.checkpoints[i].epoch, i + 1);
    EXPECT_DOUBLE_EQ(rec.checkpoints[i].loss, result->step_losses[8 * (i + 1) - 1]);
  }
  std::vector<std::string> kept;
  for (const auto& entry : fs::directory_iterator(spec.checkpoint_dir)) kept.push_back(entry.path().filename());
  std::sort(kept.begin(), kept.end());
  EXPECT_THAT(kept, ElementsAre("checkpoint-24", "checkpoint-32"));
  const Json state = Json::parse(ReadFileBytes(spec.checkpoint_dir + "/checkpoint-32/trainer_state.json"));
  EXPECT_EQ(state["global_step"], 32);
  EXPECT_EQ(state["step_losses"].size(), 32u);
  EXPECT_EQ(MaxAbsDiff(AdapterTensors(spec.checkpoint_dir + "/checkpoint-32"), AdapterTensors(spec.output_dir)), 0.0);

  // The PEFT adapter: config as PEFT writes it, "all-linear" spelled out.
  EXPECT_EQ(result->adapter_dir, spec.output_dir);
  const Json config = Json::parse(ReadFileBytes(spec.output_dir + "/adapter_config.json"));
  EXPECT_EQ(config["base_model_name_or_path"], "tiny/llama");
  EXPECT_EQ(config["r"], 8);
  EXPECT_EQ(config["lora_alpha"], 16);
  EXPECT_EQ(config["target_modules"],
            Json({"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}));
  EXPECT_EQ(result->settings["lora"]["target_modules"], config["target_modules"]);
  EXPECT_EQ(result->settings["training"]["weight_decay"], 0.0);  // HF default, as the job applied it

  // Reloaded into a fresh model, the adapter gives the test loss the run reported last.
  auto arch = ParseModelConfig(ReadFileBytes(model_.path() + "/config.json"), "", "config.json");
  ASSERT_THAT(arch.status(), IsOk());
  auto lora_options = ReadLoraOptions(spec.output_dir, *arch);
  ASSERT_THAT(lora_options.status(), IsOk());
  BuildOptions build;
  build.lora = *lora_options;
  auto reloaded = CausalLM::Load(model_.path(), build);
  ASSERT_THAT(reloaded.status(), IsOk());
  ASSERT_THAT(LoadLoraWeights(spec.output_dir, **reloaded), IsOk());
  auto base = CausalLM::Load(model_.path(), {});
  ASSERT_THAT(base.status(), IsOk());
  auto tokenizer = Tokenizer::FromJson(TinyTokenizerJson());
  ASSERT_THAT(tokenizer.status(), IsOk());
  ExampleOptions example_options;
  example_options.max_seq_len = 64;
  example_options.eos_id = 2;
  auto builder = ExampleBuilder::Create(tokenizer->get(), nullptr, ColorPrompt(), example_options);
  ASSERT_THAT(builder.status(), IsOk());
  auto test = builder->BuildAll(spec.test_rows, "test");
  ASSERT_THAT(test.status(), IsOk());
  std::vector<size_t> order(test->examples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto test_loss = [&](const CausalLM& model) {
    double sum = 0, count = 0;
    for (const Batch& b : MakeBatches(test->examples, order, {4, 64, false, 0})) {
      auto t = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).view({b.rows, b.cols}); };
      at::Tensor logits = model.Forward(t(b.input_ids), t(b.attention_mask), t(b.position_ids));
      sum += CausalLmLoss(logits, t(b.labels)).item<double>() * static_cast<double>(b.label_tokens);
      count += static_cast<double>(b.label_tokens);
    }
    return sum / count;
  };
  EXPECT_NEAR(test_loss(**reloaded), result->eval_losses.back(), 1e-6);
  EXPECT_GT(test_loss(**base), result->eval_losses.back() + 1.0);
}

TEST_F(FineTuneTest, RunsAreDeterministicAndACancelledRunResumesExactly) {
  // Dropout, accumulation, cosine warmup and weight decay, so every piece of state a resume restores matters.
  const Json lora = {
      {"r", 4}, {"lora_alpha", 8}, {"lora_dropout", 0.1}, {"target_modules", {"q_proj", "v_proj", "down_proj"}}};
  const Json training = {{"num_epochs", 2},
                         {"learning_rate", 5e-3},
                         {"lr_scheduler", "cosine"},
                         {"warmup_ratio", 0.1},
                         {"weight_decay", 0.01},
                         {"per_device_batch_size", 2},
                         {"gradient_accumulation_steps", 2},
                         {"save_steps", 2},
                         {"logging_steps", 1},
                         {"max_seq_len", 64},
                         {"seed", 11}};
  // 24 examples, micro-batches of 2 accumulated in pairs: 6 steps an epoch, 12 in all.
  Recorder a_rec, a2_rec;
  auto a = RunFineTune(Spec(lora, training, "a"), a_rec.Hooks());
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_EQ(a->steps, 12);
  auto a2 = RunFineTune(Spec(lora, training, "a2"), a2_rec.Hooks());
  ASSERT_THAT(a2.status(), IsOk());
  EXPECT_EQ(a->step_losses, a2->step_losses);
  EXPECT_EQ(a->eval_losses, a2->eval_losses);
  EXPECT_EQ(MaxAbsDiff(AdapterTensors(a->adapter_dir), AdapterTensors(a2->adapter_dir)), 0.0);

  // Another seed draws other masks, data order and LoRA init.
  Json other_seed = training;
  other_seed["seed"] = 12;
  auto c = RunFineTune(Spec(lora, other_seed, "c"), {});
  ASSERT_THAT(c.status(), IsOk());
  EXPECT_NE(c->step_losses, a->step_losses);

  // Cancelled after step 9 is reported: the micro-batch of step 10 never runs, checkpoint-8 is the last.
  const FineTuneSpec b_spec = Spec(lora, training, "b");
  Recorder b_rec;
  b_rec.cancel = [](const Recorder& r) { return !r.progress.empty() && r.progress.back().step >= 9; };
  auto b = RunFineTune(b_spec, b_rec.Hooks());
  EXPECT_THAT(b.status(), StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled at step 9 of 12")));
  EXPECT_FALSE(fs::exists(b_spec.output_dir));
  ASSERT_FALSE(b_rec.checkpoints.empty());
  EXPECT_EQ(b_rec.checkpoints.back().step, 8);
  EXPECT_TRUE(fs::exists(b_spec.checkpoint_dir + "/checkpoint-8/trainer_state.json"));
  EXPECT_TRUE(fs::exists(b_spec.checkpoint_dir + "/checkpoint-6/trainer_state.json"));
  EXPECT_FALSE(fs::exists(b_spec.checkpoint_dir + "/checkpoint-4"));

  // The resumed run continues from step 9 and ends where the uninterrupted one did, bit for bit.
  Recorder resumed_rec;
  auto resumed = RunFineTune(b_spec, resumed_rec.Hooks());
  ASSERT_THAT(resumed.status(), IsOk());
  EXPECT_TRUE(resumed_rec.HasEvent("info", "resumed from checkpoint-8 (step 8 of 12, epoch 2 of 2)"))
      << resumed_rec.AllEvents();
  ASSERT_FALSE(resumed_rec.progress.empty());
  EXPECT_EQ(resumed_rec.progress.front().step, 9);
  EXPECT_EQ(resumed_rec.progress.front().epoch, 2);
  EXPECT_EQ(resumed->step_losses, a->step_losses);
  EXPECT_EQ(resumed->eval_losses, a->eval_losses);
  EXPECT_EQ(resumed->train_tokens, a->train_tokens);
  EXPECT_EQ(resumed_rec.progress.back().tokens, a_rec.progress.back().tokens);
  EXPECT_EQ(MaxAbsDiff(AdapterTensors(resumed->adapter_dir), AdapterTensors(a->adapter_dir)), 0.0);

  // A finished checkpoint dir resumes straight to the adapter.
  Recorder again_rec;
  auto again = RunFineTune(b_spec, again_rec.Hooks());
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_TRUE(again_rec.HasEvent("info", "resumed from checkpoint-12")) << again_rec.AllEvents();
  EXPECT_TRUE(again_rec.progress.empty());
  EXPECT_EQ(again->step_losses, a->step_losses);

  // A checkpoint of other settings is not silently resumed.
  Json changed = training;
  changed["learning_rate"] = 1e-3;
  EXPECT_THAT(RunFineTune(Spec(lora, changed, "b"), {}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("other settings")));
}

TEST_F(FineTuneTest, GradientCheckpointingGivesTheSameTraining) {
  // Dropout on, so the recomputed layers must replay the same masks; all linear layers, so every LoRA gradient
  // comes out of a recomputed layer.
  const Json lora = {{"r", 4}, {"lora_alpha", 8}, {"lora_dropout", 0.1}, {"target_modules", "all-linear"}};
  Json training = {{"max_steps", 4},    {"learning_rate", 5e-3}, {"per_device_batch_size", 4},
                   {"logging_steps", 1}, {"max_seq_len", 64},     {"seed", 3}};
  auto plain = RunFineTune(Spec(lora, training, "plain"), {});
  ASSERT_THAT(plain.status(), IsOk());
  training["gradient_checkpointing"] = true;
  Recorder rec;
  auto checkpointed = RunFineTune(Spec(lora, training, "checkpointed"), rec.Hooks());
  ASSERT_THAT(checkpointed.status(), IsOk());
  EXPECT_FALSE(rec.HasEvent("warning", "gradient_checkpointing")) << rec.AllEvents();
  ASSERT_EQ(plain->step_losses.size(), checkpointed->step_losses.size());
  for (size_t i = 0; i < plain->step_losses.size(); ++i) {
    EXPECT_NEAR(plain->step_losses[i], checkpointed->step_losses[i], 1e-5) << "step " << i + 1;
  }
  EXPECT_LT(MaxAbsDiff(AdapterTensors(plain->adapter_dir), AdapterTensors(checkpointed->adapter_dir)), 1e-5);

  // With the checkpointed layer inputs offloaded to host memory: the same arithmetic, so the same training exactly.
  training["activation_offload"] = true;
  Recorder offload_rec;
  auto offloaded = RunFineTune(Spec(lora, training, "offloaded"), offload_rec.Hooks());
  ASSERT_THAT(offloaded.status(), IsOk());
  EXPECT_TRUE(offload_rec.HasEvent("info", "the device is the CPU, so moving layer inputs to host memory saves nothing"))
      << offload_rec.AllEvents();
  EXPECT_EQ(offloaded->step_losses, checkpointed->step_losses);
  EXPECT_EQ(offloaded->settings["training"]["activation_offload"], true);
  EXPECT_EQ(MaxAbsDiff(AdapterTensors(offloaded->adapter_dir), AdapterTensors(checkpointed->adapter_dir)), 0);
}

TEST_F(FineTuneTest, GradientAccumulationEqualsOneBigBatch) {
  const Json lora = {{"r", 8}, {"lora_alpha", 16}, {"target_modules", "all-linear"}};
  // adam_epsilon 1e-3: AdamW divides each update by the gradient's own scale, so with the default 1e-8 an entry whose
  // gradient is near zero turns the rounding difference of the two summation orders into a whole step of either
  // sign (seen: 3.6e-4 on one generated model). With a larger epsilon such entries move by about lr * g / epsilon.
  Json training = {{"max_steps", 3},     {"learning_rate", 1e-2}, {"lr_scheduler", "constant"},
                   {"max_grad_norm", 0}, {"logging_steps", 1},    {"max_seq_len", 64},
                   {"seed", 3},          {"adam_epsilon", 1e-3}};
  Json big = training, small = training;
  big["per_device_batch_size"] = 4;
  small["per_device_batch_size"] = 2;
  small["gradient_accumulation_steps"] = 2;
  Recorder big_rec, small_rec;
  auto x = RunFineTune(Spec(lora, big, "big"), big_rec.Hooks());
  auto y = RunFineTune(Spec(lora, small, "small"), small_rec.Hooks());
  ASSERT_THAT(x.status(), IsOk());
  ASSERT_THAT(y.status(), IsOk());
  ASSERT_EQ(x->steps, 3);
  ASSERT_EQ(y->steps, 3);
  ASSERT_EQ(big_rec.progress.size(), 3u);
  ASSERT_EQ(small_rec.progress.size(), 3u);
  EXPECT_EQ(big_rec.progress[0].total_steps, 3);  // max_steps wins over the epochs
  EXPECT_EQ(big_rec.progress[0].num_epochs, 1);
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_NEAR(x->step_losses[i], y->step_losses[i], 1e-5);
    EXPECT_NEAR(big_rec.progress[i].grad_norm, small_rec.progress[i].grad_norm, 1e-5 * big_rec.progress[i].grad_norm);
  }
  EXPECT_EQ(big_rec.progress[2].tokens, small_rec.progress[2].tokens);
  // Steps are about lr = 1e-2 where the gradient is well above epsilon; a lost or doubled micro-batch moves the
  // adapter by a sizeable part of one.
  EXPECT_LT(MaxAbsDiff(AdapterTensors(x->adapter_dir), AdapterTensors(y->adapter_dir)), 1e-5);
}

// Padding-free micro-batches (the default) are the padded ones without the padding: same steps, losses, gradient
// norms, tokens and adapter. adam_epsilon 1e-3 as above: the two summation orders round differently.
TEST_F(FineTuneTest, PaddingFreeEqualsPadding) {
  const Json lora = {{"r", 8}, {"lora_alpha", 16}, {"target_modules", "all-linear"}};
  Json training = {{"max_steps", 4},     {"learning_rate", 1e-2}, {"lr_scheduler", "constant"},
                   {"max_grad_norm", 0}, {"logging_steps", 1},    {"max_seq_len", 64},
                   {"seed", 5},          {"adam_epsilon", 1e-3},  {"per_device_batch_size", 4}};
  Json padded = training;
  padded["padding_free"] = false;
  Recorder free_rec, padded_rec;
  auto x = RunFineTune(Spec(lora, training, "padding-free"), free_rec.Hooks());
  auto y = RunFineTune(Spec(lora, padded, "padded"), padded_rec.Hooks());
  ASSERT_THAT(x.status(), IsOk());
  ASSERT_THAT(y.status(), IsOk());
  EXPECT_TRUE(free_rec.HasEvent("info", "examples (padding-free)")) << free_rec.AllEvents();
  EXPECT_FALSE(padded_rec.HasEvent("info", "padding-free")) << padded_rec.AllEvents();
  ASSERT_EQ(x->steps, 4);
  ASSERT_EQ(y->steps, 4);
  ASSERT_EQ(free_rec.progress.size(), 4u);
  ASSERT_EQ(padded_rec.progress.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    EXPECT_NEAR(x->step_losses[i], y->step_losses[i], 1e-5);
    EXPECT_NEAR(free_rec.progress[i].grad_norm, padded_rec.progress[i].grad_norm,
                1e-5 * padded_rec.progress[i].grad_norm);
    EXPECT_EQ(free_rec.progress[i].tokens, padded_rec.progress[i].tokens);
  }
  ASSERT_EQ(x->eval_losses.size(), y->eval_losses.size());
  for (size_t i = 0; i < x->eval_losses.size(); ++i) EXPECT_NEAR(x->eval_losses[i], y->eval_losses[i], 1e-5);
  EXPECT_LT(MaxAbsDiff(AdapterTensors(x->adapter_dir), AdapterTensors(y->adapter_dir)), 1e-5);
}

// 8-bit AdamW moments train like full ones on the same data: the same first loss, and over the last quarter of the
// steps a loss that has fallen as far as full AdamW's, within a tenth of its fall (the model's weights are drawn anew
// for each build, so the test compares the two rather than fixing a level).
TEST_F(FineTuneTest, EightBitAdamWTrains) {
  const Json lora = {{"r", 8}, {"lora_alpha", 16}, {"target_modules", "all-linear"}};
  Json training = {{"num_epochs", 2},           {"learning_rate", 1e-2}, {"lr_scheduler", "constant"},
                   {"optimizer", "adamw_8bit"}, {"logging_steps", 1},    {"per_device_batch_size", 4},
                   {"eval_every_epoch", false}};
  std::vector<double> first, last;
  for (const char* optimizer : {"adamw", "adamw_8bit"}) {
    SCOPED_TRACE(optimizer);
    training["optimizer"] = optimizer;
    FineTuneSpec spec = Spec(lora, training, optimizer);
    spec.train_rows = ColorRows(32);
    auto result = RunFineTune(spec, {});
    ASSERT_THAT(result.status(), IsOk());
    ASSERT_EQ(result->steps, 16);
    EXPECT_EQ(result->settings["training"]["optimizer"], optimizer);
    const size_t n = result->step_losses.size();
    first.push_back(result->step_losses[0]);
    last.push_back(Mean(result->step_losses, n - n / 4, n));
  }
  std::printf("first loss %.4f; last quarter: adamw %.4f, adamw_8bit %.4f\n", first[0], last[0], last[1]);
  EXPECT_NEAR(first[1], first[0], 1e-6 * first[0]);
  EXPECT_LT(last[0], 0.75 * first[0]);  // it is a task that trains
  EXPECT_LT(last[1] - last[0], 0.1 * (first[0] - last[0]));
}

TEST_F(FineTuneTest, PackingTrainsOnFewerRows) {
  const Json lora = {{"r", 8}, {"lora_alpha", 16}, {"target_modules", "all-linear"}};
  const Json training = {{"num_epochs", 4},    {"learning_rate", 1e-2},    {"lr_scheduler", "constant"},
                         {"packing", true},    {"max_seq_len", 96},        {"per_device_batch_size", 2},
                         {"logging_steps", 1}, {"eval_every_epoch", false}};
  FineTuneSpec spec = Spec(lora, training, "packed");
  spec.train_rows = ColorRows(32);
  Recorder rec;
  auto result = RunFineTune(spec, rec.Hooks());
  ASSERT_THAT(result.status(), IsOk());
  // Unpacked, 32 examples in pairs would be 16 steps an epoch; ~40-token examples pack 2 to a 96-token row.
  ASSERT_FALSE(rec.progress.empty());
  const int64_t total = rec.progress.back().total_steps;
  EXPECT_EQ(result->steps, total);
  EXPECT_LE(total, 4 * 9);
  EXPECT_GE(total, 4 * 7);
  EXPECT_TRUE(rec.HasEvent("info", "packed rows")) << rec.AllEvents();
  const size_t n = result->step_losses.size();
  EXPECT_LT(Mean(result->step_losses, n - n / 4, n), 0.5 * result->step_losses[0]);
  // eval_every_epoch false: the test split is evaluated once, after the last step.
  EXPECT_EQ(result->eval_losses.size(), 1u);
  EXPECT_TRUE(rec.progress.back().eval_loss.has_value());
}

TEST_F(FineTuneTest, BadSettingsNameTheKey) {
  struct Case {
    Json lora, training;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{},
       {{"per_device_batch_size", 0}},
       absl::StatusCode::kInvalidArgument,
       "training.per_device_batch_size must be an integer >= 1, got 0"},
      {{}, {{"learning_rate", "fast"}}, absl::StatusCode::kInvalidArgument, "training.learning_rate must be a number"},
      {{},
       {{"lr_scheduler", "exponential"}},
       absl::StatusCode::kInvalidArgument,
       "training.lr_scheduler must be one of constant, linear, cosine"},
      {{}, {{"max_steps", 0}}, absl::StatusCode::kInvalidArgument, "training.max_steps"},
      {{}, {{"warmup_ratio", 1.5}}, absl::StatusCode::kInvalidArgument, "training.warmup_ratio"},
      {{}, {{"num_epochs", 1.5}}, absl::StatusCode::kInvalidArgument, "training.num_epochs"},
      {{}, {{"packing", "yes"}}, absl::StatusCode::kInvalidArgument, "training.packing must be true or false"},
      {{}, {{"optimizer", "sgd"}}, absl::StatusCode::kInvalidArgument, "training.optimizer must be one of"},
      {{},
       {{"activation_offload", true}},
       absl::StatusCode::kInvalidArgument,
       "training.activation_offload moves the inputs of checkpointed layers to host memory, so it needs "
       "training.gradient_checkpointing: true"},
      {{}, {{"dtype", "fp8"}}, absl::StatusCode::kInvalidArgument, "training.dtype must be one of fp32, bf16, fp16"},
      {{}, {{"device", "tpu"}}, absl::StatusCode::kInvalidArgument, "training.device 'tpu'"},
      {{}, {{"warmup_steps", 100}, {"max_steps", 3}}, absl::StatusCode::kInvalidArgument, "training.warmup_steps"},
      {{{"r", 0}}, {}, absl::StatusCode::kInvalidArgument, "lora.r must be an integer >= 1"},
      {{{"lora_dropout", 1.0}}, {}, absl::StatusCode::kInvalidArgument, "lora.lora_dropout"},
      {{{"target_modules", {"q_proj", "attn"}}},
       {},
       absl::StatusCode::kInvalidArgument,
       "lora.target_modules: 'attn' is not a linear layer of llama models"},
      {{{"target_modules", "everything"}}, {}, absl::StatusCode::kInvalidArgument, "lora.target_modules must be"},
      {{}, Json::array({1}), absl::StatusCode::kInvalidArgument, "training must be a JSON object"},
      {{}, {{"full_finetune", true}}, absl::StatusCode::kUnimplemented, "training.full_finetune is not implemented"},
      {{}, {{"dtype", "fp16"}, {"device", "cpu"}}, absl::StatusCode::kFailedPrecondition, "use bf16 or fp32"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.lora.dump() + " " + c.training.dump());
    Recorder rec;
    auto result = RunFineTune(Spec(c.lora, c.training, "bad"), rec.Hooks());
    EXPECT_THAT(result.status(), StatusIs(c.code, HasSubstr(c.message)));
    EXPECT_FALSE(fs::exists(work_.path() + "/bad/adapter"));
  }

  // Unknown keys and settings we do not implement are reported, not fatal.
  Recorder rec;
  auto result = RunFineTune(Spec({{"r", 2}, {"bias", "none"}},
                                 {{"max_steps", 1}, {"optim", "sgd"}}, "warn"),
                            rec.Hooks());
  ASSERT_THAT(result.status(), IsOk());
  EXPECT_TRUE(rec.HasEvent("warning", "lora.bias is not a setting we know; ignored")) << rec.AllEvents();
  EXPECT_TRUE(rec.HasEvent("warning", "training.optim is not a setting we know; ignored")) << rec.AllEvents();
  // PEFT's default targets for llama, and HF's defaults for what was not given.
  EXPECT_EQ(result->settings["lora"]["target_modules"], Json({"q_proj", "v_proj"}));
  EXPECT_EQ(result->settings["training"]["learning_rate"], 5e-5);
  EXPECT_EQ(result->settings["training"]["per_device_batch_size"], 8);
}

TEST_F(FineTuneTest, DatasetProblemsAreReportedAsSuch) {
  FineTuneSpec spec = Spec({}, {{"max_steps", 1}}, "data");
  spec.train_rows[2].erase("color");
  EXPECT_THAT(RunFineTune(spec, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("train row 3 has no column 'color'")));

  // The prompt alone fills max_seq_len: nothing left to learn.
  Recorder rec;
  FineTuneSpec tight = Spec({}, {{"max_steps", 1}, {"max_seq_len", 8}}, "tight");
  EXPECT_THAT(RunFineTune(tight, rec.Hooks()).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no trainable example")));
  EXPECT_TRUE(rec.HasEvent("warning", "train rows skipped because no token would carry a loss: 1, 2, 3"))
      << rec.AllEvents();

  FineTuneSpec empty = Spec({}, {}, "empty");
  empty.train_rows.clear();
  EXPECT_THAT(RunFineTune(empty, {}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no trainable example")));
}

}  // namespace
}  // namespace tuneforge
