// gRPC handler of tuneforge.v1.Prompts: proto <-> records, and the service's status as the RPC's status.
#ifndef TUNEFORGE_SERVICES_METADATA_PROMPTS_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_PROMPTS_HANDLER_H_

#include "services/metadata/prompt_service.h"
#include "tuneforge/v1/prompts.grpc.pb.h"

namespace tuneforge {

class PromptsHandler final : public v1::Prompts::Service {
 public:
  explicit PromptsHandler(PromptService& service) : service_(service) {}

  grpc::Status AddPrompt(grpc::ServerContext*, const v1::AddPromptRequest*, v1::AddPromptResponse*) override;
  grpc::Status GetPrompt(grpc::ServerContext*, const v1::GetPromptRequest*, v1::GetPromptResponse*) override;
  grpc::Status ListPrompts(grpc::ServerContext*, const v1::ListPromptsRequest*, v1::ListPromptsResponse*) override;
  grpc::Status RemovePrompt(grpc::ServerContext*, const v1::RemovePromptRequest*, v1::RemovePromptResponse*) override;

 private:
  PromptService& service_;
};

// Conversion shared with other handlers.
void ToProto(const PromptRecord& record, v1::Prompt* out);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_PROMPTS_HANDLER_H_
