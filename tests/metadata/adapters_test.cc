// Adapters end to end: the real server over loopback gRPC, a real PostgreSQL, the fake Hub, and the reference
// PEFT adapters of every supported family checked against their base models.
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/local_model.h"
#include "common/sha256.h"
#include "nlohmann/json.hpp"
#include "services/metadata/request_checks.h"
#include "tests/metadata/support/metadata_test_env.h"

namespace tuneforge::testing {
namespace {

using ::google::protobuf::util::MessageDifferencer;
namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

const char* const kCases[] = {"llama", "llama3_rope", "mistral", "qwen2", "phi3", "phi3_longrope", "gemma"};
constexpr char kToken[] = "hf_adapter_secret_token";

MATCHER_P2(GrpcIs, code, message_matcher, "") {
  *result_listener << "status is " << arg.error_code() << ": " << arg.error_message();
  return arg.error_code() == code &&
         ::testing::ExplainMatchResult(message_matcher, arg.error_message(), result_listener);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string ReferenceLora(const std::string& reference_case) {
  return GeneratedReference() + "/" + reference_case + "/lora";
}

class AdaptersTest : public ::testing::Test {
 protected:
  // A copy of a reference adapter under the allowed root, with only the files PEFT saves.
  std::string AdapterDir(const std::string& reference_case, const std::string& relative) {
    const std::string dir = env_.CopyDir(ReferenceLora(reference_case), relative);
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (name != "adapter_config.json" && name != "adapter_model.safetensors") fs::remove(entry.path());
    }
    return fs::canonical(dir).string();
  }
  std::map<std::string, std::string> HubFiles(const std::string& reference_case) {
    return {{"adapter_config.json", ReadFile(ReferenceLora(reference_case) + "/adapter_config.json")},
            {"adapter_model.safetensors", ReadFile(ReferenceLora(reference_case) + "/adapter_model.safetensors")},
            {"README.md", "# a LoRA adapter\n"}};
  }
  v1::AddAdapterRequest Local(const std::string& name, const std::string& model, const std::string& path) {
    v1::AddAdapterRequest r;
    r.set_name(name);
    r.set_model(model);
    r.mutable_local()->set_path(path);
    return r;
  }
  v1::AddAdapterRequest Hub(const std::string& name, const std::string& model, const std::string& repo,
                            const std::string& revision = "", const std::string& token = "") {
    v1::AddAdapterRequest r;
    r.set_name(name);
    r.set_model(model);
    r.mutable_huggingface()->set_repo_id(repo);
    r.mutable_huggingface()->set_revision(revision);
    r.mutable_huggingface()->set_token(token);
    return r;
  }
  grpc::Status Add(const v1::AddAdapterRequest& request, v1::AddAdapterResponse* response = nullptr) {
    v1::AddAdapterResponse local;
    return env_.adapters()->AddAdapter(Context().get(), request, response != nullptr ? response : &local);
  }
  grpc::Status Get(const std::string& ref, v1::Adapter* out = nullptr) {
    v1::GetAdapterRequest request;
    request.set_adapter(ref);
    v1::GetAdapterResponse response;
    grpc::Status s = env_.adapters()->GetAdapter(Context().get(), request, &response);
    if (out != nullptr) *out = response.adapter();
    return s;
  }
  grpc::Status Remove(const std::string& ref, bool force, v1::RemoveAdapterResponse* response = nullptr) {
    v1::RemoveAdapterRequest request;
    request.set_adapter(ref);
    request.set_force(force);
    v1::RemoveAdapterResponse local;
    return env_.adapters()->RemoveAdapter(Context().get(), request, response != nullptr ? response : &local);
  }
  std::vector<std::string> ListNames(v1::ListAdaptersRequest request, int page_size) {
    std::vector<std::string> names;
    request.set_page_size(page_size);
    for (int pages = 0; pages < 100; ++pages) {
      v1::ListAdaptersResponse response;
      grpc::Status s = env_.adapters()->ListAdapters(Context().get(), request, &response);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      EXPECT_LE(response.adapters_size(), page_size);
      for (const auto& a : response.adapters()) names.push_back(a.name());
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return names;
  }
  grpc::Status List(const v1::ListAdaptersRequest& request, v1::ListAdaptersResponse* response) {
    return env_.adapters()->ListAdapters(Context().get(), request, response);
  }
  int Count(const std::string& sql) {
    pqxx::connection c(env_.database_url());
    pqxx::work w(c);
    return w.exec1(sql)[0].as<int>();
  }
  grpc::Status Export(const std::string& model, const std::string& adapter, const std::string& destination,
                      v1::ExportModelResponse* response) {
    v1::ExportModelRequest request;
    request.set_model(model);
    request.set_adapter(adapter);
    request.set_type(v1::EXPORT_TYPE_ADAPTER);
    request.set_destination_path(destination);
    return env_.models()->ExportModel(Context().get(), request, response);
  }

  MetadataTestEnv env_;
};

TEST_F(AdaptersTest, ImportsTheReferenceAdapterOfEveryFamilyAgainstItsBaseModel) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  for (const char* reference_case : kCases) {
    SCOPED_TRACE(reference_case);
    const std::string model_name = std::string("base-") + reference_case;
    const v1::Model model = env_.AddReferenceModel(reference_case, model_name);
    const std::string dir = AdapterDir(reference_case, std::string("adapters/") + reference_case);
    v1::AddAdapterResponse added;
    ASSERT_THAT(Add(Local(std::string("lora-") + reference_case, model_name, dir), &added), GrpcIs(grpc::OK, ""));
    EXPECT_EQ(added.outcome(), v1::ADD_OUTCOME_CREATED);
    const v1::Adapter& a = added.adapter();
    EXPECT_TRUE(IsUuid(a.id()));
    EXPECT_EQ(a.name(), std::string("lora-") + reference_case);
    EXPECT_EQ(a.source_type(), v1::SOURCE_TYPE_LOCAL);
    EXPECT_EQ(a.source(), dir);
    EXPECT_EQ(a.commit_sha(), "");
    EXPECT_EQ(a.model_id(), model.id());
    EXPECT_EQ(a.model_revision_id(), model.latest_revision().id());
    EXPECT_EQ(a.job_id(), "");
    EXPECT_EQ(a.peft_type(), "LORA");

    const nlohmann::json config = nlohmann::json::parse(ReadFile(dir + "/adapter_config.json"));
    EXPECT_EQ(a.rank(), config["r"].get<int>());
    EXPECT_DOUBLE_EQ(a.alpha(), config["lora_alpha"].get<double>());
    EXPECT_EQ(a.use_rslora(), config.value("use_rslora", false));
    std::vector<std::string> modules = config["target_modules"].get<std::vector<std::string>>();
    std::sort(modules.begin(), modules.end());
    EXPECT_EQ(std::vector<std::string>(a.target_modules().begin(), a.target_modules().end()), modules);

    ASSERT_THAT(a.files(), SizeIs(2));
    EXPECT_EQ(a.files(0).path(), "adapter_config.json");
    EXPECT_EQ(a.files(1).path(), "adapter_model.safetensors");
    EXPECT_EQ(a.files(1).size(), static_cast<int64_t>(fs::file_size(dir + "/adapter_model.safetensors")));
    EXPECT_EQ(a.files(1).sha256(), *Sha256File(dir + "/adapter_model.safetensors"));
    // The fingerprint of a local adapter is the fingerprint of its directory.
    absl::StatusOr<std::vector<LocalFile>> files = ListDirectoryFiles(dir);
    ASSERT_TRUE(files.ok());
    ASSERT_TRUE(HashDirectoryFiles(dir, *files).ok());
    EXPECT_EQ(a.fingerprint(), DirectoryFingerprint(*files));

    // save_or_fetch: the same name, source and content is the existing adapter.
    v1::AddAdapterResponse again;
    ASSERT_THAT(Add(Local(a.name(), model.id(), dir), &again), GrpcIs(grpc::OK, ""));
    EXPECT_EQ(again.outcome(), v1::ADD_OUTCOME_EXISTING);
    EXPECT_TRUE(MessageDifferencer::Equals(again.adapter(), a)) << again.adapter().DebugString();

    v1::Adapter by_id, by_name;
    ASSERT_THAT(Get(a.id(), &by_id), GrpcIs(grpc::OK, ""));
    ASSERT_THAT(Get(a.name(), &by_name), GrpcIs(grpc::OK, ""));
    EXPECT_TRUE(MessageDifferencer::Equals(by_id, a)) << by_id.DebugString();
    EXPECT_TRUE(MessageDifferencer::Equals(by_name, a)) << by_name.DebugString();
  }
  EXPECT_EQ(Count("SELECT count(*) FROM adapters"), 7);
}

TEST_F(AdaptersTest, AnAdapterForAnotherBaseIsRefusedNamingTheTensor) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  env_.AddReferenceModel("gemma", "tiny-gemma");
  const std::string dir = AdapterDir("llama", "adapters/llama");
  EXPECT_THAT(Add(Local("llama-on-gemma", "tiny-gemma", dir)),
              GrpcIs(grpc::INVALID_ARGUMENT, AllOf(HasSubstr("adapter_model.safetensors"), HasSubstr("tensor '"),
                                                   HasSubstr("base_model.model.model.layers."))));
  EXPECT_EQ(Count("SELECT count(*) FROM adapters"), 0);
}

TEST_F(AdaptersTest, ModelRevisionMustBelongToTheModel) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const v1::Model llama = env_.AddReferenceModel("llama", "tiny-llama");
  const v1::Model qwen = env_.AddReferenceModel("qwen2", "tiny-qwen");
  const std::string dir = AdapterDir("llama", "adapters/llama");
  v1::AddAdapterRequest request = Local("pinned", "tiny-llama", dir);
  request.set_model_revision_id(qwen.latest_revision().id());
  EXPECT_THAT(Add(request), GrpcIs(grpc::NOT_FOUND, AllOf(HasSubstr("model_revision_id " + qwen.latest_revision().id()),
                                                          HasSubstr("is not a revision of model 'tiny-llama'"),
                                                          HasSubstr("ListModelRevisions"))));
  request.set_model_revision_id("0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10");
  EXPECT_THAT(Add(request), GrpcIs(grpc::NOT_FOUND, HasSubstr("is not a revision of model 'tiny-llama'")));
  request.set_model_revision_id("rev-1");
  EXPECT_THAT(Add(request), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("model_revision_id 'rev-1' is not an id")));
  request.set_model_revision_id(llama.latest_revision().id());
  v1::AddAdapterResponse added;
  ASSERT_THAT(Add(request, &added), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(added.adapter().model_revision_id(), llama.latest_revision().id());
}

TEST_F(AdaptersTest, SaveOrFetchConflictsAreAlreadyExists) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  env_.AddReferenceModel("llama", "tiny-llama");
  const std::string first_dir = AdapterDir("llama", "adapters/first");
  const std::string second_dir = AdapterDir("llama", "adapters/second");
  v1::AddAdapterResponse first;
  ASSERT_THAT(Add(Local("my-lora", "tiny-llama", first_dir), &first), GrpcIs(grpc::OK, ""));

  // Same name, another source.
  EXPECT_THAT(Add(Local("my-lora", "tiny-llama", second_dir)),
              GrpcIs(grpc::ALREADY_EXISTS,
                     AllOf(HasSubstr("adapter 'my-lora' already exists (" + first.adapter().id() + ")"),
                           HasSubstr("source local '" + first_dir + "'"),
                           HasSubstr("choose another name or remove it"))));
  // Another name, same source and content: names the first.
  EXPECT_THAT(Add(Local("other-name", "tiny-llama", first_dir)),
              GrpcIs(grpc::ALREADY_EXISTS, AllOf(HasSubstr("already registered as adapter 'my-lora'"),
                                                 HasSubstr(first.adapter().id()))));
  // Same name and source, changed content.
  std::ofstream(first_dir + "/README.md") << "changed\n";
  EXPECT_THAT(Add(Local("my-lora", "tiny-llama", first_dir)),
              GrpcIs(grpc::ALREADY_EXISTS, AllOf(HasSubstr("adapter 'my-lora' already exists"),
                                                 HasSubstr("different content"),
                                                 HasSubstr("choose another name or remove it"))));
  // Another name for the changed content is a new adapter.
  v1::AddAdapterResponse changed;
  ASSERT_THAT(Add(Local("my-lora-v2", "tiny-llama", first_dir), &changed), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(changed.outcome(), v1::ADD_OUTCOME_CREATED);
  EXPECT_NE(changed.adapter().fingerprint(), first.adapter().fingerprint());
  EXPECT_THAT(changed.adapter().files(), SizeIs(3));
  EXPECT_EQ(Count("SELECT count(*) FROM adapters"), 2);
}

TEST_F(AdaptersTest, ANewBaseRevisionDoesNotMakeTheSameImportAConflict) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const v1::Model model = env_.AddReferenceModel("llama", "tiny-llama");
  const std::string dir = AdapterDir("llama", "adapters/llama");
  v1::AddAdapterResponse first;
  ASSERT_THAT(Add(Local("my-lora", "tiny-llama", dir), &first), GrpcIs(grpc::OK, ""));

  // The base model gains a revision (a changed file in its directory).
  env_.WriteFile("models/tiny-llama/README.md", "new revision\n");
  v1::AddModelRequest model_request;
  model_request.set_name("tiny-llama");
  model_request.mutable_local()->set_path(env_.root() + "/models/tiny-llama");
  v1::AddModelResponse model_response;
  ASSERT_TRUE(env_.models()->AddModel(Context().get(), model_request, &model_response).ok());
  ASSERT_EQ(model_response.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  const std::string new_revision = model_response.revision().id();
  ASSERT_NE(new_revision, model.latest_revision().id());

  // Without a revision, the adapter of the same model is the existing one, still bound to its old revision.
  v1::AddAdapterResponse again;
  ASSERT_THAT(Add(Local("my-lora", "tiny-llama", dir), &again), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(again.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(again.adapter().model_revision_id(), model.latest_revision().id());
  // Asking for the new revision explicitly is a different record under the same name.
  v1::AddAdapterRequest pinned = Local("my-lora", "tiny-llama", dir);
  pinned.set_model_revision_id(new_revision);
  EXPECT_THAT(Add(pinned), GrpcIs(grpc::ALREADY_EXISTS, AllOf(HasSubstr("adapter 'my-lora' already exists"),
                                                              HasSubstr("another base"),
                                                              HasSubstr(model.latest_revision().id()))));
  pinned.set_model_revision_id(model.latest_revision().id());
  ASSERT_THAT(Add(pinned, &again), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(again.outcome(), v1::ADD_OUTCOME_EXISTING);
}

TEST_F(AdaptersTest, HubAdapterIsCheckedFromItsConfigAndSafetensorsHeader) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  env_.AddReferenceModel("llama", "tiny-llama");
  std::map<std::string, std::string> files = HubFiles("llama");
  const std::string sha = env_.hub().AddCommit(RepoKind::kModel, "org/llama-lora", files);
  v1::AddAdapterResponse added;
  ASSERT_THAT(Add(Hub("hub-lora", "tiny-llama", "org/llama-lora"), &added), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(added.outcome(), v1::ADD_OUTCOME_CREATED);
  const v1::Adapter& a = added.adapter();
  EXPECT_EQ(a.source_type(), v1::SOURCE_TYPE_HUGGINGFACE);
  EXPECT_EQ(a.source(), "org/llama-lora");
  EXPECT_EQ(a.commit_sha(), sha);
  EXPECT_EQ(a.peft_type(), "LORA");
  EXPECT_EQ(a.rank(), 8);
  EXPECT_DOUBLE_EQ(a.alpha(), 16);
  EXPECT_THAT(a.target_modules(),
              ElementsAre("down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"));
  ASSERT_THAT(a.files(), SizeIs(3));
  EXPECT_EQ(a.files(0).path(), "README.md");
  EXPECT_EQ(a.files(2).path(), "adapter_model.safetensors");
  EXPECT_EQ(a.files(2).size(), static_cast<int64_t>(files["adapter_model.safetensors"].size()));
  EXPECT_EQ(a.files(2).sha256(), Sha256Hex(files["adapter_model.safetensors"]));
  EXPECT_EQ(a.fingerprint().size(), 64u);
  // Files are read from the pinned commit, not from the branch.
  const std::vector<std::string> targets = env_.hub().request_targets();
  EXPECT_THAT(targets, Contains(HasSubstr("/org/llama-lora/resolve/" + sha + "/adapter_config.json")));

  v1::AddAdapterResponse again;
  ASSERT_THAT(Add(Hub("hub-lora", "tiny-llama", "org/llama-lora", sha), &again), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(again.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(again.adapter().id(), a.id());

  // A new commit is new content: same name -> ALREADY_EXISTS; another name -> a new adapter.
  files["README.md"] = "# updated\n";
  const std::string sha2 = env_.hub().AddCommit(RepoKind::kModel, "org/llama-lora", files);
  EXPECT_THAT(Add(Hub("hub-lora", "tiny-llama", "org/llama-lora")),
              GrpcIs(grpc::ALREADY_EXISTS, AllOf(HasSubstr("adapter 'hub-lora' already exists"),
                                                 HasSubstr("different content"))));
  v1::AddAdapterResponse second;
  ASSERT_THAT(Add(Hub("hub-lora-2", "tiny-llama", "org/llama-lora"), &second), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(second.adapter().commit_sha(), sha2);
  EXPECT_NE(second.adapter().fingerprint(), a.fingerprint());
  // The old commit under another name is the first adapter again.
  EXPECT_THAT(Add(Hub("hub-lora-3", "tiny-llama", "org/llama-lora", sha)),
              GrpcIs(grpc::ALREADY_EXISTS, HasSubstr("already registered as adapter 'hub-lora'")));
}

TEST_F(AdaptersTest, HubErrorsAreSpecificAndTokensAreNeverStored) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  env_.AddReferenceModel("llama", "tiny-llama");
  env_.AddReferenceModel("gemma", "tiny-gemma");
  std::map<std::string, std::string> files = HubFiles("llama");
  env_.hub().AddCommit(RepoKind::kModel, "org/private-lora", files);
  env_.hub().SetPrivate("org/private-lora", true);
  env_.hub().AllowToken(kToken);

  EXPECT_THAT(Add(Hub("p", "tiny-llama", "org/private-lora")),
              GrpcIs(grpc::NOT_FOUND, HasSubstr("org/private-lora")));
  EXPECT_THAT(Add(Hub("p", "tiny-llama", "org/private-lora", "", "hf_wrong")),
              GrpcIs(grpc::UNAUTHENTICATED, AllOf(HasSubstr("org/private-lora"), Not(HasSubstr("hf_wrong")))));
  v1::AddAdapterResponse added;
  ASSERT_THAT(Add(Hub("p", "tiny-llama", "org/private-lora", "", kToken), &added), GrpcIs(grpc::OK, ""));
  EXPECT_THAT(env_.hub().authorization_headers(), Contains(std::string("Bearer ") + kToken));
  {
    pqxx::connection c(env_.database_url());
    pqxx::work w(c);
    for (const auto& row : w.exec("SELECT row_to_json(a)::text FROM adapters a")) {
      EXPECT_THAT(row[0].as<std::string>(), Not(HasSubstr(kToken)));
    }
  }

  EXPECT_THAT(Add(Hub("x", "tiny-llama", "org/missing")), GrpcIs(grpc::NOT_FOUND, HasSubstr("org/missing")));
  EXPECT_THAT(Add(Hub("x", "tiny-llama", "org/private-lora", "no-such-branch", kToken)),
              GrpcIs(grpc::NOT_FOUND, HasSubstr("no-such-branch")));

  std::map<std::string, std::string> no_weights = files;
  no_weights.erase("adapter_model.safetensors");
  env_.hub().AddCommit(RepoKind::kModel, "org/no-weights", no_weights);
  EXPECT_THAT(Add(Hub("x", "tiny-llama", "org/no-weights")),
              GrpcIs(grpc::INVALID_ARGUMENT, AllOf(HasSubstr("huggingface.repo_id: 'org/no-weights'"),
                                                   HasSubstr("has no adapter_model.safetensors"))));
  std::map<std::string, std::string> no_config = files;
  no_config.erase("adapter_config.json");
  env_.hub().AddCommit(RepoKind::kModel, "org/no-config", no_config);
  EXPECT_THAT(Add(Hub("x", "tiny-llama", "org/no-config")),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("has no adapter_config.json")));

  std::map<std::string, std::string> corrupt = files;
  corrupt["adapter_model.safetensors"] = std::string("\xff\xff\xff\xff\xff\xff\x00\x00", 8) + "{}";
  env_.hub().AddCommit(RepoKind::kModel, "org/corrupt-lora", corrupt);
  EXPECT_THAT(Add(Hub("x", "tiny-llama", "org/corrupt-lora")),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("org/corrupt-lora/adapter_model.safetensors")));

  env_.hub().AddCommit(RepoKind::kModel, "org/llama-lora", files);
  EXPECT_THAT(Add(Hub("x", "tiny-gemma", "org/llama-lora")),
              GrpcIs(grpc::INVALID_ARGUMENT, AllOf(HasSubstr("org/llama-lora/adapter_model.safetensors: tensor '"))));

  EXPECT_THAT(Add(Hub("x", "tiny-llama", "bad repo id")),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("huggingface.repo_id")));
  EXPECT_THAT(Add(Hub("x", "tiny-llama", "org/llama-lora", "a..b")),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("huggingface.revision")));
  EXPECT_THAT(Add(Hub("x", "tiny-llama", "org/llama-lora", "", std::string(1025, 't'))),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("huggingface.token is longer than 1024")));
  EXPECT_EQ(Count("SELECT count(*) FROM adapters"), 1);
}

TEST_F(AdaptersTest, LocalPathsAreConfinedToTheAllowedRoots) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  env_.AddReferenceModel("llama", "tiny-llama");
  const std::string outside = env_.outside() + "/lora";
  fs::copy(ReferenceLora("llama"), outside, fs::copy_options::recursive);
  EXPECT_THAT(Add(Local("x", "tiny-llama", outside)),
              GrpcIs(grpc::PERMISSION_DENIED, AllOf(HasSubstr("local.path"), HasSubstr("outside the allowed roots"))));
  const std::string traversal =
      env_.root() + "/../" + fs::path(env_.outside()).filename().string() + "/lora";
  EXPECT_THAT(Add(Local("x", "tiny-llama", traversal)),
              GrpcIs(grpc::PERMISSION_DENIED, HasSubstr("outside the allowed roots")));
  fs::create_symlink(outside, env_.root() + "/escape");
  EXPECT_THAT(Add(Local("x", "tiny-llama", env_.root() + "/escape")),
              GrpcIs(grpc::PERMISSION_DENIED, HasSubstr("outside the allowed roots")));
  EXPECT_THAT(Add(Local("x", "tiny-llama", env_.root() + "/no-such-dir")),
              GrpcIs(grpc::NOT_FOUND, AllOf(HasSubstr("local.path"), HasSubstr("does not exist"))));
  EXPECT_THAT(Add(Local("x", "tiny-llama", "relative/lora")),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("must be an absolute path")));
  EXPECT_THAT(Add(Local("x", "tiny-llama", "")), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("local.path is required")));

  // Inside the root but not a PEFT adapter.
  const std::string empty_dir = fs::path(env_.WriteFile("not-an-adapter/notes.txt", "hello")).parent_path().string();
  EXPECT_THAT(Add(Local("x", "tiny-llama", empty_dir)), GrpcIs(grpc::NOT_FOUND, HasSubstr("adapter_config.json")));
  const std::string dir = AdapterDir("llama", "adapters/prefix");
  std::ofstream(dir + "/adapter_config.json", std::ios::trunc) << R"({"peft_type": "PREFIX_TUNING"})";
  EXPECT_THAT(Add(Local("x", "tiny-llama", dir)),
              GrpcIs(grpc::INVALID_ARGUMENT, AllOf(HasSubstr("adapter_config.json"), HasSubstr("PREFIX_TUNING"))));
  EXPECT_EQ(Count("SELECT count(*) FROM adapters"), 0);
}

TEST_F(AdaptersTest, BadRequestFieldsAreNamed) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  env_.AddReferenceModel("llama", "tiny-llama");
  const std::string dir = AdapterDir("llama", "adapters/llama");
  EXPECT_THAT(Add(Local("", "tiny-llama", dir)), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("name is required")));
  EXPECT_THAT(Add(Local("has space", "tiny-llama", dir)),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("name 'has space' contains a character that is not allowed")));
  EXPECT_THAT(Add(Local("x'; DROP TABLE adapters; --", "tiny-llama", dir)),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("contains a character that is not allowed")));
  EXPECT_THAT(Add(Local(std::string(129, 'n'), "tiny-llama", dir)),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("name is 129 characters long")));
  EXPECT_THAT(Add(Local("0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10", "tiny-llama", dir)),
              GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("looks like an id")));
  v1::AddAdapterRequest long_description = Local("x", "tiny-llama", dir);
  long_description.set_description(std::string(5000, 'd'));
  EXPECT_THAT(Add(long_description), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("description is 5000 bytes long")));
  EXPECT_THAT(Add(Local("x", "", dir)), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("model is required")));
  EXPECT_THAT(Add(Local("x", "no-such-model", dir)),
              GrpcIs(grpc::NOT_FOUND, AllOf(HasSubstr("model 'no-such-model' not found"), HasSubstr("ListModels"))));
  EXPECT_THAT(Add(Local("x", "0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10", dir)),
              GrpcIs(grpc::NOT_FOUND, HasSubstr("model '0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10' not found")));
  v1::AddAdapterRequest no_source;
  no_source.set_name("x");
  no_source.set_model("tiny-llama");
  EXPECT_THAT(Add(no_source), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("source is required")));

  // SQL metacharacters in free text are stored and returned unchanged.
  v1::AddAdapterRequest request = Local("quoted", "tiny-llama", dir);
  const std::string description = "it's \"quoted\"; DROP TABLE adapters; -- $1 \\";
  request.set_description(description);
  v1::AddAdapterResponse added;
  ASSERT_THAT(Add(request, &added), GrpcIs(grpc::OK, ""));
  v1::Adapter got;
  ASSERT_THAT(Get("quoted", &got), GrpcIs(grpc::OK, ""));
  EXPECT_EQ(got.description(), description);
  EXPECT_EQ(Count("SELECT count(*) FROM adapters"), 1);
}

TEST_F(AdaptersTest, GetSaysWhatWasNotFound) {
  EXPECT_THAT(Get(""), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("adapter is required")));
  EXPECT_THAT(Get("nope"),
              GrpcIs(grpc::NOT_FOUND, AllOf(HasSubstr("adapter 'nope' not found"), HasSubstr("ListAdapters"))));
  EXPECT_THAT(Get("0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10"), GrpcIs(grpc::NOT_FOUND, HasSubstr("not found")));
  EXPECT_THAT(Get("../etc/passwd"), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("adapter takes an id or a name")));
}

TEST_F(AdaptersTest, ListPagesByNameWithFilters) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const v1::Model llama = env_.AddReferenceModel("llama", "tiny-llama");
  env_.AddReferenceModel("qwen2", "tiny-qwen");
  for (const char* name : {"b-two", "a-one", "a-three", "c-four"}) {
    ASSERT_THAT(Add(Local(name, "tiny-llama", AdapterDir("llama", std::string("adapters/") + name))),
                GrpcIs(grpc::OK, ""));
  }
  ASSERT_THAT(Add(Local("q-one", "tiny-qwen", AdapterDir("qwen2", "adapters/q-one"))), GrpcIs(grpc::OK, ""));
  env_.hub().AddCommit(RepoKind::kModel, "org/llama-lora", HubFiles("llama"));
  ASSERT_THAT(Add(Hub("h-one", "tiny-llama", "org/llama-lora")), GrpcIs(grpc::OK, ""));

  v1::ListAdaptersRequest request;
  EXPECT_THAT(ListNames(request, 2), ElementsAre("a-one", "a-three", "b-two", "c-four", "h-one", "q-one"));
  request.set_name_prefix("a-");
  EXPECT_THAT(ListNames(request, 1), ElementsAre("a-one", "a-three"));
  request.set_name_prefix("%");
  EXPECT_THAT(ListNames(request, 10), SizeIs(0));
  request.set_name_prefix("'; --");
  EXPECT_THAT(ListNames(request, 10), SizeIs(0));
  request = {};
  request.set_model("tiny-qwen");
  EXPECT_THAT(ListNames(request, 10), ElementsAre("q-one"));
  request.set_model(llama.id());
  EXPECT_THAT(ListNames(request, 10), ElementsAre("a-one", "a-three", "b-two", "c-four", "h-one"));
  request.set_source_type(v1::SOURCE_TYPE_HUGGINGFACE);
  EXPECT_THAT(ListNames(request, 10), ElementsAre("h-one"));
  request = {};
  request.set_source_type(v1::SOURCE_TYPE_TRAINED);
  EXPECT_THAT(ListNames(request, 10), SizeIs(0));

  v1::ListAdaptersResponse response;
  request = {};
  request.set_model("no-such-model");
  EXPECT_THAT(List(request, &response), GrpcIs(grpc::NOT_FOUND, HasSubstr("model 'no-such-model' not found")));
  request = {};
  request.set_source_type(static_cast<v1::SourceType>(9));
  EXPECT_THAT(List(request, &response), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("source_type 9 is not a source type")));
  request = {};
  request.set_page_size(1001);
  EXPECT_THAT(List(request, &response), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("page_size 1001 is out of range")));
  request = {};
  request.set_page_token(MakePageToken("models", "a-one"));
  EXPECT_THAT(List(request, &response), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("page_token is not a token")));
  request = {};
  request.set_name_prefix(std::string(129, 'p'));
  EXPECT_THAT(List(request, &response), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("name_prefix is 129 bytes long")));
}

TEST_F(AdaptersTest, RemoveRefusesWhileExportsUseTheAdapterUnlessForced) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  env_.AddReferenceModel("llama", "tiny-llama");
  v1::AddAdapterResponse used, unused;
  ASSERT_THAT(Add(Local("used", "tiny-llama", AdapterDir("llama", "adapters/used")), &used), GrpcIs(grpc::OK, ""));
  ASSERT_THAT(Add(Local("unused", "tiny-llama", AdapterDir("llama", "adapters/unused")), &unused), GrpcIs(grpc::OK, ""));
  env_.WriteFile("exports/.keep", "");
  v1::ExportModelResponse export_response;
  ASSERT_THAT(Export("tiny-llama", "used", env_.root() + "/exports/used-copy", &export_response), GrpcIs(grpc::OK, ""));
  const std::string export_id = export_response.export_().id();

  EXPECT_THAT(Remove("used", false),
              GrpcIs(grpc::FAILED_PRECONDITION,
                     AllOf(HasSubstr("adapter 'used' is used by export '"), HasSubstr("exports/used-copy"),
                           HasSubstr(export_id), HasSubstr("pass force=true"))));
  v1::Adapter still;
  EXPECT_THAT(Get("used", &still), GrpcIs(grpc::OK, ""));

  v1::RemoveAdapterResponse removed;
  ASSERT_THAT(Remove(used.adapter().id(), true, &removed), GrpcIs(grpc::OK, ""));
  ASSERT_THAT(removed.removed_dependents(), SizeIs(1));
  EXPECT_THAT(removed.removed_dependents(0), AllOf(HasSubstr("export '"), HasSubstr(export_id)));
  EXPECT_THAT(Get("used"), GrpcIs(grpc::NOT_FOUND, HasSubstr("adapter 'used' not found")));
  EXPECT_EQ(Count("SELECT count(*) FROM model_exports"), 0);

  ASSERT_THAT(Remove("unused", false, &removed), GrpcIs(grpc::OK, ""));
  EXPECT_THAT(removed.removed_dependents(), SizeIs(0));
  EXPECT_EQ(Count("SELECT count(*) FROM adapters"), 0);
  EXPECT_THAT(Remove("unused", false), GrpcIs(grpc::NOT_FOUND, HasSubstr("adapter 'unused' not found")));
  EXPECT_THAT(Remove("", true), GrpcIs(grpc::INVALID_ARGUMENT, HasSubstr("adapter is required")));
  // The models and their revisions stay.
  EXPECT_EQ(Count("SELECT count(*) FROM model_revisions"), 1);
}

}  // namespace
}  // namespace tuneforge::testing
