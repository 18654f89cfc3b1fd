// What a trainer reports on its /metrics endpoint: step time, tokens/s, loss and device memory from each progress
// report, Hub download bytes, and jobs by how they ended. Fed by the worker and the job runner.
#ifndef TUNEFORGE_SERVICES_TRAINER_WORKER_TRAINER_METRICS_H_
#define TUNEFORGE_SERVICES_TRAINER_WORKER_TRAINER_METRICS_H_

#include <cstdint>
#include <string>

#include "common/metrics.h"
#include "services/trainer/recipes/fine_tune.h"

namespace tuneforge {

class TrainerMetrics {
 public:
  // Adds the tuneforge_trainer_* families to `registry`, which must outlive this.
  explicit TrainerMetrics(MetricsRegistry& registry);

  // Each of the report's steps is one step_seconds observation of the report's mean step time; tokens/s, loss and
  // device memory (when the report has it) are set to the report's.
  void RecordProgress(const FineTuneProgress& progress);
  // Bytes received from the Hub (a resumed file's earlier part and files found in the cache are not counted).
  void AddDownloadedBytes(int64_t bytes);
  // outcome: succeeded, failed, cancelled, interrupted (the trainer stopped and handed the job back) or lease_lost.
  void RecordJobEnd(const std::string& outcome);

 private:
  HistogramFamily& step_seconds_;
  GaugeFamily& tokens_per_second_;
  GaugeFamily& loss_;
  GaugeFamily& device_memory_;
  CounterFamily& download_bytes_;
  CounterFamily& jobs_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_WORKER_TRAINER_METRICS_H_
