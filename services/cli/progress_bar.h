// The progress display of a watched fine-tuning job: a bar with step, epoch, loss, tokens/s, ETA and state,
// redrawn in place on a terminal and printed as plain lines otherwise, and the summary at a final state. And the
// progress of a database document sent or received in pieces.
#ifndef TUNEFORGE_SERVICES_CLI_PROGRESS_BAR_H_
#define TUNEFORGE_SERVICES_CLI_PROGRESS_BAR_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "tuneforge/v1/jobs.pb.h"

namespace tuneforge::cli {

// "0:42", "12:03", "1:02:03".
std::string FormatClock(absl::Duration duration);

bool IsFinalState(v1::JobState state);

// "[#####.....] step 12/40  epoch 1/2  loss 1.234  eval 1.1  312 tok/s  ETA 0:42  RUNNING"
std::string FormatProgressLine(const v1::FineTuningJob& job, std::optional<absl::Duration> eta, int bar_width);

// "job x (id): SUCCEEDED after 0:42" and the adapter, the last metrics and the error, one per line.
std::string FormatJobSummary(const v1::FineTuningJob& job);

// Time left from the step rate between the first and the latest progress event (their server times), so that
// a replayed history gives the same estimate as a live one.
class EtaEstimator {
 public:
  void Observe(int64_t step, absl::Time at);
  std::optional<absl::Duration> Remaining(int64_t step, int64_t total_steps) const;

 private:
  int64_t first_step_ = -1;
  absl::Time first_time_;
  int64_t last_step_ = -1;
  absl::Time last_time_;
};

class JobProgressDisplay {
 public:
  // `terminal`: redraw one line in place (width in columns, 0 when unknown); otherwise print plain lines.
  JobProgressDisplay(std::ostream& out, bool terminal, int width);

  // Takes one streamed event with the job as it is after it.
  void Update(const v1::JobEvent& event, const v1::FineTuningJob& job);
  // Prints a line of its own (above the bar on a terminal).
  void Note(const std::string& line);
  // Ends the bar's line; call before printing anything else.
  void Finish();

 private:
  void Draw(const v1::FineTuningJob& job);

  std::ostream& out_;
  bool terminal_;
  int width_;
  bool bar_shown_ = false;
  std::string last_line_;
  EtaEstimator eta_;
};

// "[#####...............] 40.0/158.3 MiB exported"
std::string FormatTransferLine(const std::string& verb, int64_t done_bytes, int64_t total_bytes, int bar_width);

// The progress of a large document sent or received in pieces (admin export / import): one line redrawn in place,
// on a terminal only and for documents of kMinShownBytes or more; otherwise it prints nothing, as the command prints
// its own result.
class TransferProgress {
 public:
  static constexpr int64_t kMinShownBytes = int64_t{8} << 20;

  // `verb`: "exported", "imported".
  TransferProgress(std::ostream& out, bool terminal, std::string verb, int64_t total_bytes);
  // Redraws when the shown tenth of a MiB changes.
  void Update(int64_t done_bytes);
  // Ends the line; call before printing anything else.
  void Finish();

 private:
  std::ostream& out_;
  bool shown_;
  std::string verb_;
  int64_t total_bytes_;
  int64_t last_drawn_ = -1;
  bool drawn_ = false;
};

}  // namespace tuneforge::cli

#endif  // TUNEFORGE_SERVICES_CLI_PROGRESS_BAR_H_
