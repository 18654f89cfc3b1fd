// tuneforge.v1.Prompts over PromptService.
#include "services/metadata/prompts_handler.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "services/metadata/auth.h"
#include "services/metadata/proto_convert.h"

namespace tuneforge {

void ToProto(const PromptRecord& p, v1::Prompt* out) {
  out->set_id(p.id);
  out->set_name(p.name);
  out->set_description(p.description);
  out->set_revision_number(p.revision_number);
  out->set_dataset_id(p.dataset_id);
  out->set_dataset_revision_id(p.dataset_revision_id);
  out->set_mode(p.mode == "chat"     ? v1::PROMPT_MODE_CHAT
                : p.mode == "alpaca" ? v1::PROMPT_MODE_ALPACA
                                     : v1::PROMPT_MODE_TEMPLATE);
  out->set_input_template(p.input_template);
  out->set_completion_template(p.completion_template);
  out->set_messages_column(p.messages_column);
  out->set_message_format(p.message_format);
  out->set_instruction_column(p.instruction_column);
  out->set_input_column(p.input_column);
  out->set_output_column(p.output_column);
  out->set_use_chat_template(p.use_chat_template);
  for (const std::string& s : p.slots) out->add_slots(s);
  out->set_fingerprint(p.fingerprint);
  ToProto(p.create_time, out->mutable_create_time());
}

grpc::Status PromptsHandler::AddPrompt(grpc::ServerContext* context, const v1::AddPromptRequest* request,
                                       v1::AddPromptResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  AddPromptInput input;
  input.name = request->name();
  input.description = request->description();
  input.dataset = request->dataset();
  input.dataset_revision_id = request->dataset_revision_id();
  if (request->has_template_()) {
    input.mode = "template";
    input.input_template = request->template_().input_template();
    input.completion_template = request->template_().completion_template();
  } else if (request->has_chat()) {
    input.mode = "chat";
    input.messages_column = request->chat().messages_column();
    input.message_format = request->chat().message_format();
  } else if (request->has_alpaca()) {
    input.mode = "alpaca";
    input.instruction_column = request->alpaca().instruction_column();
    input.input_column = request->alpaca().input_column();
    input.output_column = request->alpaca().output_column();
    input.use_chat_template = request->alpaca().use_chat_template();
  }
  absl::StatusOr<AddPromptResult> result = service_.AddPrompt(input);
  if (!result.ok()) return ToGrpcStatus(result.status());
  ToProto(result->prompt, response->mutable_prompt());
  response->set_outcome(ToProto(result->outcome));
  return grpc::Status::OK;
}

grpc::Status PromptsHandler::GetPrompt(grpc::ServerContext* context, const v1::GetPromptRequest* request,
                                       v1::GetPromptResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<PromptRecord> prompt = service_.GetPrompt(request->prompt());
  if (!prompt.ok()) return ToGrpcStatus(prompt.status());
  ToProto(*prompt, response->mutable_prompt());
  return grpc::Status::OK;
}

grpc::Status PromptsHandler::ListPrompts(grpc::ServerContext* context, const v1::ListPromptsRequest* request,
                                         v1::ListPromptsResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  ListPromptsInput input;
  input.page_size = request->page_size();
  input.page_token = request->page_token();
  input.name_prefix = request->name_prefix();
  input.dataset = request->dataset();
  absl::StatusOr<PromptPage> page = service_.ListPrompts(input);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const PromptRecord& p : page->prompts) ToProto(p, response->add_prompts());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status PromptsHandler::RemovePrompt(grpc::ServerContext* context, const v1::RemovePromptRequest* request,
                                          v1::RemovePromptResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  absl::StatusOr<std::vector<std::string>> removed = service_.RemovePrompt(request->prompt(), request->force());
  if (!removed.ok()) return ToGrpcStatus(removed.status());
  for (const std::string& r : *removed) response->add_removed_dependents(r);
  return grpc::Status::OK;
}

}  // namespace tuneforge
