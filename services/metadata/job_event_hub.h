// Wakes Watch streams when a job gets a new event: a thread LISTENs on PostgreSQL's tuneforge_job_events channel
// (a trigger NOTIFYs it on every job_events insert, whichever server wrote it) and bumps a per-job counter.
#ifndef TUNEFORGE_SERVICES_METADATA_JOB_EVENT_HUB_H_
#define TUNEFORGE_SERVICES_METADATA_JOB_EVENT_HUB_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace tuneforge {

class JobEventHub {
 public:
  explicit JobEventHub(std::string database_url);
  ~JobEventHub();  // stops the listener thread
  JobEventHub(const JobEventHub&) = delete;
  JobEventHub& operator=(const JobEventHub&) = delete;

  // A number that changes whenever job_id gets an event.
  uint64_t Version(const std::string& job_id);
  // Waits until Version(job_id) differs from `seen`, or `timeout` passes (a lost connection or notification only
  // delays a stream by that much). Returns the current version.
  uint64_t WaitForChange(const std::string& job_id, uint64_t seen, std::chrono::milliseconds timeout);

  // Stops the listener and wakes every waiter (server shutdown); stopped() is true afterwards.
  void Stop();
  bool stopped() const { return stop_.load(); }

 private:
  void Run();
  void Notify(const std::string& job_id);

  std::string database_url_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, uint64_t> versions_;
  uint64_t reconnects_ = 0;  // a reconnect may have missed notifications: every waiter re-reads
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_JOB_EVENT_HUB_H_
