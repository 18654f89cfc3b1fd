// Models end to end: the real server over loopback gRPC, a real PostgreSQL, the fake Hub.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "nlohmann/json.hpp"

#include "tests/metadata/support/metadata_test_env.h"
#include "services/metadata/model_repository.h"
#include "services/metadata/request_checks.h"
#include "tests/support/test_postgres.h"

namespace tuneforge::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const char* const kCases[] = {"llama", "llama3_rope", "mistral", "qwen2", "phi3", "phi3_longrope", "gemma"};

// Sum of elements over the safetensors header of a reference model: what parameter_count must equal.
int64_t ParameterCountOf(const std::string& safetensors_path) {
  std::string bytes = ReadFileBytes(safetensors_path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  int64_t total = 0;
  for (auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    int64_t count = 1;
    for (auto d : t["shape"]) count *= d.get<int64_t>();
    total += count;
  }
  return total;
}

std::string MakePageTokenForTest(const std::string& kind, const std::string& key) {
  return MakePageToken(kind, key);
}

// Revisions' file lists are read from PostgreSQL's jsonb text without a JSON library on the common path: what comes
// back must be what was stored, whatever the paths hold.
TEST(FilesFromJsonTest, ReadsBackWhatPostgresStored) {
  const std::vector<FileRecord> files = {{"config.json", 640, std::string(64, 'a')},
                                         {"sub/we\"ird\\ name\t\u00fc\u4e2d.bin", 0, ""},
                                         {"", -1, "x"}};
  pqxx::connection conn(TestPostgres::Get().NewDatabase());
  pqxx::nontransaction tx(conn);
  const std::string printed = tx.exec_params1("SELECT $1::jsonb::text", FilesToJson(files))[0].as<std::string>();
  const std::vector<FileRecord> read = FilesFromJson(printed);
  ASSERT_EQ(read.size(), files.size()) << printed;
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(read[i].path, files[i].path);
    EXPECT_EQ(read[i].size, files[i].size);
    EXPECT_EQ(read[i].sha256, files[i].sha256);
  }
  // Shapes the fast reader leaves to nlohmann (other keys, nesting, other number forms) read the same.
  const std::vector<FileRecord> other =
      FilesFromJson(R"([{"path": "a", "extra": [1, {"b": "}"}], "size": 2.0e0, "sha256": "s"}, {}])");
  ASSERT_EQ(other.size(), 2u);
  EXPECT_EQ(other[0].path, "a");
  EXPECT_EQ(other[0].size, 2);
  EXPECT_EQ(other[0].sha256, "s");
  EXPECT_EQ(other[1].path, "");
  EXPECT_TRUE(FilesFromJson("").empty());
  EXPECT_TRUE(FilesFromJson("[]").empty());
  EXPECT_ANY_THROW(FilesFromJson("[{\"path\": \"a"));
}

class ModelsTest : public ::testing::Test {
 protected:
  grpc::Status Add(const v1::AddModelRequest& request, v1::AddModelResponse* response) {
    return env_.models()->AddModel(Context().get(), request, response);
  }
  v1::AddModelRequest Local(const std::string& name, const std::string& path) {
    v1::AddModelRequest r;
    r.set_name(name);
    r.mutable_local()->set_path(path);
    return r;
  }
  v1::AddModelRequest Hub(const std::string& name, const std::string& repo, const std::string& revision = "",
                          const std::string& token = "") {
    v1::AddModelRequest r;
    r.set_name(name);
    r.mutable_huggingface()->set_repo_id(repo);
    r.mutable_huggingface()->set_revision(revision);
    r.mutable_huggingface()->set_token(token);
    return r;
  }
  // A copy of a reference model with only the checkpoint files.
  std::string ModelDir(const std::string& reference_case, const std::string& relative) {
    std::string dir = env_.CopyDir(GeneratedReference() + "/" + reference_case, relative);
    for (const char* extra : {"inputs.json", "logits.safetensors", "lora"}) std::filesystem::remove_all(dir + "/" + extra);
    return dir;
  }
  std::map<std::string, std::string> HubFiles(const std::string& reference_case) {
    std::map<std::string, std::string> files;
    for (const char* f : {"config.json", "generation_config.json", "model.safetensors"}) {
      files[f] = ReadFileBytes(GeneratedReference() + "/" + reference_case + "/" + f);
    }
    return files;
  }
  void ExpectError(const v1::AddModelRequest& request, grpc::StatusCode code, const std::string& fragment) {
    v1::AddModelResponse response;
    grpc::Status status = Add(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(fragment));
  }

  MetadataTestEnv env_;
};

TEST_F(ModelsTest, AddsEveryReferenceFamilyFromALocalDirectory) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::map<std::string, std::string> family = {{"llama", "llama"}, {"llama3_rope", "llama"},
                                                     {"mistral", "mistral"}, {"qwen2", "qwen2"},
                                                     {"phi3", "phi3"}, {"phi3_longrope", "phi3"},
                                                     {"gemma", "gemma"}};
  for (const char* c : kCases) {
    SCOPED_TRACE(c);
    v1::AddModelResponse response;
    ASSERT_TRUE(Add(Local(std::string("ref-") + c, ModelDir(c, std::string("m/") + c)), &response).ok());
    EXPECT_EQ(response.outcome(), v1::ADD_OUTCOME_CREATED);
    EXPECT_EQ(response.model().family(), family.at(c));
    EXPECT_EQ(response.model().source_type(), v1::SOURCE_TYPE_LOCAL);
    EXPECT_EQ(response.model().revision_count(), 1);
    EXPECT_EQ(response.revision().revision_number(), 1);
    EXPECT_EQ(response.revision().parameter_count(),
              ParameterCountOf(GeneratedReference() + "/" + c + "/model.safetensors"));
    EXPECT_EQ(response.revision().fingerprint().size(), 64u);
    ASSERT_GE(response.revision().files_size(), 3);
    std::set<std::string> paths;
    for (const auto& f : response.revision().files()) {
      paths.insert(f.path());
      EXPECT_EQ(f.sha256().size(), 64u) << f.path();
      EXPECT_GT(f.size(), 0) << f.path();
    }
    EXPECT_TRUE(paths.count("model.safetensors"));
    EXPECT_TRUE(paths.count("config.json"));
    EXPECT_EQ(response.model().id().size(), 36u);
    EXPECT_GT(response.model().create_time().seconds(), 1700000000);
  }
  v1::AddModelResponse llama;
  ASSERT_TRUE(Add(Local("ref-llama", env_.root() + "/m/llama"), &llama).ok());
  EXPECT_THAT(llama.revision().bos_token_ids(), ::testing::ElementsAre(1));
  EXPECT_THAT(llama.revision().eos_token_ids(), ::testing::ElementsAre(2));
  EXPECT_EQ(llama.revision().architecture(), "LlamaForCausalLM");
}

TEST_F(ModelsTest, SaveOrFetchReturnsExistingThenAddsRevisionWhenContentChanges) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  std::string dir = ModelDir("llama", "m/llama");
  v1::AddModelResponse first, again, changed, back;
  ASSERT_TRUE(Add(Local("tiny", dir), &first).ok());
  ASSERT_TRUE(Add(Local("tiny", dir), &again).ok());
  EXPECT_EQ(again.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(again.model().id(), first.model().id());
  EXPECT_EQ(again.revision().id(), first.revision().id());

  // The same content somewhere else has the same fingerprint (names and contents, not the location).
  v1::AddModelResponse elsewhere;
  ASSERT_TRUE(Add(Local("tiny-copy", ModelDir("llama", "m/llama-copy")), &elsewhere).ok());
  EXPECT_EQ(elsewhere.revision().fingerprint(), first.revision().fingerprint());

  std::ofstream(dir + "/tokenizer_config.json") << R"({"bos_token": "<s>"})";
  ASSERT_TRUE(Add(Local("tiny", dir), &changed).ok());
  EXPECT_EQ(changed.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_EQ(changed.model().id(), first.model().id());
  EXPECT_EQ(changed.revision().revision_number(), 2);
  EXPECT_NE(changed.revision().fingerprint(), first.revision().fingerprint());
  EXPECT_EQ(changed.model().revision_count(), 2);
  EXPECT_EQ(changed.model().latest_revision().id(), changed.revision().id());

  std::filesystem::remove(dir + "/tokenizer_config.json");
  ASSERT_TRUE(Add(Local("tiny", dir), &back).ok());
  EXPECT_EQ(back.outcome(), v1::ADD_OUTCOME_EXISTING);
  EXPECT_EQ(back.revision().id(), first.revision().id());

  v1::ListModelRevisionsRequest list;
  list.set_model("tiny");
  v1::ListModelRevisionsResponse revisions;
  ASSERT_TRUE(env_.models()->ListModelRevisions(Context().get(), list, &revisions).ok());
  ASSERT_EQ(revisions.revisions_size(), 2);
  EXPECT_EQ(revisions.revisions(0).revision_number(), 2);
  EXPECT_EQ(revisions.revisions(1).revision_number(), 1);
}

TEST_F(ModelsTest, SameSourceUnderAnotherNameOrSameNameOtherSourceIsAlreadyExists) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  std::string dir = ModelDir("llama", "m/llama");
  v1::AddModelResponse first;
  ASSERT_TRUE(Add(Local("first", dir), &first).ok());
  ExpectError(Local("second", dir), grpc::StatusCode::ALREADY_EXISTS, "already registered as model 'first'");
  ExpectError(Local("first", ModelDir("gemma", "m/gemma")), grpc::StatusCode::ALREADY_EXISTS,
              "already exists with source local");
}

TEST_F(ModelsTest, HuggingFaceSourceResolvesTheCommitAndRecordsFilesWithoutDownloadingWeights) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  std::string sha1 = env_.hub().AddCommit(RepoKind::kModel, "org/tiny-llama", HubFiles("llama"));
  v1::AddModelResponse response;
  grpc::Status status = Add(Hub("hub-llama", "org/tiny-llama"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.outcome(), v1::ADD_OUTCOME_CREATED);
  EXPECT_EQ(response.model().source_type(), v1::SOURCE_TYPE_HUGGINGFACE);
  EXPECT_EQ(response.model().source(), "org/tiny-llama");
  EXPECT_EQ(response.revision().commit_sha(), sha1);
  EXPECT_EQ(response.revision().requested_revision(), "main");
  EXPECT_EQ(response.model().family(), "llama");
  EXPECT_EQ(response.revision().parameter_count(),
            ParameterCountOf(GeneratedReference() + "/llama/model.safetensors"));
  bool saw_weights = false;
  for (const auto& f : response.revision().files()) {
    if (f.path() == "model.safetensors") {
      saw_weights = true;
      EXPECT_EQ(f.size(), static_cast<int64_t>(HubFiles("llama")["model.safetensors"].size()));
      EXPECT_EQ(f.sha256().size(), 64u);
    }
  }
  EXPECT_TRUE(saw_weights);
  for (const std::string& target : env_.hub().request_targets()) {
    EXPECT_THAT(target, Not(HasSubstr("resolve/" + sha1 + "/model.safetensors"))) << "weights were downloaded";
  }

  v1::AddModelResponse same;
  ASSERT_TRUE(Add(Hub("hub-llama", "org/tiny-llama", sha1), &same).ok());
  EXPECT_EQ(same.outcome(), v1::ADD_OUTCOME_EXISTING);

  auto files = HubFiles("llama");
  files["README.md"] = "# tiny llama\n";
  std::string sha2 = env_.hub().AddCommit(RepoKind::kModel, "org/tiny-llama", files);
  v1::AddModelResponse updated;
  ASSERT_TRUE(Add(Hub("hub-llama", "org/tiny-llama"), &updated).ok());
  EXPECT_EQ(updated.outcome(), v1::ADD_OUTCOME_NEW_REVISION);
  EXPECT_EQ(updated.revision().commit_sha(), sha2);
  EXPECT_EQ(updated.revision().revision_number(), 2);
}

TEST_F(ModelsTest, ATokenWithControlCharactersNeverReachesTheHub) {
  const int requests = env_.hub().request_count();
  for (const std::string& token : {std::string("hf_abc\r\nX-Injected: yes"), std::string("hf_abc\nx"),
                                  std::string("hf abc"), std::string("hf_\x01" "abc")}) {
    v1::AddModelResponse response;
    grpc::Status status = Add(Hub("m", "org/tiny", "", token), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("huggingface.token contains a character that cannot be part of a token"));
    EXPECT_THAT(status.error_message(), ::testing::Not(HasSubstr("hf_abc")));
  }
  EXPECT_EQ(env_.hub().request_count(), requests);
}

TEST_F(ModelsTest, HubErrorsMapToSpecificCodesAndTokensAreNeverStored) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  env_.hub().AddCommit(RepoKind::kModel, "org/gated", HubFiles("llama"));
  env_.hub().SetGated("org/gated", true);
  env_.hub().AddCommit(RepoKind::kModel, "org/private", HubFiles("qwen2"));
  env_.hub().SetPrivate("org/private", true);
  env_.hub().AllowToken("hf_secret_token_for_tests_0123456789");

  ExpectError(Hub("m", "org/missing"), grpc::StatusCode::NOT_FOUND, "org/missing");
  ExpectError(Hub("m", "org/gated"), grpc::StatusCode::PERMISSION_DENIED, "gated");
  ExpectError(Hub("m", "org/gated", "", "hf_wrong_token_aaaaaaaaaaaaaaaaaaaaaaa"), grpc::StatusCode::PERMISSION_DENIED,
              "gated");
  ExpectError(Hub("m", "org/private", "", "hf_wrong_token_aaaaaaaaaaaaaaaaaaaaaaa"),
              grpc::StatusCode::UNAUTHENTICATED, "token");
  ExpectError(Hub("m", "org/tiny", "no-such-branch"), grpc::StatusCode::NOT_FOUND, "org/tiny");
  ExpectError(Hub("m", "a/b/c"), grpc::StatusCode::INVALID_ARGUMENT, "huggingface.repo_id");
  ExpectError(Hub("m", ""), grpc::StatusCode::INVALID_ARGUMENT, "huggingface.repo_id");

  v1::AddModelResponse ok;
  grpc::Status status = Add(Hub("private-qwen", "org/private", "", "hf_secret_token_for_tests_0123456789"), &ok);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ok.model().family(), "qwen2");
  EXPECT_THAT(env_.hub().authorization_headers(),
              ::testing::Contains("Bearer hf_secret_token_for_tests_0123456789"));

  pqxx::connection conn(env_.database_url());
  pqxx::work tx(conn);
  for (const char* table : {"models", "model_revisions"}) {
    pqxx::result rows = tx.exec(std::string("SELECT count(*) FROM ") + table + " t WHERE t::text LIKE '%hf_secret%'");
    EXPECT_EQ(rows[0][0].as<int>(), 0) << table;
  }

  env_.hub().FailNextRequests(503, 100);
  ExpectError(Hub("m2", "org/private", "", "hf_secret_token_for_tests_0123456789"), grpc::StatusCode::UNAVAILABLE,
              "retry later");
}

TEST_F(ModelsTest, RejectsUnsupportedFamiliesAndCorruptFiles) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  std::string bert = ModelDir("llama", "m/bert");
  std::ofstream(bert + "/config.json", std::ios::trunc)
      << R"({"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 48})";
  ExpectError(Local("bert", bert), grpc::StatusCode::INVALID_ARGUMENT, "llama, mistral, qwen2, phi3, gemma");

  std::string broken_config = ModelDir("llama", "m/broken-config");
  std::ofstream(broken_config + "/config.json", std::ios::trunc) << "{ not json";
  ExpectError(Local("broken-config", broken_config), grpc::StatusCode::INVALID_ARGUMENT, "config.json");

  std::string truncated = ModelDir("llama", "m/truncated");
  std::filesystem::resize_file(truncated + "/model.safetensors", 1000);
  ExpectError(Local("truncated", truncated), grpc::StatusCode::INVALID_ARGUMENT, "model.safetensors");

  std::string garbage = ModelDir("llama", "m/garbage");
  std::ofstream(garbage + "/model.safetensors", std::ios::trunc) << std::string(64, '\xff');
  ExpectError(Local("garbage", garbage), grpc::StatusCode::INVALID_ARGUMENT, "model.safetensors");

  std::string no_config = ModelDir("llama", "m/no-config");
  std::filesystem::remove(no_config + "/config.json");
  ExpectError(Local("no-config", no_config), grpc::StatusCode::NOT_FOUND, "config.json");

  v1::ListModelsResponse list;
  ASSERT_TRUE(env_.models()->ListModels(Context().get(), v1::ListModelsRequest(), &list).ok());
  EXPECT_EQ(list.models_size(), 0) << "a failed add must leave nothing behind";
}

TEST_F(ModelsTest, LocalPathsAreConfinedToTheAllowedRoots) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  std::string dir = ModelDir("llama", "m/llama");
  ExpectError(Local("x", ""), grpc::StatusCode::INVALID_ARGUMENT, "local.path is required");
  ExpectError(Local("x", "relative/dir"), grpc::StatusCode::INVALID_ARGUMENT, "absolute");
  ExpectError(Local("x", env_.root() + "/does-not-exist"), grpc::StatusCode::NOT_FOUND, "does not exist");
  std::string outside_copy = env_.outside() + "/llama";
  std::filesystem::copy(dir, outside_copy, std::filesystem::copy_options::recursive);
  ExpectError(Local("x", outside_copy), grpc::StatusCode::PERMISSION_DENIED, "outside the allowed roots");
  ExpectError(Local("x", env_.root() + "/m/../../" + std::filesystem::path(env_.outside()).filename().string() +
                             "/llama"),
              grpc::StatusCode::PERMISSION_DENIED, "outside the allowed roots");
  std::filesystem::create_directory_symlink(outside_copy, env_.root() + "/escape");
  ExpectError(Local("x", env_.root() + "/escape"), grpc::StatusCode::PERMISSION_DENIED, "outside the allowed roots");
  ExpectError(Local("x", "/etc"), grpc::StatusCode::PERMISSION_DENIED, "--allowed-roots");
  ExpectError(Local("x", std::string(5000, 'a')), grpc::StatusCode::INVALID_ARGUMENT, "local.path");
}

TEST_F(ModelsTest, BadNamesAndFieldsAreInvalidArgumentNamingTheField) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  std::string dir = ModelDir("llama", "m/llama");
  ExpectError(Local("", dir), grpc::StatusCode::INVALID_ARGUMENT, "name is required");
  ExpectError(Local(std::string(129, 'a'), dir), grpc::StatusCode::INVALID_ARGUMENT, "at most 128");
  ExpectError(Local("bad name", dir), grpc::StatusCode::INVALID_ARGUMENT, "name 'bad name'");
  ExpectError(Local("x'; DROP TABLE models;--", dir), grpc::StatusCode::INVALID_ARGUMENT, "not allowed");
  ExpectError(Local("0b7d2c4e-1f0a-4c1e-9a53-2f1d7c9e8b10", dir), grpc::StatusCode::INVALID_ARGUMENT, "UUID");
  v1::AddModelRequest no_source;
  no_source.set_name("x");
  ExpectError(no_source, grpc::StatusCode::INVALID_ARGUMENT, "source is required");
  v1::AddModelRequest long_description = Local("x", dir);
  long_description.set_description(std::string(5000, 'd'));
  ExpectError(long_description, grpc::StatusCode::INVALID_ARGUMENT, "description");

  // SQL metacharacters in free text are stored and returned verbatim.
  v1::AddModelRequest tricky = Local("tricky", dir);
  tricky.set_description("it's \"quoted\"; DROP TABLE models; -- \\ %_ ünïcödé");
  v1::AddModelResponse response;
  ASSERT_TRUE(Add(tricky, &response).ok());
  v1::GetModelRequest get;
  get.set_model("tricky");
  v1::GetModelResponse got;
  ASSERT_TRUE(env_.models()->GetModel(Context().get(), get, &got).ok());
  EXPECT_EQ(got.model().description(), tricky.description());
}

TEST_F(ModelsTest, GetAcceptsIdOrNameAndSaysHowToFindModels) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  v1::Model model = env_.AddReferenceModel("mistral", "mistral-tiny");
  for (const std::string& ref : {model.id(), std::string("mistral-tiny")}) {
    v1::GetModelRequest get;
    get.set_model(ref);
    v1::GetModelResponse got;
    ASSERT_TRUE(env_.models()->GetModel(Context().get(), get, &got).ok());
    EXPECT_EQ(got.model().id(), model.id());
    EXPECT_EQ(got.model().latest_revision().family(), "mistral");
  }
  struct Case {
    std::string ref;
    grpc::StatusCode code;
    std::string fragment;
  };
  for (const Case& c : {Case{"", grpc::StatusCode::INVALID_ARGUMENT, "model is required"},
                        Case{"00000000-0000-0000-0000-000000000000", grpc::StatusCode::NOT_FOUND, "ListModels"},
                        Case{"nope", grpc::StatusCode::NOT_FOUND, "model 'nope' not found"},
                        Case{"bad id!", grpc::StatusCode::INVALID_ARGUMENT, "takes an id or a name"}}) {
    v1::GetModelRequest get;
    get.set_model(c.ref);
    v1::GetModelResponse got;
    grpc::Status status = env_.models()->GetModel(Context().get(), get, &got);
    EXPECT_EQ(status.error_code(), c.code) << c.ref;
    EXPECT_THAT(status.error_message(), HasSubstr(c.fragment));
  }
}

TEST_F(ModelsTest, ListPagesInNameOrderWithFilters) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  for (int i = 0; i < 7; ++i) {
    const char* c = i % 2 == 0 ? "llama" : "gemma";
    v1::AddModelResponse added;
    ASSERT_TRUE(Add(Local("model-" + std::to_string(i), ModelDir(c, "m/" + std::to_string(i))), &added).ok());
  }
  std::vector<std::string> names;
  std::string token;
  int pages = 0;
  do {
    v1::ListModelsRequest request;
    request.set_page_size(3);
    request.set_page_token(token);
    v1::ListModelsResponse response;
    ASSERT_TRUE(env_.models()->ListModels(Context().get(), request, &response).ok());
    for (const auto& m : response.models()) names.push_back(m.name());
    token = response.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(names, ::testing::ElementsAre("model-0", "model-1", "model-2", "model-3", "model-4", "model-5", "model-6"));

  v1::ListModelsRequest gemma;
  gemma.set_family("gemma");
  v1::ListModelsResponse only_gemma;
  ASSERT_TRUE(env_.models()->ListModels(Context().get(), gemma, &only_gemma).ok());
  EXPECT_EQ(only_gemma.models_size(), 3);

  v1::ListModelsRequest prefix;
  prefix.set_name_prefix("model-1");
  v1::ListModelsResponse one;
  ASSERT_TRUE(env_.models()->ListModels(Context().get(), prefix, &one).ok());
  ASSERT_EQ(one.models_size(), 1);

  v1::ListModelsRequest hub_only;
  hub_only.set_source_type(v1::SOURCE_TYPE_HUGGINGFACE);
  v1::ListModelsResponse none;
  ASSERT_TRUE(env_.models()->ListModels(Context().get(), hub_only, &none).ok());
  EXPECT_EQ(none.models_size(), 0);

  struct Bad {
    v1::ListModelsRequest request;
    std::string fragment;
  };
  std::vector<Bad> bad(5);
  bad[0].request.set_page_size(1001);
  bad[0].fragment = "page_size";
  bad[1].request.set_page_size(-1);
  bad[1].fragment = "page_size";
  bad[2].request.set_page_token("garbage!");
  bad[2].fragment = "page_token";
  bad[3].request.set_family("bert");
  bad[3].fragment = "family 'bert'";
  bad[4].request.set_source_type(static_cast<v1::SourceType>(42));
  bad[4].fragment = "source_type 42";
  for (const Bad& b : bad) {
    v1::ListModelsResponse response;
    grpc::Status status = env_.models()->ListModels(Context().get(), b.request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << b.fragment;
    EXPECT_THAT(status.error_message(), HasSubstr(b.fragment));
  }
  // A token from another List call is refused.
  env_.AddReferenceModel("llama", "many-revisions");
  v1::ListModelRevisionsRequest revisions;
  revisions.set_model("many-revisions");
  revisions.set_page_size(1);
  v1::ListModelRevisionsResponse revision_page;
  ASSERT_TRUE(env_.models()->ListModelRevisions(Context().get(), revisions, &revision_page).ok());
  v1::ListModelsRequest cross;
  cross.set_page_token(MakePageTokenForTest("model_revisions:x", "1"));
  v1::ListModelsResponse response;
  grpc::Status status = env_.models()->ListModels(Context().get(), cross, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("page_token"));
}

TEST_F(ModelsTest, RemoveRefusesWhileSomethingDependsOnTheModelUnlessForced) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  v1::Model model = env_.AddReferenceModel("llama", "base");
  {
    pqxx::connection conn(env_.database_url());
    pqxx::work tx(conn);
    tx.exec_params(
        "INSERT INTO adapters (name, source_type, source, model_revision_id, peft_type, rank, alpha, target_modules, "
        "fingerprint, files) VALUES ('my-lora', 'local', '/x', $1::uuid, 'LORA', 8, 16, '[]', 'f', '[]')",
        model.latest_revision().id());
    tx.commit();
  }
  v1::RemoveModelRequest remove;
  remove.set_model("base");
  v1::RemoveModelResponse removed;
  grpc::Status status = env_.models()->RemoveModel(Context().get(), remove, &removed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("adapter 'my-lora'"));
  EXPECT_THAT(status.error_message(), HasSubstr("force"));

  remove.set_force(true);
  ASSERT_TRUE(env_.models()->RemoveModel(Context().get(), remove, &removed).ok());
  ASSERT_EQ(removed.removed_dependents_size(), 1);
  EXPECT_THAT(removed.removed_dependents(0), HasSubstr("my-lora"));

  pqxx::connection conn(env_.database_url());
  pqxx::work tx(conn);
  for (const char* table : {"models", "model_revisions", "adapters"}) {
    EXPECT_EQ(tx.exec(std::string("SELECT count(*) FROM ") + table)[0][0].as<int>(), 0) << table;
  }
  v1::GetModelRequest get;
  get.set_model("base");
  v1::GetModelResponse got;
  EXPECT_EQ(env_.models()->GetModel(Context().get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(env_.models()->RemoveModel(Context().get(), remove, &removed).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ModelsTest, ExportModelValidatesAndRecordsTheRequest) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  v1::Model model = env_.AddReferenceModel("llama", "base");
  {
    pqxx::connection conn(env_.database_url());
    pqxx::work tx(conn);
    tx.exec_params(
        "INSERT INTO adapters (name, source_type, source, model_revision_id, peft_type, rank, alpha, target_modules, "
        "fingerprint, files) VALUES ('my-lora', 'local', '/x', $1::uuid, 'LORA', 8, 16, '[]', 'f', '[]')",
        model.latest_revision().id());
    tx.commit();
  }
  v1::ExportModelRequest request;
  request.set_model("base");
  request.set_adapter("my-lora");
  request.set_type(v1::EXPORT_TYPE_MERGED);
  request.set_destination_path(env_.root() + "/exports/merged");
  request.set_exported_model_name("base-merged");
  std::filesystem::create_directories(env_.root() + "/exports");
  v1::ExportModelResponse response;
  grpc::Status status = env_.models()->ExportModel(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.export_().state(), v1::EXPORT_STATE_QUEUED);
  EXPECT_EQ(response.export_().model_revision_id(), model.latest_revision().id());

  EXPECT_EQ(env_.models()->ExportModel(Context().get(), request, &response).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  v1::ExportModelRequest no_type = request;
  no_type.set_type(v1::EXPORT_TYPE_UNSPECIFIED);
  no_type.set_destination_path(env_.root() + "/exports/other");
  EXPECT_EQ(env_.models()->ExportModel(Context().get(), no_type, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ExportModelRequest taken_name = request;
  taken_name.set_destination_path(env_.root() + "/exports/taken");
  taken_name.set_exported_model_name("base");
  grpc::Status taken = env_.models()->ExportModel(Context().get(), taken_name, &response);
  EXPECT_EQ(taken.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(taken.error_message(), HasSubstr("exported_model_name 'base'"));
  v1::ExportModelRequest outside = request;
  outside.set_destination_path(env_.outside() + "/x");
  EXPECT_EQ(env_.models()->ExportModel(Context().get(), outside, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::ExportModelRequest no_adapter = request;
  no_adapter.set_adapter("nope");
  no_adapter.set_destination_path(env_.root() + "/exports/third");
  EXPECT_EQ(env_.models()->ExportModel(Context().get(), no_adapter, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::RemoveModelRequest remove;
  remove.set_model("base");
  v1::RemoveModelResponse removed;
  status = env_.models()->RemoveModel(Context().get(), remove, &removed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("export"));
}

// Runs last in this binary: it stops the shared test server.
TEST_F(ModelsTest, ZDatabaseOutageIsUnavailableAndTheServiceRecoversByItself) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  env_.AddReferenceModel("llama", "base");
  ASSERT_TRUE(TestPostgres::Get().StopServer().ok());
  v1::GetModelRequest get;
  get.set_model("base");
  v1::GetModelResponse got;
  grpc::Status status = env_.models()->GetModel(Context().get(), get, &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("database"));
  ASSERT_TRUE(TestPostgres::Get().StartServer().ok());
  status = env_.models()->GetModel(Context().get(), get, &got);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.model().name(), "base");
}

}  // namespace
}  // namespace tuneforge::testing
