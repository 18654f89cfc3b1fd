// A scripted FineTuningJobs server for the CLI's end-to-end test (tests/e2e/cli_test.sh): one job whose events
// have fixed server times, so the progress lines and ETAs the CLI prints are known exactly, and a way to die
// mid-stream so that the CLI's reconnection is tested against a real restart.
// Usage: tuneforge_cli_fake_jobs --port N [--final succeeded|failed] [--stop-after SEQUENCE] [--log FILE]
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "tuneforge/v1/jobs.grpc.pb.h"

namespace {

using tuneforge::v1::FineTuningJob;
using tuneforge::v1::JobEvent;

constexpr int kTotalSteps = 10;
constexpr int64_t kStartSeconds = 1700000000;  // event times: start + 2 s per step

struct Options {
  int port = 0;
  bool succeed = true;
  int64_t stop_after = -1;
  std::string log;
};

struct Scripted {
  JobEvent event;
  FineTuningJob job;  // the job as it is after the event
};

google::protobuf::Timestamp At(int64_t seconds) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  return t;
}

FineTuningJob BaseJob() {
  FineTuningJob job;
  job.set_id("6f1c2a52-0000-4000-8000-000000000001");
  job.set_name("fake-job");
  job.set_kind(tuneforge::v1::JOB_KIND_FINE_TUNE);
  job.set_model_id("model-1");
  job.set_max_attempts(3);
  job.set_attempts(1);
  *job.mutable_create_time() = At(kStartSeconds);
  return job;
}

std::vector<Scripted> Script(bool succeed) {
  std::vector<Scripted> script;
  FineTuningJob job = BaseJob();
  auto add = [&](JobEvent event) {
    event.set_sequence(static_cast<int64_t>(script.size()) + 1);
    if (!event.has_time()) *event.mutable_time() = At(kStartSeconds);
    script.push_back({event, job});
  };
  auto state = [&](tuneforge::v1::JobState s, const std::string& message) {
    job.set_state(s);
    JobEvent event;
    event.set_kind(tuneforge::v1::JOB_EVENT_KIND_STATE);
    event.set_level("info");
    event.set_state(s);
    event.set_message(message);
    add(event);
  };
  state(tuneforge::v1::JOB_STATE_QUEUED, "");
  *job.mutable_start_time() = At(kStartSeconds);
  state(tuneforge::v1::JOB_STATE_RUNNING, "attempt 1 on fake-worker");
  for (int step = 1; step <= kTotalSteps; ++step) {
    tuneforge::v1::JobProgress& progress = *job.mutable_progress();
    progress.set_step(step);
    progress.set_total_steps(kTotalSteps);
    progress.set_epoch(step <= kTotalSteps / 2 ? 1 : 2);
    progress.set_num_epochs(2);
    progress.set_tokens(step * 1024);
    tuneforge::v1::JobMetrics& metrics = *job.mutable_metrics();
    metrics.set_train_loss(2.0 - 0.1 * step);
    metrics.set_learning_rate(1e-4);
    metrics.set_tokens_per_second(312);
    if (step > 1) {  // the first report of a run has no figures yet on some devices
      metrics.set_mfu(0.42);
      metrics.set_peak_memory_gib(3.25);
    }
    if (step == kTotalSteps / 2) metrics.set_eval_loss(1.1);
    JobEvent event;
    event.set_kind(tuneforge::v1::JOB_EVENT_KIND_PROGRESS);
    event.set_level("info");
    *event.mutable_time() = At(kStartSeconds + 2 * step);
    *event.mutable_progress() = progress;
    *event.mutable_metrics() = metrics;
    add(event);
    if (step == kTotalSteps / 2) {
      JobEvent checkpoint;
      checkpoint.set_kind(tuneforge::v1::JOB_EVENT_KIND_CHECKPOINT);
      checkpoint.set_level("info");
      checkpoint.set_message("saved checkpoint at step 5");
      add(checkpoint);
    }
  }
  *job.mutable_end_time() = At(kStartSeconds + 2 * kTotalSteps + 2);
  if (succeed) {
    job.set_adapter_id("adapter-0001");
    job.set_adapter_name("fake-job");
    state(tuneforge::v1::JOB_STATE_SUCCEEDED, "");
  } else {
    job.mutable_error()->set_code("RESOURCE_EXHAUSTED");
    job.mutable_error()->set_message("out of memory at step 10; lower training.per_device_batch_size");
    state(tuneforge::v1::JOB_STATE_FAILED, "out of memory");
  }
  return script;
}

class FakeJobs final : public tuneforge::v1::FineTuningJobs::Service {
 public:
  explicit FakeJobs(Options options) : options_(std::move(options)), script_(Script(options_.succeed)) {}

  grpc::Status StartFineTuningJob(grpc::ServerContext*, const tuneforge::v1::StartFineTuningJobRequest* request,
                                  tuneforge::v1::StartFineTuningJobResponse* response) override {
    Log("start " + ToJson(*request));
    FineTuningJob job = script_.front().job;
    if (!request->name().empty()) job.set_name(request->name());
    // The settings echo what the request carried, so the test sees how --set was bound.
    auto& fields = *job.mutable_settings()->mutable_fields();
    *fields["lora"].mutable_struct_value() = request->lora();
    *fields["training"].mutable_struct_value() = request->training();
    *response->mutable_job() = job;
    return grpc::Status::OK;
  }

  grpc::Status GetFineTuningJob(grpc::ServerContext*, const tuneforge::v1::GetFineTuningJobRequest* request,
                                tuneforge::v1::GetFineTuningJobResponse* response) override {
    *response->mutable_job() = script_.back().job;
    return grpc::Status::OK;
  }

  grpc::Status ListFineTuningJobs(grpc::ServerContext*, const tuneforge::v1::ListFineTuningJobsRequest* request,
                                  tuneforge::v1::ListFineTuningJobsResponse* response) override {
    Log("list " + ToJson(*request));
    *response->add_jobs() = script_.back().job;
    return grpc::Status::OK;
  }

  grpc::Status WatchFineTuningJob(grpc::ServerContext* context, const tuneforge::v1::WatchFineTuningJobRequest* request,
                                  grpc::ServerWriter<tuneforge::v1::WatchFineTuningJobResponse>* writer) override {
    Log("watch job=" + request->job() + " after_sequence=" + std::to_string(request->after_sequence()));
    if (request->job() != script_.front().job.id() && request->job() != script_.front().job.name()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "job '" + request->job() + "' not found");
    }
    for (const Scripted& item : script_) {
      if (item.event.sequence() <= request->after_sequence()) continue;
      tuneforge::v1::WatchFineTuningJobResponse response;
      *response.mutable_event() = item.event;
      *response.mutable_job() = item.job;
      if (context->IsCancelled() || !writer->Write(response)) return grpc::Status::CANCELLED;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      if (item.event.sequence() == options_.stop_after) {
        // Die as a crashed server would: no goodbye to the client.
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        Log("exiting after sequence " + std::to_string(options_.stop_after));
        _exit(0);
      }
    }
    return grpc::Status::OK;
  }

 private:
  static std::string ToJson(const google::protobuf::Message& message) {
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(message, &json);
    return json;
  }

  void Log(const std::string& line) {
    if (options_.log.empty()) return;
    std::ofstream(options_.log, std::ios::app) << line << "\n";
  }

  Options options_;
  std::vector<Scripted> script_;
};

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--port")
      options.port = std::atoi(value.c_str());
    else if (flag == "--final")
      options.succeed = value != "failed";
    else if (flag == "--stop-after")
      options.stop_after = std::atoll(value.c_str());
    else if (flag == "--log")
      options.log = value;
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  FakeJobs service(options);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(options.port), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "cannot listen on port " << options.port << "\n";
    return 1;
  }
  std::cout << "listening on " << port << std::endl;
  server->Wait();
  return 0;
}
