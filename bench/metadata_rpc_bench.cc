// ListModels and AddModel throughput through tuneforge-metadata (gRPC over loopback) at 1, 8 and 32
// concurrent clients, against raw libpqxx running the same SQL with the same concurrency.
// Usage: metadata_rpc_bench [--seconds=S] (default 3 per measurement) [--only=list|add] [--clients=N] (one
// operation or client count, for profiling). Prints ratios (service / raw).
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <tuple>
#include <string>
#include <thread>
#include <vector>

#include "common/embedded_postgres.h"
#include "services/metadata/embedded_files.h"
#include "services/metadata/server.h"
#include "spdlog/spdlog.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tuneforge/v1/models.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

// Runs `op(thread_index)` on `threads` threads for `seconds`; returns completed operations per second.
double Throughput(int threads, double seconds, const std::function<bool(int)>& op) {
  std::atomic<bool> stop{false};
  std::atomic<long> done{0}, failed{0};
  std::vector<std::thread> workers;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      while (!stop.load(std::memory_order_relaxed)) {
        if (op(t)) done.fetch_add(1, std::memory_order_relaxed);
        else failed.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  if (failed.load() > 0) std::fprintf(stderr, "warning: %ld operations failed\n", failed.load());
  return done.load() / elapsed;
}

std::string Sql(const std::string& file) {
  for (const auto& [name, sql] : tuneforge::EmbeddedSqlFiles()) {
    if (name == file) return sql;
  }
  std::fprintf(stderr, "missing SQL file %s\n", file.c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  std::string only;
  std::vector<int> client_counts = {1, 8, 32};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--seconds=", 0) == 0) seconds = std::atof(arg.c_str() + 10);
    if (arg.rfind("--only=", 0) == 0) only = arg.substr(7);
    if (arg.rfind("--clients=", 0) == 0) client_counts = {std::clamp(std::atoi(arg.c_str() + 10), 1, 32)};
  }
  spdlog::set_level(spdlog::level::warn);
  char dir_template[] = "/tmp/tuneforge-bench-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  std::filesystem::permissions(dir, std::filesystem::perms::all & ~std::filesystem::perms::others_write &
                                        ~std::filesystem::perms::group_write);
  const std::string data = dir + "/data";
  std::filesystem::create_directories(data);
  const std::string make_demo = std::string("python3 ") + TUNEFORGE_SOURCE_DIR + "/scripts/make_demo_data.py " + data +
                                " >/dev/null";
  if (std::system(make_demo.c_str()) != 0) return 1;

  tuneforge::EmbeddedPostgresOptions pg_options;
  pg_options.data_dir = dir + "/postgres";
  pg_options.durable = false;
  auto pg = tuneforge::EmbeddedPostgres::Start(pg_options);
  if (!pg.ok()) {
    std::fprintf(stderr, "%s\n", pg.status().ToString().c_str());
    return 1;
  }
  tuneforge::MetadataServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.database_url = (*pg)->url();
  options.allowed_roots = {data};
  options.pool_size = 32;
  auto server = tuneforge::MetadataServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  const std::string address = "127.0.0.1:" + std::to_string((*server)->port());

  // 100 models to list (one registered through the API, the rest as rows), as a realistic first page.
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = tuneforge::v1::Models::NewStub(channel);
  {
    grpc::ClientContext ctx;
    tuneforge::v1::AddModelRequest add;
    add.set_name("demo-llama");
    add.mutable_local()->set_path(data + "/demo-llama");
    tuneforge::v1::AddModelResponse response;
    grpc::Status s = stub->AddModel(&ctx, add, &response);
    if (!s.ok()) {
      std::fprintf(stderr, "AddModel: %s\n", s.error_message().c_str());
      return 1;
    }
    pqxx::connection conn(options.database_url);
    pqxx::work tx(conn);
    tx.exec_params(
        "INSERT INTO models (name, source_type, source, family) "
        "SELECT 'model-' || lpad(i::text, 3, '0'), 'local', '/bench/' || i, 'llama' FROM generate_series(1, 99) i");
    tx.exec_params(
        "INSERT INTO model_revisions (model_id, revision_number, fingerprint, family, files, bos_token_ids, "
        "eos_token_ids, parameter_count, config_json) "
        "SELECT m.id, 1, md5(m.name), 'llama', r.files, r.bos_token_ids, r.eos_token_ids, r.parameter_count, "
        "r.config_json FROM models m, (SELECT * FROM model_revisions LIMIT 1) r WHERE m.name LIKE 'model-%'");
    tx.commit();
  }

  // One channel per client thread, as separate clients would have.
  std::vector<std::unique_ptr<tuneforge::v1::Models::Stub>> stubs;
  std::vector<std::unique_ptr<grpc::health::v1::Health::Stub>> health_stubs;
  std::vector<std::unique_ptr<pqxx::connection>> conns;
  for (int i = 0; i < 32; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // distinct subchannels
    auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    stubs.push_back(tuneforge::v1::Models::NewStub(channel));
    health_stubs.push_back(grpc::health::v1::Health::NewStub(channel));
    conns.push_back(std::make_unique<pqxx::connection>(options.database_url));
    conns.back()->prepare("model_list", Sql("model_list.sql"));
    for (const char* f : {"model_get_by_name", "model_revision_find"}) {
      conns.back()->prepare(f, Sql(std::string(f) + ".sql"));
    }
  }
  std::string model_id;
  {
    pqxx::work tx(*conns[0]);
    model_id = tx.exec("SELECT id::text FROM models WHERE name = 'demo-llama'")[0][0].as<std::string>();
  }
  std::string fingerprint;
  {
    pqxx::work tx(*conns[0]);
    fingerprint = tx.exec("SELECT fingerprint FROM model_revisions r JOIN models m ON m.id = r.model_id "
                          "WHERE m.name = 'demo-llama'")[0][0].as<std::string>();
  }

  auto grpc_list = [&](int t) {
    grpc::ClientContext ctx;
    tuneforge::v1::ListModelsRequest request;
    request.set_page_size(50);
    tuneforge::v1::ListModelsResponse response;
    return stubs[t]->ListModels(&ctx, request, &response).ok() && response.models_size() == 50;
  };
  // The service answers a page with one statement outside a transaction block; so does the reference.
  auto raw_list = [&](int t) {
    pqxx::nontransaction tx(*conns[t]);
    std::optional<std::string> none;
    pqxx::result r = tx.exec_prepared("model_list", none, none, none, none, 51);
    return r.size() == 51;
  };
  // AddModel of a model that exists: the service lists the directory (and re-reads and hashes it only when a file's
  // stat changed), then finds the model and the revision with that fingerprint, two statements outside a
  // transaction block; the raw reference runs the same two statements only.
  auto grpc_add = [&](int t) {
    grpc::ClientContext ctx;
    tuneforge::v1::AddModelRequest add;
    add.set_name("demo-llama");
    add.mutable_local()->set_path(data + "/demo-llama");
    tuneforge::v1::AddModelResponse response;
    return stubs[t]->AddModel(&ctx, add, &response).ok() &&
           response.outcome() == tuneforge::v1::ADD_OUTCOME_EXISTING;
  };
  auto raw_add = [&](int t) {
    pqxx::nontransaction tx(*conns[t]);
    pqxx::result m = tx.exec_prepared("model_get_by_name", "demo-llama");
    pqxx::result r = tx.exec_prepared("model_revision_find", model_id, fingerprint);
    return m.size() == 1 && r.size() == 1;
  };

  // The floor of any RPC on this server: the health check, which touches neither the database nor our interceptors'
  // work beyond a method-name check. No RPC can beat it, so it bounds what a ratio against in-process SQL can reach.
  auto grpc_empty = [&](int t) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckResponse response;
    return health_stubs[t]->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &response).ok();
  };

  // The same health check on a bare gRPC server (no interceptors, no other services): what gRPC itself costs here,
  // so the row above shows what the server's interceptors (limits, auth, metrics) add to every call.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder bare_builder;
  int bare_port = 0;
  bare_builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &bare_port);
  std::unique_ptr<grpc::Server> bare = bare_builder.BuildAndStart();
  std::vector<std::unique_ptr<grpc::health::v1::Health::Stub>> bare_stubs;
  for (int i = 0; i < 32; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);
    bare_stubs.push_back(grpc::health::v1::Health::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(bare_port), grpc::InsecureChannelCredentials(), args)));
  }
  auto bare_empty = [&](int t) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckResponse response;
    return bare_stubs[t]->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &response).ok();
  };

  std::printf("tuneforge-metadata RPC throughput vs raw libpqxx (same SQL, same concurrency), %.0f s each\n", seconds);
  std::printf("%-28s %8s %14s %14s %8s\n", "operation", "clients", "service op/s", "raw op/s", "ratio");
  std::map<int, double> floor;
  if (only.empty()) {
    for (int clients : client_counts) {
      floor[clients] = Throughput(clients, seconds, grpc_empty);
      std::printf("%-28s %8d %14.0f %14s %8s\n", "empty RPC (Health/Check)", clients, floor[clients], "-", "-");
      std::printf("%-28s %8d %14.0f %14s %8s\n", "  same, bare gRPC server", clients,
                  Throughput(clients, seconds, bare_empty), "-", "-");
    }
  }
  for (const auto& [name, service_op, raw_op] :
       std::vector<std::tuple<std::string, std::function<bool(int)>, std::function<bool(int)>>>{
           {"ListModels (page of 50)", grpc_list, raw_list}, {"AddModel (existing, local)", grpc_add, raw_add}}) {
    if (!only.empty() && name.find(only == "list" ? "List" : "Add") != 0) continue;
    for (int clients : client_counts) {
      const double service = Throughput(clients, seconds, service_op);
      const double raw = Throughput(clients, seconds, raw_op);
      std::printf("%-28s %8d %14.0f %14.0f %8.2f", name.c_str(), clients, service, raw, service / raw);
      // What the ratio could be at most: one empty RPC per call, then the raw SQL, in sequence.
      if (floor.count(clients)) {
        std::printf("   ceiling %.2f", (1.0 / (1.0 / raw + 1.0 / floor[clients])) / raw);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  stubs.clear();
  bare_stubs.clear();
  bare->Shutdown();
  conns.clear();
  (*server)->Shutdown();
  server->reset();
  (void)(*pg)->Stop();
  std::filesystem::remove_all(dir);
  return 0;
}
