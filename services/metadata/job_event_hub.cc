// LISTEN tuneforge_job_events on a dedicated connection; reconnects while the database is away.
#include "services/metadata/job_event_hub.h"

#include <pqxx/pqxx>

#include "spdlog/spdlog.h"

namespace tuneforge {

namespace {

class Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection& conn, std::function<void(const std::string&)> on_notify)
      : pqxx::notification_receiver(conn, "tuneforge_job_events"), on_notify_(std::move(on_notify)) {}
  void operator()(const std::string& payload, int) override { on_notify_(payload); }

 private:
  std::function<void(const std::string&)> on_notify_;
};

}  // namespace

JobEventHub::JobEventHub(std::string database_url) : database_url_(std::move(database_url)) {
  thread_ = std::thread([this] { Run(); });
}

JobEventHub::~JobEventHub() { Stop(); }

void JobEventHub::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t JobEventHub::Version(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return versions_[job_id] + reconnects_;
}

uint64_t JobEventHub::WaitForChange(const std::string& job_id, uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return versions_[job_id] + reconnects_ != seen || stop_.load(); });
  return versions_[job_id] + reconnects_;
}

void JobEventHub::Notify(const std::string& job_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++versions_[job_id];
  }
  cv_.notify_all();
}

void JobEventHub::Run() {
  bool warned = false;
  while (!stop_) {
    try {
      pqxx::connection conn(database_url_);
      Receiver receiver(conn, [this](const std::string& job_id) { Notify(job_id); });
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++reconnects_;
      }
      cv_.notify_all();
      if (warned) spdlog::info("job event listener reconnected to the database");
      warned = false;
      while (!stop_) conn.await_notification(0, 200000);  // 0.2 s, so that stop is noticed
    } catch (const std::exception& e) {
      if (!warned) spdlog::warn("job event listener lost the database ({}); retrying every second", e.what());
      warned = true;
      for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

}  // namespace tuneforge
