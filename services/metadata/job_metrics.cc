// Samplers over JobService. One count by state serves both gauges of a scrape: the first of them to be sampled
// reads it, the second takes it (if under a second old) and leaves nothing behind for the next scrape.
#include "services/metadata/job_metrics.h"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace tuneforge {

namespace {

class StateCounts {
 public:
  explicit StateCounts(JobService& jobs) : jobs_(jobs) {}

  absl::StatusOr<std::map<std::string, int64_t>> Get() {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = absl::Now();
    if (kept_.has_value() && now - read_at_ < absl::Seconds(1)) {
      std::map<std::string, int64_t> counts = std::move(*kept_);
      kept_.reset();
      return counts;
    }
    ASSIGN_OR_RETURN(auto counts, jobs_.CountJobsByState());
    kept_ = std::map<std::string, int64_t>(counts.begin(), counts.end());
    read_at_ = now;
    return *kept_;
  }

 private:
  JobService& jobs_;
  std::mutex mu_;
  absl::Time read_at_;
  std::optional<std::map<std::string, int64_t>> kept_;
};

}  // namespace

void RegisterJobMetrics(MetricsRegistry& registry, JobService& jobs) {
  auto counts = std::make_shared<StateCounts>(jobs);
  registry.AddSampledGauge("tuneforge_jobs", "Fine-tuning jobs by state.", {"state"},
                           [counts]() -> absl::StatusOr<std::vector<MetricSample>> {
                             ASSIGN_OR_RETURN(auto by_state, counts->Get());
                             std::vector<MetricSample> out;
                             for (const auto& [state, n] : by_state) out.push_back({{state}, static_cast<double>(n)});
                             return out;
                           });
  registry.AddSampledGauge("tuneforge_job_queue_depth", "Fine-tuning jobs waiting for a trainer (QUEUED).", {},
                           [counts]() -> absl::StatusOr<std::vector<MetricSample>> {
                             ASSIGN_OR_RETURN(auto by_state, counts->Get());
                             return std::vector<MetricSample>{{{}, static_cast<double>(by_state["QUEUED"])}};
                           });
  JobService* service = &jobs;
  registry.AddSampledCounter(
      "tuneforge_job_lease_expiries_total",
      "Job leases that expired because the trainer stopped reporting (the job was handed to another trainer, or "
      "ended when it had no attempts left or was being cancelled).",
      {}, [service]() -> absl::StatusOr<std::vector<MetricSample>> {
        return std::vector<MetricSample>{{{}, static_cast<double>(service->lease_expiries())}};
      });
}

}  // namespace tuneforge
