// The trainer's metric families and how progress reports, downloads and job ends update them.
#include "services/trainer/worker/trainer_metrics.h"

#include <vector>

namespace tuneforge {

namespace {

// Step times in seconds: a tiny model's CPU step up to a large model's step with many accumulated micro-batches.
std::vector<double> StepBuckets() { return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}; }

}  // namespace

TrainerMetrics::TrainerMetrics(MetricsRegistry& registry)
    : step_seconds_(registry.AddHistogram("tuneforge_trainer_step_seconds",
                                          "Wall time of an optimizer step (the mean over each progress report).",
                                          StepBuckets())),
      tokens_per_second_(registry.AddGauge("tuneforge_trainer_tokens_per_second",
                                           "Tokens trained on per second, over the last progress report.")),
      loss_(registry.AddGauge("tuneforge_trainer_loss", "Mean training loss over the last progress report.")),
      device_memory_(registry.AddGauge(
          "tuneforge_trainer_device_memory_bytes",
          "Peak bytes held by libtorch's allocator on the GPU since the current job's training began; on the CPU the "
          "trainer process's resident high-water mark since then.")),
      download_bytes_(registry.AddCounter("tuneforge_trainer_download_bytes_total",
                                          "Bytes received from the Hugging Face Hub into the cache.")),
      jobs_(registry.AddCounter("tuneforge_trainer_jobs_total", "Jobs this trainer ran, by how they ended.",
                                {"outcome"})) {
  // Every series exists from the start, so that rates and alerts see zeros rather than nothing.
  step_seconds_.WithLabels({});
  download_bytes_.WithLabels({});
  for (const char* outcome : {"succeeded", "failed", "cancelled", "interrupted", "lease_lost"}) {
    jobs_.WithLabels({outcome});
  }
}

void TrainerMetrics::RecordProgress(const FineTuneProgress& progress) {
  Histogram& steps = step_seconds_.WithLabels({});
  for (int64_t i = 0; i < progress.report_steps; ++i) steps.Observe(progress.step_seconds);
  tokens_per_second_.WithLabels({}).Set(progress.tokens_per_second);
  loss_.WithLabels({}).Set(progress.loss);
  if (progress.peak_device_memory_bytes) {
    device_memory_.WithLabels({}).Set(static_cast<double>(*progress.peak_device_memory_bytes));
  }
}

void TrainerMetrics::AddDownloadedBytes(int64_t bytes) {
  download_bytes_.WithLabels({}).Increment(static_cast<double>(bytes));
}

void TrainerMetrics::RecordJobEnd(const std::string& outcome) { jobs_.WithLabels({outcome}).Increment(); }

}  // namespace tuneforge
