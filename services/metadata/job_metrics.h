// The metadata service's job metrics: jobs by state and queue depth, read from the database at scrape time (one
// count per scrape serves both), and lease expiries.
#ifndef TUNEFORGE_SERVICES_METADATA_JOB_METRICS_H_
#define TUNEFORGE_SERVICES_METADATA_JOB_METRICS_H_

#include "common/metrics.h"
#include "services/metadata/job_service.h"

namespace tuneforge {

void RegisterJobMetrics(MetricsRegistry& registry, JobService& jobs);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_JOB_METRICS_H_
