// Wires the metadata service: migrate, open the store, build each resource's service and handler,
// and serve them with health checking and reflection.
#include "services/metadata/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/allowed_roots.h"
#include "common/hf_hub_client.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "grpc/health/v1/health.pb.h"
#include "services/metadata/adapters_handler.h"
#include "services/metadata/auth.h"
#include "services/metadata/admin_handler.h"
#include "services/metadata/configs_handler.h"
#include "services/metadata/datasets_handler.h"
#include "services/metadata/job_event_hub.h"
#include "services/metadata/job_metrics.h"
#include "services/metadata/jobs_handler.h"
#include "services/metadata/worker_queue_handler.h"
#include "services/metadata/models_handler.h"
#include "services/metadata/prompts_handler.h"
#include "services/metadata/request_limits.h"
#include "services/metadata/rpc_log.h"
#include "services/metadata/store.h"
#include "services/metadata/lineage_handler.h"
#include "services/metadata/evaluation_jobs_handler.h"
#include "services/metadata/evaluation_service.h"
#include "services/metadata/tokens_handler.h"
#include "spdlog/spdlog.h"

namespace tuneforge {

struct MetadataServer::Parts {
  std::unique_ptr<MetricsRegistry> metrics;  // first: outlives the gRPC server, whose interceptors count into it
  std::unique_ptr<Store> store;
  std::optional<AllowedRoots> roots;
  std::unique_ptr<HubClient> hub;
  std::unique_ptr<ModelService> model_service;
  std::unique_ptr<ModelsHandler> models_handler;
  std::unique_ptr<DatasetService> dataset_service;
  std::unique_ptr<DatasetsHandler> datasets_handler;
  std::unique_ptr<PromptService> prompt_service;
  std::unique_ptr<PromptsHandler> prompts_handler;
  std::unique_ptr<ConfigService> config_service;
  std::unique_ptr<ConfigsHandler> configs_handler;
  std::unique_ptr<AdapterService> adapter_service;
  std::unique_ptr<AdaptersHandler> adapters_handler;
  std::unique_ptr<AdminService> admin_service;
  std::unique_ptr<AdminHandler> admin_handler;
  std::unique_ptr<JobService> job_service;
  std::unique_ptr<ExportService> export_service;
  std::unique_ptr<JobEventHub> job_event_hub;
  std::unique_ptr<WorkerQueueHandler> worker_queue_handler;
  std::unique_ptr<JobsHandler> jobs_handler;
  std::unique_ptr<EvaluationService> evaluation_service;
  std::unique_ptr<EvaluationJobsHandler> evaluation_jobs_handler;
  std::unique_ptr<TokenService> token_service;
  std::unique_ptr<TokensHandler> tokens_handler;
  std::unique_ptr<LineageService> lineage_service;
  std::unique_ptr<LineageHandler> lineage_handler;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::unique_ptr<MetricsHttpServer> metrics_server;  // last: stops before the services its samplers read
};

MetadataServer::MetadataServer(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

MetadataServer::~MetadataServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<MetadataServer>> MetadataServer::Start(const MetadataServerOptions& options) {
  auto parts = std::make_unique<Parts>();
  ASSIGN_OR_RETURN(int version, MigrateDatabase(options.database_url));
  spdlog::info("database schema at version {}", version);
  ASSIGN_OR_RETURN(parts->store, Store::Open(options.database_url, options.pool_size));
  ASSIGN_OR_RETURN(AllowedRoots roots, AllowedRoots::Create(options.allowed_roots));
  parts->roots.emplace(std::move(roots));
  HubClientOptions hub_options;
  hub_options.endpoint = options.hf_endpoint;
  parts->hub = std::make_unique<HubClient>(hub_options);

  parts->model_service =
      std::make_unique<ModelService>(*parts->store, *parts->roots, *parts->hub, options.hf_token);
  parts->dataset_service =
      std::make_unique<DatasetService>(*parts->store, *parts->roots, *parts->hub, options.hf_token,
                                       options.dataset_limits);
  parts->datasets_handler = std::make_unique<DatasetsHandler>(*parts->dataset_service);
  parts->prompt_service = std::make_unique<PromptService>(*parts->store);
  parts->prompts_handler = std::make_unique<PromptsHandler>(*parts->prompt_service);
  parts->config_service = std::make_unique<ConfigService>(*parts->store);
  parts->configs_handler = std::make_unique<ConfigsHandler>(*parts->config_service);
  parts->adapter_service =
      std::make_unique<AdapterService>(*parts->store, *parts->roots, *parts->hub, options.hf_token);
  parts->adapters_handler = std::make_unique<AdaptersHandler>(*parts->adapter_service);
  parts->admin_service =
      std::make_unique<AdminService>(*parts->store, *parts->roots, options.artifacts_dir, options.max_document_bytes);
  parts->admin_handler = std::make_unique<AdminHandler>(*parts->admin_service);
  parts->job_service = std::make_unique<JobService>(*parts->store, options.artifacts_dir, options.lease_seconds);
  parts->job_event_hub = std::make_unique<JobEventHub>(options.database_url);
  parts->worker_queue_handler = std::make_unique<WorkerQueueHandler>(*parts->job_service);
  WorkerQueueHandler* queue = parts->worker_queue_handler.get();
  parts->jobs_handler =
      std::make_unique<JobsHandler>(*parts->job_service, *parts->job_event_hub, [queue] { queue->JobQueued(); });
  parts->evaluation_service =
      std::make_unique<EvaluationService>(*parts->store, *parts->job_service, options.artifacts_dir);
  parts->evaluation_jobs_handler = std::make_unique<EvaluationJobsHandler>(
      *parts->evaluation_service, *parts->job_service, *parts->job_event_hub, [queue] { queue->JobQueued(); });
  parts->export_service = std::make_unique<ExportService>(*parts->store, *parts->roots, *parts->model_service,
                                                          options.artifacts_dir);
  ExportService* exports = parts->export_service.get();
  parts->job_service->SetExportPublisher(
      [exports](const JobRecord& job, const ModelExportRecord& e) { return exports->Publish(job, e); });
  parts->models_handler =
      std::make_unique<ModelsHandler>(*parts->model_service, *exports, [queue] { queue->JobQueued(); });

  parts->token_service = std::make_unique<TokenService>(*parts->store);
  if (!options.worker_token.empty()) {
    parts->token_service->SetFixedSecret("worker-token-file", Role::kTrainer, options.worker_token);
  }
  parts->tokens_handler = std::make_unique<TokensHandler>(*parts->token_service);
  parts->lineage_service = std::make_unique<LineageService>(*parts->store);
  parts->lineage_handler = std::make_unique<LineageHandler>(*parts->lineage_service);
  if (options.auth && !options.admin_token_file.empty()) {
    ASSIGN_OR_RETURN(bool wrote, parts->token_service->BootstrapAdmin(options.admin_token_file));
    if (wrote) spdlog::info("wrote the first admin token to {} (mode 600)", options.admin_token_file);
  }
  if (!options.auth) spdlog::warn("--auth=off: calls without a token act as admin; listen on loopback only");

  if (options.metrics_port >= 0) {
    parts->metrics = std::make_unique<MetricsRegistry>();
    RegisterJobMetrics(*parts->metrics, *parts->job_service);
    ASSIGN_OR_RETURN(parts->metrics_server, MetricsHttpServer::Start(ListenHost(options.listen_address),
                                                                     options.metrics_port, *parts->metrics));
    spdlog::info("metrics at http://{}:{}/metrics", ListenHost(options.listen_address),
                 parts->metrics_server->port());
  }

  // Keeps grpc.health.v1 in the binary so that reflection can describe the health service.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   ServerCredentialsFromFiles(options.tls, "--tls-"));
  builder.AddListeningPort(options.listen_address, credentials, &parts->port);
  // gRPC has one receive limit per server: ImportDatabase's, which carries a whole database document. The
  // request-limit interceptor holds every other method to max_request_bytes.
  builder.SetMaxReceiveMessageSize(static_cast<int>(ImportRequestBytes(options.max_document_bytes)));
  builder.RegisterService(parts->models_handler.get());
  builder.RegisterService(parts->datasets_handler.get());
  builder.RegisterService(parts->prompts_handler.get());
  builder.RegisterService(parts->configs_handler.get());
  builder.RegisterService(parts->adapters_handler.get());
  builder.RegisterService(parts->admin_handler.get());
  builder.RegisterService(parts->jobs_handler.get());
  builder.RegisterService(parts->evaluation_jobs_handler.get());
  builder.RegisterService(parts->lineage_handler.get());
  builder.RegisterService(parts->worker_queue_handler.get());
  builder.RegisterService(parts->tokens_handler.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<RequestLimitInterceptorFactory>(
      RequestLimits{options.max_request_bytes, ImportRequestBytes(options.max_document_bytes)}));
  interceptors.push_back(std::make_unique<AuthInterceptorFactory>(*parts->token_service, options.auth));
  interceptors.push_back(std::make_unique<RpcLogInterceptorFactory>(parts->metrics.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  parts->server = builder.BuildAndStart();
  if (parts->server == nullptr || parts->port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_address,
                                               "; is another process using the port? choose another with --port"));
  }
  parts->server->GetHealthCheckService()->SetServingStatus(true);
  spdlog::info("tuneforge-metadata listening on port {}", parts->port);
  return std::unique_ptr<MetadataServer>(new MetadataServer(std::move(parts)));
}

int MetadataServer::port() const { return parts_->port; }

int MetadataServer::metrics_port() const {
  return parts_->metrics_server != nullptr ? parts_->metrics_server->port() : 0;
}

void MetadataServer::Shutdown() {
  if (parts_ != nullptr && parts_->server != nullptr) {
    parts_->server->GetHealthCheckService()->SetServingStatus(false);
    parts_->job_event_hub->Stop();  // ends Watch streams now rather than at the grace deadline
    parts_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
}

void MetadataServer::Wait() { parts_->server->Wait(); }

}  // namespace tuneforge
