// Progress line, ETA and final summary of a watched fine-tuning job, and the progress line of a document transfer.
#include "services/cli/progress_bar.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/cli/request_binding.h"

namespace tuneforge::cli {

namespace {

absl::Time ToTime(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

std::string StateName(v1::JobState state) {
  return ShortEnumName(*v1::JobState_descriptor()->FindValueByNumber(state));
}

std::string Number(double value) { return absl::StrFormat("%.4g", value); }

}  // namespace

std::string FormatClock(absl::Duration duration) {
  int64_t total = absl::ToInt64Seconds(duration);
  if (total < 0) total = 0;
  const int64_t hours = total / 3600, minutes = total / 60 % 60, seconds = total % 60;
  return hours > 0 ? absl::StrFormat("%d:%02d:%02d", hours, minutes, seconds)
                   : absl::StrFormat("%d:%02d", minutes, seconds);
}

bool IsFinalState(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED || state == v1::JOB_STATE_CANCELLED;
}

std::string FormatProgressLine(const v1::FineTuningJob& job, std::optional<absl::Duration> eta, int bar_width) {
  const v1::JobProgress& progress = job.progress();
  const v1::JobMetrics& metrics = job.metrics();
  double fraction = progress.total_steps() > 0 ? static_cast<double>(progress.step()) / progress.total_steps() : 0;
  if (job.state() == v1::JOB_STATE_SUCCEEDED) fraction = 1;
  fraction = std::min(1.0, std::max(0.0, fraction));
  const int filled = static_cast<int>(std::floor(fraction * bar_width));
  std::string line =
      absl::StrCat("[", std::string(filled, '#'), std::string(bar_width - filled, '.'), "] step ", progress.step(), "/",
                   progress.total_steps() > 0 ? absl::StrCat(progress.total_steps()) : "?");
  if (progress.num_epochs() > 0) absl::StrAppend(&line, "  epoch ", progress.epoch(), "/", progress.num_epochs());
  if (progress.step() > 0) absl::StrAppend(&line, "  loss ", Number(metrics.train_loss()));
  if (metrics.has_eval_loss()) absl::StrAppend(&line, "  eval ", Number(metrics.eval_loss()));
  if (metrics.tokens_per_second() > 0) {
    absl::StrAppend(&line, "  ", static_cast<int64_t>(std::llround(metrics.tokens_per_second())), " tok/s");
  }
  if (metrics.mfu() > 0) absl::StrAppend(&line, "  MFU ", static_cast<int64_t>(std::llround(100 * metrics.mfu())), "%");
  if (metrics.peak_memory_gib() > 0) {
    absl::StrAppend(&line, "  ", absl::StrFormat("%.1f", metrics.peak_memory_gib()), " GiB");
  }
  if (!IsFinalState(job.state())) absl::StrAppend(&line, "  ETA ", eta.has_value() ? FormatClock(*eta) : "?");
  absl::StrAppend(&line, "  ", StateName(job.state()));
  return line;
}

std::string FormatJobSummary(const v1::FineTuningJob& job) {
  std::string out = absl::StrCat("job ", job.name(), " (", job.id(), "): ", StateName(job.state()));
  if (job.start_time().seconds() > 0 && job.end_time().seconds() > 0) {
    absl::StrAppend(&out, " after ", FormatClock(ToTime(job.end_time()) - ToTime(job.start_time())));
  }
  absl::StrAppend(&out, "\n");
  if (!job.adapter_id().empty()) absl::StrAppend(&out, "adapter: ", job.adapter_name(), " (", job.adapter_id(), ")\n");
  if (!job.export_id().empty()) absl::StrAppend(&out, "export: ", job.export_id(), "\n");
  if (job.kind() == v1::JOB_KIND_EVALUATION) {
    absl::StrAppend(&out, "candidates scored: ", job.progress().step(), "/", job.progress().total_steps(), "\n");
  } else if (job.progress().step() > 0) {
    absl::StrAppend(&out, "steps: ", job.progress().step(), "/", job.progress().total_steps(),
                    "  train loss: ", Number(job.metrics().train_loss()));
    if (job.metrics().has_eval_loss()) absl::StrAppend(&out, "  eval loss: ", Number(job.metrics().eval_loss()));
    absl::StrAppend(&out, "\n");
  }
  if (!job.error().code().empty() || !job.error().message().empty()) {
    absl::StrAppend(&out, "error: ", job.error().code(), ": ", job.error().message(), "\n");
  }
  return out;
}

void EtaEstimator::Observe(int64_t step, absl::Time at) {
  // A retried job starts again from its checkpoint: measure the new attempt on its own.
  if (first_step_ < 0 || step < last_step_) {
    first_step_ = step;
    first_time_ = at;
  }
  last_step_ = step;
  last_time_ = at;
}

std::optional<absl::Duration> EtaEstimator::Remaining(int64_t step, int64_t total_steps) const {
  const int64_t steps_done = last_step_ - first_step_;
  const absl::Duration elapsed = last_time_ - first_time_;
  if (total_steps <= 0 || steps_done <= 0 || elapsed <= absl::ZeroDuration()) return std::nullopt;
  return elapsed * (static_cast<double>(std::max<int64_t>(0, total_steps - step)) / steps_done);
}

JobProgressDisplay::JobProgressDisplay(std::ostream& out, bool terminal, int width)
    : out_(out), terminal_(terminal), width_(width) {}

void JobProgressDisplay::Update(const v1::JobEvent& event, const v1::FineTuningJob& job) {
  switch (event.kind()) {
    case v1::JOB_EVENT_KIND_PROGRESS:
      eta_.Observe(event.progress().step(), event.has_time() ? ToTime(event.time()) : absl::Now());
      break;
    case v1::JOB_EVENT_KIND_STATE:
      Note(absl::StrCat("state: ", StateName(event.state()), event.message().empty() ? "" : " - ", event.message()));
      break;
    case v1::JOB_EVENT_KIND_LOG:
    case v1::JOB_EVENT_KIND_CHECKPOINT:
      Note(absl::StrCat(event.level().empty() ? "info" : event.level(), ": ", event.message()));
      break;
    default:
      break;
  }
  // Plain output gets a line per progress event, not per log line.
  if (terminal_ || event.kind() == v1::JOB_EVENT_KIND_PROGRESS) Draw(job);
}

void JobProgressDisplay::Draw(const v1::FineTuningJob& job) {
  std::string line = FormatProgressLine(job, eta_.Remaining(job.progress().step(), job.progress().total_steps()), 20);
  if (!terminal_) {
    out_ << line << "\n" << std::flush;
    return;
  }
  if (width_ > 1 && static_cast<int>(line.size()) >= width_) line.resize(width_ - 1);
  out_ << "\r\033[K" << line << std::flush;
  bar_shown_ = true;
  last_line_ = line;
}

void JobProgressDisplay::Note(const std::string& line) {
  if (terminal_ && bar_shown_) {
    out_ << "\r\033[K" << line << "\n" << last_line_ << std::flush;
  } else {
    out_ << line << "\n" << std::flush;
  }
}

void JobProgressDisplay::Finish() {
  if (terminal_ && bar_shown_) out_ << "\n" << std::flush;
  bar_shown_ = false;
}

std::string FormatTransferLine(const std::string& verb, int64_t done_bytes, int64_t total_bytes, int bar_width) {
  const double fraction =
      total_bytes > 0 ? std::min(1.0, std::max(0.0, static_cast<double>(done_bytes) / total_bytes)) : 0;
  const int filled = static_cast<int>(std::floor(fraction * bar_width));
  constexpr double kMiB = 1 << 20;
  return absl::StrFormat("[%s%s] %.1f/%.1f MiB %s", std::string(filled, '#'), std::string(bar_width - filled, '.'),
                         done_bytes / kMiB, total_bytes / kMiB, verb);
}

TransferProgress::TransferProgress(std::ostream& out, bool terminal, std::string verb, int64_t total_bytes)
    : out_(out), shown_(terminal && total_bytes >= kMinShownBytes), verb_(std::move(verb)), total_bytes_(total_bytes) {}

void TransferProgress::Update(int64_t done_bytes) {
  if (!shown_) return;
  const int64_t tenth_mib = done_bytes / ((1 << 20) / 10);
  if (tenth_mib == last_drawn_) return;
  last_drawn_ = tenth_mib;
  out_ << "\r\033[K" << FormatTransferLine(verb_, done_bytes, total_bytes_, 20) << std::flush;
  drawn_ = true;
}

void TransferProgress::Finish() {
  if (drawn_) out_ << "\n" << std::flush;
  drawn_ = false;
}

}  // namespace tuneforge::cli
