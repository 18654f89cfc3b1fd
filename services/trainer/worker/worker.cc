// Lease loop, heartbeat thread and result reporting.
#include "services/trainer/worker/worker.h"

#include <algorithm>
#include <condition_variable>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/utf8.h"
#include "services/trainer/worker/trainer_metrics.h"
#include "spdlog/spdlog.h"

namespace tuneforge {

namespace {

namespace iv1 = internal::v1;

bool Retryable(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kAborted ||
         code == absl::StatusCode::kDeadlineExceeded || code == absl::StatusCode::kResourceExhausted;
}

void ToProto(const FineTuneProgress& p, iv1::HeartbeatRequest* out) {
  auto* progress = out->mutable_progress();
  progress->set_step(p.step);
  progress->set_total_steps(p.total_steps);
  progress->set_epoch(p.epoch);
  progress->set_num_epochs(p.num_epochs);
  progress->set_tokens(p.tokens);
  auto* metrics = out->mutable_metrics();
  metrics->set_train_loss(p.loss);
  if (p.eval_loss) {
    metrics->set_eval_loss(*p.eval_loss);
  }
  metrics->set_learning_rate(p.learning_rate);
  metrics->set_grad_norm(p.grad_norm);
  metrics->set_tokens_per_second(p.tokens_per_second);
  metrics->set_mfu(p.mfu);
  if (p.peak_device_memory_bytes) {
    metrics->set_peak_memory_gib(static_cast<double>(*p.peak_device_memory_bytes) / static_cast<double>(1 << 30));
  }
}

// How a run ended, as tuneforge_trainer_jobs_total{outcome} counts it.
std::string JobOutcome(const absl::Status& result, bool lease_lost, bool cancel_requested, bool stopping) {
  if (lease_lost) return "lease_lost";
  if (result.ok()) return "succeeded";
  if (result.code() != absl::StatusCode::kCancelled) return "failed";
  if (cancel_requested) return "cancelled";
  return stopping ? "interrupted" : "failed";
}

}  // namespace

Worker::Worker(WorkerOptions options) : options_(std::move(options)) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  queue_ = iv1::WorkerQueue::NewStub(
      grpc::CreateCustomChannel(options_.metadata_address,
                                options_.credentials != nullptr ? options_.credentials
                                                                : grpc::InsecureChannelCredentials(),
                                args));
}

std::unique_ptr<grpc::ClientContext> Worker::Context(std::chrono::seconds timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  context->AddMetadata("authorization", "Bearer " + options_.worker_token);
  return context;
}

void Worker::Interrupt() {
  std::lock_guard<std::mutex> lock(mu_);
  if (lease_call_ != nullptr) lease_call_->TryCancel();
}

WorkerStatus Worker::Status() {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

void Worker::Run(const std::atomic<bool>& stop) {
  bool warned = false;
  while (!stop) {
    iv1::LeaseJobRequest request;
    request.set_worker_id(options_.worker_id);
    request.set_wait_seconds(options_.lease_wait_seconds);
    iv1::LeaseJobResponse response;
    auto context = Context(std::chrono::seconds(options_.lease_wait_seconds + 20));
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop) break;
      lease_call_ = context.get();
    }
    const grpc::Status status = queue_->LeaseJob(context.get(), request, &response);
    {
      std::lock_guard<std::mutex> lock(mu_);
      lease_call_ = nullptr;
    }
    if (stop && !response.has_lease()) break;
    if (!status.ok()) {
      if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
          status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
        spdlog::error("the metadata service refused this trainer: {}", status.error_message());
      } else if (!warned) {
        spdlog::warn("cannot lease from {} ({}); retrying", options_.metadata_address, status.error_message());
      }
      warned = true;
      for (int i = 0; i < 20 && !stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (warned) spdlog::info("connected to the metadata service at {}", options_.metadata_address);
    warned = false;
    if (response.has_lease()) RunJob(response.lease(), stop);
  }
}

void Worker::RunJob(const iv1::JobLease& lease, const std::atomic<bool>& stop) {
  spdlog::info("job {} ({}) attempt {}: started", lease.job_name(), lease.job_id(), lease.attempt());
  {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = WorkerStatus{true, lease.job_id(), {}};
  }
  std::mutex mu;
  std::condition_variable wake;
  iv1::HeartbeatRequest pending;  // logs, checkpoints and progress not yet delivered
  bool finished = false;
  std::atomic<bool> cancel_requested{false}, lease_lost{false}, beats_failing{false};
  auto fill_ids = [&](iv1::HeartbeatRequest* r) {
    r->set_job_id(lease.job_id());
    r->set_attempt(lease.attempt());
    r->set_worker_id(options_.worker_id);
  };

  // Sends what is pending; on failure it stays pending for the next beat. Returns false once the lease is lost.
  auto beat = [&]() -> bool {
    iv1::HeartbeatRequest request;
    {
      std::lock_guard<std::mutex> lock(mu);
      request = pending;
    }
    fill_ids(&request);
    iv1::HeartbeatResponse response;
    auto context = Context(std::chrono::seconds(10));
    const grpc::Status status = queue_->Heartbeat(context.get(), request, &response);
    if (status.ok()) {
      if (beats_failing.exchange(false)) spdlog::info("job {}: heartbeats delivered again", lease.job_id());
      std::lock_guard<std::mutex> lock(mu);
      // Drop what was delivered; keep what arrived meanwhile.
      pending.mutable_logs()->DeleteSubrange(0, request.logs_size());
      pending.mutable_updates()->DeleteSubrange(0, request.updates_size());
      pending.mutable_checkpoints()->DeleteSubrange(0, request.checkpoints_size());
      if (request.progress_updated() && pending.progress().step() == request.progress().step()) {
        pending.set_progress_updated(false);
      }
      if (response.cancel_requested()) cancel_requested = true;
      return true;
    }
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
        status.error_code() == grpc::StatusCode::NOT_FOUND) {
      spdlog::warn("job {}: lease lost ({}); stopping without reporting", lease.job_id(), status.error_message());
      lease_lost = true;
      return false;
    }
    if (!beats_failing.exchange(true)) {
      spdlog::warn("job {}: heartbeat failed ({}); training goes on and reports are kept until the metadata "
                   "service answers again", lease.job_id(), status.error_message());
    }
    return true;
  };

  std::thread heartbeats([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!finished && !lease_lost) {
      wake.wait_for(lock, options_.heartbeat_interval);
      if (finished) break;
      lock.unlock();
      beat();
      lock.lock();
    }
  });

  FineTuneHooks hooks;
  hooks.on_progress = [&](const FineTuneProgress& p) {
    if (options_.runner.metrics != nullptr) options_.runner.metrics->RecordProgress(p);
    std::lock_guard<std::mutex> lock(mu);
    ToProto(p, &pending);
    pending.set_progress_updated(true);
    auto* update = pending.add_updates();
    *update->mutable_progress() = pending.progress();
    *update->mutable_metrics() = pending.metrics();
    std::lock_guard<std::mutex> status_lock(mu_);
    status_.last = pending;
  };
  hooks.on_event = [&](std::string_view level, std::string_view message) {
    spdlog::info("job {}: {}", lease.job_id(), std::string(message));
    std::lock_guard<std::mutex> lock(mu);
    auto* log = pending.add_logs();
    log->set_level(std::string(level));
    log->set_message(std::string(message));
  };
  hooks.on_checkpoint = [&](const CheckpointInfo& c) {
    {
      std::lock_guard<std::mutex> lock(mu);
      auto* checkpoint = pending.add_checkpoints();
      checkpoint->set_step(c.step);
      checkpoint->set_epoch(c.epoch);
      checkpoint->set_path(c.path);
      checkpoint->set_train_loss(c.loss);
    }
    wake.notify_all();  // record it now: a kill right after must find it
  };
  hooks.cancelled = [&] { return cancel_requested.load() || lease_lost.load() || stop.load(); };

  // Every kind ends in a FineTuneResult-shaped outcome for the reporting below; exports and evaluations keep
  // their own results beside it.
  const bool export_job = lease.kind() == "export";
  const bool evaluation_job = lease.kind() == "evaluation";
  absl::StatusOr<FineTuneResult> result = absl::UnknownError("not run");
  std::vector<CandidateMetrics> evaluated;
  if (export_job) {
    absl::StatusOr<ExportResult> exported = RunLeasedExport(lease, options_.runner, hooks);
    result = exported.ok() ? absl::StatusOr<FineTuneResult>(FineTuneResult{}) : exported.status();
    if (exported.ok()) result->adapter_dir = exported->output_dir;
  } else if (evaluation_job) {
    absl::StatusOr<std::vector<CandidateMetrics>> metrics = RunLeasedEvaluation(lease, options_.runner, hooks);
    result = metrics.ok() ? absl::StatusOr<FineTuneResult>(FineTuneResult{}) : metrics.status();
    if (metrics.ok()) {
      result->adapter_dir = lease.output_dir();
      evaluated = *std::move(metrics);
    }
  } else {
    result = RunLeasedJob(lease, options_.runner, hooks);
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    finished = true;
  }
  wake.notify_all();
  heartbeats.join();

  // Deliver the last events, then the outcome; wait out a metadata service that is restarting (up to 2 min).
  auto with_retries = [&](const std::function<grpc::Status()>& call) {
    grpc::Status status;
    for (int i = 0; i < 120 && !lease_lost; ++i) {
      status = call();
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
          status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
        return status;
      }
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    return status;
  };
  if (!lease_lost) {
    with_retries([&] {
      return beat() ? grpc::Status::OK : grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "lease lost");
    });
  }
  if (lease_lost) {
    spdlog::warn("job {}: another attempt owns it now; result dropped", lease.job_id());
  } else if (result.ok()) {
    iv1::CompleteJobRequest request;
    request.set_job_id(lease.job_id());
    request.set_attempt(lease.attempt());
    request.set_worker_id(options_.worker_id);
    request.set_adapter_dir(result->adapter_dir);
    {
      std::lock_guard<std::mutex> lock(mu);
      *request.mutable_progress() = pending.progress();
      *request.mutable_metrics() = pending.metrics();
    }
    // Sample texts are cut so that the report stays within the server's 4 MiB request limit (3 MiB of text).
    size_t texts = 0;
    for (const CandidateMetrics& m : evaluated) texts += 4 * m.samples.size();
    const size_t max_text = std::min<size_t>(64 << 10, (3 << 20) / std::max<size_t>(texts, 1));
    const auto cut = [max_text](const std::string& text) { return text.substr(0, Utf8PrefixLength(text, max_text)); };
    for (const CandidateMetrics& m : evaluated) {
      tuneforge::v1::CandidateResult* r = request.add_evaluation_results();
      r->set_adapter_id(m.adapter_id);
      r->set_adapter_name(m.adapter_name);
      r->set_loss(m.loss);
      r->set_perplexity(m.perplexity);
      r->set_examples(m.examples);
      r->set_tokens(m.tokens);
      r->set_label_tokens(m.label_tokens);
      r->set_generation_tokens_per_second(m.generation_tokens_per_second);
      for (const SampleResult& sample : m.samples) {
        tuneforge::v1::EvaluationSample* out = r->add_samples();
        out->set_row(sample.row);
        out->set_prompt(cut(sample.prompt));
        out->set_reference(cut(sample.reference));
        out->set_output(cut(sample.output));
        out->set_stop_reason(sample.stop_reason);
      }
    }
    if (!export_job && !evaluation_job) {
      // A run resumed from its last checkpoint reports no step of its own: the result has the totals.
      request.mutable_progress()->set_step(result->steps);
      request.mutable_progress()->set_total_steps(result->steps);
      request.mutable_progress()->set_tokens(result->train_tokens);
      if (!result->step_losses.empty() && request.metrics().train_loss() == 0) {
        request.mutable_metrics()->set_train_loss(result->step_losses.back());
      }
      if (!result->eval_losses.empty()) request.mutable_metrics()->set_eval_loss(result->eval_losses.back());
    }
    iv1::CompleteJobResponse response;
    // An export's completion moves the directory and, for a merged model, hashes every file it registers.
    const grpc::Status status = with_retries([&] {
      auto context = Context(std::chrono::seconds(export_job ? 1800 : 60));
      return queue_->CompleteJob(context.get(), request, &response);
    });
    if (status.ok() && evaluation_job) {
      spdlog::info("job {}: evaluated {} candidates", lease.job_id(), evaluated.size());
    } else if (status.ok() && export_job) {
      spdlog::info("job {}: exported to {}{}", lease.job_id(), response.export_destination(),
                   response.exported_model_id().empty() ? ""
                                                        : absl::StrCat("; model ", response.exported_model_id()));
    } else if (status.ok()) {
      spdlog::info("job {}: succeeded after {} steps; adapter {}", lease.job_id(), result->steps, response.adapter_id());
    } else {
      spdlog::error("job {}: could not report success: {}", lease.job_id(), status.error_message());
    }
  } else {
    iv1::FailJobRequest request;
    request.set_job_id(lease.job_id());
    request.set_attempt(lease.attempt());
    request.set_worker_id(options_.worker_id);
    const absl::StatusCode code = result.status().code();
    if (code == absl::StatusCode::kCancelled && cancel_requested) {
      request.set_cancelled(true);
      request.set_code("CANCELLED");
      request.set_message("cancelled");
    } else if (code == absl::StatusCode::kCancelled && stop) {
      request.set_code("UNAVAILABLE");
      request.set_message(absl::StrCat("trainer ", options_.worker_id, " shut down; another trainer resumes the job"));
      request.set_retryable(true);
    } else {
      request.set_code(absl::StatusCodeToString(code));
      request.set_message(std::string(result.status().message()));
      request.set_retryable(Retryable(code));
    }
    iv1::FailJobResponse response;
    const grpc::Status status = with_retries([&] {
      auto context = Context(std::chrono::seconds(30));
      return queue_->FailJob(context.get(), request, &response);
    });
    spdlog::info("job {}: {} ({}: {})", lease.job_id(),
                 status.ok() ? tuneforge::v1::JobState_Name(response.state()) : "could not report the failure",
                 request.code(), request.message());
  }
  if (options_.runner.metrics != nullptr) {
    options_.runner.metrics->RecordJobEnd(JobOutcome(result.status(), lease_lost, cancel_requested, stop));
  }
  std::lock_guard<std::mutex> lock(mu_);
  status_ = WorkerStatus{};
}

}  // namespace tuneforge
