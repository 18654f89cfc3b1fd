// Paths of the reference data shared with the project (../shared/testdata) and of scratch directories.
#ifndef TUNEFORGE_TESTS_SUPPORT_TESTDATA_H_
#define TUNEFORGE_TESTS_SUPPORT_TESTDATA_H_

#include <string>

namespace tuneforge::testing {

// ../shared/testdata relative to the source tree; TUNEFORGE_SHARED_TESTDATA in the environment overrides it.
std::string SharedTestdata();

// The whole content of a file ("" when it cannot be read), and a write that replaces a file's content.
std::string ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, const std::string& bytes);

// A fresh directory under $TMPDIR (default /tmp), removed by the destructor.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix = "tuneforge-test");
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  // Writes `content` to path()/relative, creating parent directories.
  std::string WriteFile(const std::string& relative, const std::string& content) const;

 private:
  std::string path_;
};

}  // namespace tuneforge::testing

#endif  // TUNEFORGE_TESTS_SUPPORT_TESTDATA_H_
