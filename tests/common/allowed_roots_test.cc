// AllowedRoots: what a client sees when a request names a path inside, outside or around the allowed roots.
#include "common/allowed_roots.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>

#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::ScratchDir;
using ::tuneforge::testing::StatusIs;

// Layout under a scratch directory `base`:
//   data/train.jsonl, data/sub/, data/x/       <- root
//   models/                                     <- root
//   data2/train.jsonl                           (shares the prefix "data")
//   other/secret.jsonl, other/dir/              (outside)
class AllowedRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::canonical(scratch_.path()).string();
    scratch_.WriteFile("data/train.jsonl", "{}\n");
    scratch_.WriteFile("data2/train.jsonl", "{}\n");
    scratch_.WriteFile("other/secret.jsonl", "{}\n");
    fs::create_directories(base_ + "/data/sub");
    fs::create_directories(base_ + "/data/x");
    fs::create_directories(base_ + "/models");
    fs::create_directories(base_ + "/other/dir");
    absl::StatusOr<AllowedRoots> roots = AllowedRoots::Create({base_ + "/data", base_ + "/models"});
    ASSERT_THAT(roots, IsOk());
    roots_.emplace(*roots);
  }

  std::string P(const std::string& relative) const { return base_ + "/" + relative; }

  std::string OutsideMessage(const std::string& path, const std::string& field = "local.path") const {
    return field + ": '" + path + "' is outside the allowed roots (" + base_ + "/data, " + base_ +
           "/models); move the files under one of them or start tuneforge-metadata with --allowed-roots";
  }

  ScratchDir scratch_{"allowed-roots"};
  std::string base_;
  std::optional<AllowedRoots> roots_;
};

// ---------------------------------------------------------------------------------------------------------------
// Create

TEST_F(AllowedRootsTest, CreateCanonicalisesAndDeduplicatesRoots) {
  fs::create_directory_symlink(P("data"), P("data-link"));
  absl::StatusOr<AllowedRoots> roots = AllowedRoots::Create({P("data/./sub/../"), P("data-link"), P("models")});
  ASSERT_THAT(roots, IsOk());
  EXPECT_EQ(roots->roots(), (std::vector<std::string>{P("data"), P("models")}));
}

TEST_F(AllowedRootsTest, CreateRejectsMissingRootAndSaysToCreateIt) {
  EXPECT_THAT(AllowedRoots::Create({P("data"), P("nope")}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--allowed-roots: '" + P("nope") + "' does not exist"),
                             HasSubstr("create it (mkdir -p '" + P("nope") + "')"))));
}

TEST_F(AllowedRootsTest, CreateRejectsFileAsRoot) {
  EXPECT_THAT(AllowedRoots::Create({P("data/train.jsonl")}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--allowed-roots: '" + P("data/train.jsonl") + "' is not a directory")));
}

TEST_F(AllowedRootsTest, CreateRejectsEmptyListAndEmptyEntry) {
  EXPECT_THAT(AllowedRoots::Create({}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--allowed-roots is empty")));
  EXPECT_THAT(AllowedRoots::Create({P("data"), ""}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--allowed-roots contains an empty entry")));
}

// ---------------------------------------------------------------------------------------------------------------
// Resolve: accepted paths

TEST_F(AllowedRootsTest, ResolvesFileInsideRoot) {
  EXPECT_EQ(roots_->Resolve(P("data/train.jsonl"), "local.path").value(), P("data/train.jsonl"));
  EXPECT_EQ(roots_->Resolve(P("data//sub/./../train.jsonl"), "local.path").value(), P("data/train.jsonl"));
}

TEST_F(AllowedRootsTest, RootItselfIsInside) {
  EXPECT_EQ(roots_->Resolve(P("models"), "local.path").value(), P("models"));
  EXPECT_EQ(roots_->Resolve(P("models/"), "local.path").value(), P("models"));
}

TEST_F(AllowedRootsTest, SymlinksStayingInsideAreFollowed) {
  fs::create_symlink("train.jsonl", P("data/alias.jsonl"));      // relative file link
  fs::create_directory_symlink(P("data"), P("models/datasets"));  // directory link from one root to another
  EXPECT_EQ(roots_->Resolve(P("data/alias.jsonl"), "local.path").value(), P("data/train.jsonl"));
  EXPECT_EQ(roots_->Resolve(P("models/datasets/train.jsonl"), "local.path").value(), P("data/train.jsonl"));
}

TEST_F(AllowedRootsTest, SymlinkFromOutsideIntoRootResolvesToTheRoot) {
  // What is read is what counts: the canonical target lies inside.
  fs::create_symlink(P("data/train.jsonl"), P("other/inbound.jsonl"));
  EXPECT_EQ(roots_->Resolve(P("other/inbound.jsonl"), "local.path").value(), P("data/train.jsonl"));
}

TEST_F(AllowedRootsTest, SqlMetacharactersInNamesAreJustNames) {
  std::string name = "x'; DROP TABLE models;--.jsonl";
  std::string path = scratch_.WriteFile("data/" + name, "{}\n");
  EXPECT_EQ(roots_->Resolve(path, "local.path").value(), P("data/" + name));
  std::string quoted = scratch_.WriteFile("data/a \"b\" $(c) `d`.jsonl", "{}\n");
  EXPECT_EQ(roots_->Resolve(quoted, "local.path").value(), quoted);
}

TEST_F(AllowedRootsTest, RootSlashAdmitsEverything) {
  absl::StatusOr<AllowedRoots> all = AllowedRoots::Create({"/"});
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->roots(), std::vector<std::string>{"/"});
  EXPECT_EQ(all->Resolve(P("other/secret.jsonl"), "local.path").value(), P("other/secret.jsonl"));
}

// ---------------------------------------------------------------------------------------------------------------
// Resolve: rejected syntax

TEST_F(AllowedRootsTest, EmptyPathIsRequired) {
  EXPECT_THAT(roots_->Resolve("", "local.path"),
              StatusIs(absl::StatusCode::kInvalidArgument, "local.path is required"));
}

TEST_F(AllowedRootsTest, RelativePathIsRejected) {
  EXPECT_THAT(roots_->Resolve("data/train.jsonl", "local.path"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "local.path: 'data/train.jsonl' must be an absolute path (starting with '/')"));
  EXPECT_THAT(roots_->Resolve("./train.jsonl", "local.test_path"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.test_path: './train.jsonl' must be an absolute path")));
}

TEST_F(AllowedRootsTest, NulAndControlCharactersAreRejectedWithoutEchoingThePath) {
  std::string with_nul = P("data/train.jsonl");
  with_nul.insert(with_nul.size() - 6, 1, '\0');
  EXPECT_THAT(roots_->Resolve(with_nul, "local.path"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("local.path contains a control character (byte 0x00 at offset"),
                             Not(HasSubstr("train")))));
  EXPECT_THAT(roots_->Resolve(P("data/a\nb"), "local.path"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("control character (byte 0x0A")));
  EXPECT_THAT(roots_->Resolve(P("data/a\x1b[31m"), "local.path"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("control character (byte 0x1B")));
  EXPECT_THAT(roots_->Resolve(P("data/a\x7f"), "local.path"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("control character (byte 0x7F")));
}

TEST_F(AllowedRootsTest, OverlongPathIsRejected) {
  std::string path = "/";
  while (path.size() <= AllowedRoots::kMaxPathBytes) path += "a/";
  path.resize(AllowedRoots::kMaxPathBytes + 1);
  EXPECT_THAT(roots_->Resolve(path, "local.path"),
              StatusIs(absl::StatusCode::kInvalidArgument, "local.path is 4097 bytes long; the limit is 4096 bytes"));
}

// ---------------------------------------------------------------------------------------------------------------
// Resolve: missing and outside

TEST_F(AllowedRootsTest, MissingPathInsideRootIsNotFound) {
  EXPECT_THAT(roots_->Resolve(P("data/nope.jsonl"), "local.path"),
              StatusIs(absl::StatusCode::kNotFound, "local.path: '" + P("data/nope.jsonl") + "' does not exist"));
  // A component that is a file (ENOTDIR) reads the same.
  EXPECT_THAT(roots_->Resolve(P("data/train.jsonl/x"), "local.path"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("does not exist")));
}

TEST_F(AllowedRootsTest, PathOutsideRootsIsDenied) {
  EXPECT_THAT(roots_->Resolve(P("other/secret.jsonl"), "local.path"),
              StatusIs(absl::StatusCode::kPermissionDenied, OutsideMessage(P("other/secret.jsonl"))));
  EXPECT_THAT(roots_->Resolve("/", "adapter.path"),
              StatusIs(absl::StatusCode::kPermissionDenied, OutsideMessage("/", "adapter.path")));
}

TEST_F(AllowedRootsTest, DotDotTraversalIsDeniedEvenWhenTargetExists) {
  std::string path = P("data/x/../../other/secret.jsonl");
  EXPECT_THAT(roots_->Resolve(path, "local.path"),
              StatusIs(absl::StatusCode::kPermissionDenied, OutsideMessage(path)));
  // "<root>/x/../../<elsewhere>" naming a directory outside the roots.
  std::string dir = P("data/x/../../other");
  EXPECT_THAT(roots_->Resolve(dir, "local.path"), StatusIs(absl::StatusCode::kPermissionDenied, OutsideMessage(dir)));
}

TEST_F(AllowedRootsTest, MissingPathOutsideRootsIsDeniedNotNotFound) {
  // Otherwise a client could probe which files exist outside the roots.
  std::string path = P("data/x/../../other/missing.jsonl");
  EXPECT_THAT(roots_->Resolve(path, "local.path"),
              StatusIs(absl::StatusCode::kPermissionDenied, OutsideMessage(path)));
  EXPECT_THAT(roots_->Resolve(P("other/missing/deeper.jsonl"), "local.path"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is outside the allowed roots")));
}

TEST_F(AllowedRootsTest, FileSymlinkEscapingIsDenied) {
  fs::create_symlink(P("other/secret.jsonl"), P("data/escape.jsonl"));
  EXPECT_THAT(roots_->Resolve(P("data/escape.jsonl"), "local.path"),
              StatusIs(absl::StatusCode::kPermissionDenied, OutsideMessage(P("data/escape.jsonl"))));
  fs::create_symlink("../other/secret.jsonl", P("data/relative-escape.jsonl"));
  EXPECT_THAT(roots_->Resolve(P("data/relative-escape.jsonl"), "local.path"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is outside the allowed roots")));
}

TEST_F(AllowedRootsTest, DirectorySymlinkEscapingIsDenied) {
  fs::create_directory_symlink(P("other"), P("data/linkdir"));
  EXPECT_THAT(roots_->Resolve(P("data/linkdir/secret.jsonl"), "local.path"),
              StatusIs(absl::StatusCode::kPermissionDenied, OutsideMessage(P("data/linkdir/secret.jsonl"))));
  EXPECT_THAT(roots_->Resolve(P("data/linkdir"), "local.path"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is outside the allowed roots")));
  // ".." after a directory symlink follows the link's target, as the kernel does: this is other/../data2.
  EXPECT_THAT(roots_->Resolve(P("data/linkdir/../data2/train.jsonl"), "local.path"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is outside the allowed roots")));
}

TEST_F(AllowedRootsTest, RootIsMatchedComponentWiseNotAsStringPrefix) {
  EXPECT_THAT(roots_->Resolve(P("data2/train.jsonl"), "local.path"),
              StatusIs(absl::StatusCode::kPermissionDenied, OutsideMessage(P("data2/train.jsonl"))));
  EXPECT_TRUE(roots_->Contains(P("data")));
  EXPECT_TRUE(roots_->Contains(P("data/train.jsonl")));
  EXPECT_FALSE(roots_->Contains(P("data2")));
  EXPECT_FALSE(roots_->Contains(P("dat")));
  EXPECT_FALSE(roots_->Contains(base_));
}

TEST_F(AllowedRootsTest, SymlinkLoopIsInvalid) {
  fs::create_symlink(P("data/loop-b"), P("data/loop-a"));
  fs::create_symlink(P("data/loop-a"), P("data/loop-b"));
  EXPECT_THAT(roots_->Resolve(P("data/loop-a"), "local.path"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too many levels of symbolic links")));
}

// ---------------------------------------------------------------------------------------------------------------
// ResolveNew

TEST_F(AllowedRootsTest, ResolveNewReturnsCanonicalParentAndName) {
  EXPECT_EQ(roots_->ResolveNew(P("models/merged"), "destination").value(), P("models/merged"));
  EXPECT_EQ(roots_->ResolveNew(P("models/merged/"), "destination").value(), P("models/merged"));
  EXPECT_EQ(roots_->ResolveNew(P("data/sub/../x/out"), "destination").value(), P("data/x/out"));
  fs::create_directory_symlink(P("models"), P("data/to-models"));
  EXPECT_EQ(roots_->ResolveNew(P("data/to-models/merged"), "destination").value(), P("models/merged"));
  std::string name = "x'; DROP TABLE models;--";
  EXPECT_EQ(roots_->ResolveNew(P("models/" + name), "destination").value(), P("models/" + name));
}

TEST_F(AllowedRootsTest, ResolveNewRejectsExistingPath) {
  EXPECT_THAT(roots_->ResolveNew(P("data/train.jsonl"), "destination"),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "destination: '" + P("data/train.jsonl") +
                           "' already exists; choose a new path or remove it first"));
  EXPECT_THAT(roots_->ResolveNew(P("data/sub"), "destination"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already exists")));
  // A dangling symlink would be followed by whoever writes there.
  fs::create_symlink(P("other/planted"), P("models/dangling"));
  EXPECT_THAT(roots_->ResolveNew(P("models/dangling"), "destination"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already exists")));
}

TEST_F(AllowedRootsTest, ResolveNewNeedsAnExistingParent) {
  EXPECT_THAT(roots_->ResolveNew(P("models/a/b"), "destination"),
              StatusIs(absl::StatusCode::kNotFound,
                       "destination: the parent directory '" + P("models/a") + "' of '" + P("models/a/b") +
                           "' does not exist; create it first"));
  EXPECT_THAT(roots_->ResolveNew(P("data/train.jsonl/b"), "destination"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not a directory")));
}

TEST_F(AllowedRootsTest, ResolveNewDeniesParentsOutsideRoots) {
  EXPECT_THAT(roots_->ResolveNew(P("other/new"), "destination"),
              StatusIs(absl::StatusCode::kPermissionDenied, OutsideMessage(P("other/new"), "destination")));
  EXPECT_THAT(roots_->ResolveNew(P("models/../other/new"), "destination"),
              StatusIs(absl::StatusCode::kPermissionDenied, OutsideMessage(P("models/../other/new"), "destination")));
  EXPECT_THAT(roots_->ResolveNew(P("data2/new"), "destination"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is outside the allowed roots")));
  // A missing parent outside the roots is still "outside".
  EXPECT_THAT(roots_->ResolveNew(P("other/missing/new"), "destination"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is outside the allowed roots")));
  fs::create_directory_symlink(P("other/dir"), P("models/escape"));
  EXPECT_THAT(roots_->ResolveNew(P("models/escape/new"), "destination"),
              StatusIs(absl::StatusCode::kPermissionDenied, OutsideMessage(P("models/escape/new"), "destination")));
  // Creating a root's sibling: the parent is the scratch base, outside.
  EXPECT_THAT(roots_->ResolveNew(P("models/../new-root"), "destination"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is outside the allowed roots")));
}

TEST_F(AllowedRootsTest, ResolveNewNeedsAPlainFinalName) {
  EXPECT_THAT(roots_->ResolveNew(P("models/sub/.."), "destination"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("must end in the name of a new file or directory, not '..'")));
  EXPECT_THAT(roots_->ResolveNew(P("models/."), "destination"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not '.'")));
  EXPECT_THAT(roots_->ResolveNew("/", "destination"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not ''")));
  EXPECT_THAT(roots_->ResolveNew("", "destination"),
              StatusIs(absl::StatusCode::kInvalidArgument, "destination is required"));
  EXPECT_THAT(roots_->ResolveNew("models/new", "destination"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be an absolute path")));
  EXPECT_THAT(roots_->ResolveNew(P("models/a\tb"), "destination"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("control character")));
}

}  // namespace
}  // namespace tuneforge
