// Secret files: strict permissions, atomic creation.
#include "common/secret_file.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tuneforge {

absl::StatusOr<std::string> ReadSecretFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("secret file ", path, " does not exist"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("secret file ", path, " is readable by other users; run chmod 600 ", path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::PermissionDeniedError(absl::StrCat("cannot read secret file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string secret(absl::StripAsciiWhitespace(ss.str()));
  if (secret.empty()) return absl::InvalidArgumentError(absl::StrCat("secret file ", path, " is empty"));
  return secret;
}

absl::StatusOr<std::string> RandomHexSecret(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    return absl::InternalError("no randomness for a new secret");
  }
  return absl::BytesToHexString(raw);
}

namespace {

// Writes `secret` to a new private file beside `path` and returns its name.
absl::StatusOr<std::string> WritePrivateTemp(const std::string& path, const std::string& secret) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create secret file ", path, ": ", std::strerror(errno)));
  }
  const std::string line = secret + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written) {
    ::unlink(tmp.c_str());
    return absl::PermissionDeniedError(absl::StrCat("cannot write secret file ", path, ": ", std::strerror(errno)));
  }
  return tmp;
}

}  // namespace

absl::Status WriteSecretFile(const std::string& path, const std::string& secret) {
  absl::StatusOr<std::string> tmp = WritePrivateTemp(path, secret);
  if (!tmp.ok()) return tmp.status();
  if (::rename(tmp->c_str(), path.c_str()) != 0) {
    ::unlink(tmp->c_str());
    return absl::PermissionDeniedError(absl::StrCat("cannot write secret file ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadOrCreateSecretFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return ReadSecretFile(path);
  absl::StatusOr<std::string> secret = RandomHexSecret(32);
  if (!secret.ok()) return secret.status();
  absl::StatusOr<std::string> tmp = WritePrivateTemp(path, *secret);
  if (!tmp.ok()) return tmp.status();
  // link() fails when another process created the file meanwhile: then theirs is the secret.
  if (::link(tmp->c_str(), path.c_str()) != 0 && errno != EEXIST) {
    ::unlink(tmp->c_str());
    return absl::PermissionDeniedError(absl::StrCat("cannot create secret file ", path, ": ", std::strerror(errno)));
  }
  ::unlink(tmp->c_str());
  return ReadSecretFile(path);
}

}  // namespace tuneforge
