// Path confinement for request fields: realpath() the client's path, then a component-wise prefix check
// against the canonical roots.
#include "common/allowed_roots.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tuneforge {
namespace {

// Our abseil's string_view is its own type, not std::string_view; StrCat needs it.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// realpath(3) into a std::string; errno is left set on failure.
bool RealPath(const std::string& path, std::string* out) {
  std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr), &std::free);
  if (resolved == nullptr) return false;
  *out = resolved.get();
  return true;
}

// Checks the raw request value before it touches the file system or a message.
absl::Status ValidatePathSyntax(std::string_view path_in, std::string_view field_in) {
  const absl::string_view path = Av(path_in), field = Av(field_in);
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (path.size() > AllowedRoots::kMaxPathBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is ", path.size(), " bytes long; the limit is ",
                                                   AllowedRoots::kMaxPathBytes, " bytes"));
  }
  for (size_t i = 0; i < path.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(path[i]);
    if (c < 0x20 || c == 0x7f) {
      // The path itself is not echoed: it may carry terminal escapes or break log lines.
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s contains a control character (byte 0x%02X at offset %d); remove it from the path", field, c, i));
    }
  }
  if (path.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", path, "' must be an absolute path (starting with '/')"));
  }
  return absl::OkStatus();
}

// Best guess of where a path that realpath() could not resolve would point: the existing prefix resolved,
// the rest normalised lexically. Used only to decide between "outside the roots" and "does not exist".
std::string ApproximateCanonical(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(path, ec);
  if (ec) p = std::filesystem::path(path).lexically_normal();
  std::string s = p.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

absl::StatusOr<AllowedRoots> AllowedRoots::Create(const std::vector<std::string>& roots) {
  if (roots.empty()) {
    return absl::InvalidArgumentError(
        "--allowed-roots is empty; give at least one directory that request paths may name");
  }
  std::vector<std::string> canonical;
  for (const std::string& root : roots) {
    if (root.empty()) {
      return absl::InvalidArgumentError("--allowed-roots contains an empty entry; remove it or name a directory");
    }
    std::string resolved;
    if (!RealPath(root, &resolved)) {
      int err = errno;
      if (err == ENOENT) {
        return absl::InvalidArgumentError(absl::StrCat("--allowed-roots: '", root, "' does not exist; create it (mkdir -p '",
                                                       root, "') or fix the flag"));
      }
      return absl::InvalidArgumentError(
          absl::StrCat("--allowed-roots: '", root, "' cannot be resolved: ", std::strerror(err)));
    }
    struct stat st;
    if (::stat(resolved.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat("--allowed-roots: '", root,
                                                     "' is not a directory; create a directory there or fix the flag"));
    }
    if (std::find(canonical.begin(), canonical.end(), resolved) == canonical.end()) {
      canonical.push_back(std::move(resolved));
    }
  }
  return AllowedRoots(std::move(canonical));
}

bool IsPathWithin(std::string_view path, std::string_view dir) {
  if (dir == "/") return !path.empty() && path.front() == '/';
  if (path.size() < dir.size() || path.compare(0, dir.size(), dir) != 0) return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

bool AllowedRoots::Contains(std::string_view canonical_path) const {
  for (const std::string& root : roots_) {
    if (IsPathWithin(canonical_path, root)) return true;
  }
  return false;
}

absl::Status CheckPathUnder(std::string_view path_in, std::string_view dir, std::string_view field_in,
                            std::string_view what) {
  if (absl::Status s = ValidatePathSyntax(path_in, field_in); !s.ok()) return s;
  const absl::string_view path = Av(path_in), field = Av(field_in);
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "." || part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": '", path, "' has a '", part, "' component; give a plain absolute path"));
    }
  }
  const std::string resolved = ApproximateCanonical(std::string(path_in));
  const std::string base = ApproximateCanonical(std::string(dir));
  if (dir.empty() || !IsPathWithin(resolved, base)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": '", path, "' is outside ", Av(what)));
  }
  return absl::OkStatus();
}

absl::Status AllowedRoots::OutsideError(std::string_view path_in, std::string_view field_in) const {
  const absl::string_view path = Av(path_in), field = Av(field_in);
  return absl::PermissionDeniedError(absl::StrCat(
      field, ": '", path, "' is outside the allowed roots (", absl::StrJoin(roots_, ", "),
      "); move the files under one of them or start tuneforge-metadata with --allowed-roots"));
}

absl::StatusOr<std::string> AllowedRoots::Resolve(std::string_view path_in, std::string_view field_in) const {
  if (absl::Status s = ValidatePathSyntax(path_in, field_in); !s.ok()) return s;
  const absl::string_view path = Av(path_in), field = Av(field_in);
  const std::string p(path_in);
  std::string resolved;
  if (RealPath(p, &resolved)) {
    if (!Contains(resolved)) return OutsideError(path_in, field_in);
    return resolved;
  }
  int err = errno;
  // Decide "outside" first so that errors never reveal what exists outside the roots.
  if (!Contains(ApproximateCanonical(p))) return OutsideError(path_in, field_in);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(absl::StrCat(field, ": '", path, "' does not exist"));
    case EACCES:
      return absl::PermissionDeniedError(absl::StrCat(
          field, ": '", path, "' cannot be accessed (permission denied); make it readable by the tuneforge-metadata user"));
    case ELOOP:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": '", path, "' has too many levels of symbolic links (a symlink loop?)"));
    case ENAMETOOLONG:
      return absl::InvalidArgumentError(absl::StrCat(field, ": '", path, "' has a file name that is too long"));
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": '", path, "' cannot be resolved: ", std::strerror(err)));
  }
}

absl::StatusOr<std::string> AllowedRoots::ResolveNew(std::string_view path_in, std::string_view field_in) const {
  if (absl::Status s = ValidatePathSyntax(path_in, field_in); !s.ok()) return s;
  const absl::string_view path = Av(path_in), field = Av(field_in);
  absl::string_view trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.remove_suffix(1);
  size_t slash = trimmed.rfind('/');
  absl::string_view name = trimmed.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", path, "' must end in the name of a new file or directory, not '", name, "'"));
  }
  std::string parent(slash == 0 ? absl::string_view("/") : trimmed.substr(0, slash));

  absl::StatusOr<std::string> parent_resolved = Resolve(parent, field_in);
  if (!parent_resolved.ok()) {
    switch (parent_resolved.status().code()) {
      case absl::StatusCode::kPermissionDenied:
        if (!Contains(ApproximateCanonical(parent))) return OutsideError(path_in, field_in);
        return parent_resolved.status();
      case absl::StatusCode::kNotFound:
        return absl::NotFoundError(absl::StrCat(field, ": the parent directory '", parent, "' of '", path,
                                                "' does not exist; create it first"));
      default:
        return parent_resolved.status();
    }
  }
  struct stat st;
  if (::stat(parent_resolved->c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": the parent '", parent, "' of '", path, "' is not a directory"));
  }
  std::string full = *parent_resolved == "/" ? absl::StrCat("/", name) : absl::StrCat(*parent_resolved, "/", name);
  if (::lstat(full.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat(field, ": '", path, "' already exists; choose a new path or remove it first"));
  }
  int err = errno;
  if (err == ENOENT) return full;
  if (err == ENAMETOOLONG) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": '", path, "' has a file name that is too long"));
  }
  if (err == EACCES) {
    return absl::PermissionDeniedError(absl::StrCat(field, ": the parent directory of '", path,
                                                    "' cannot be searched (permission denied); fix its permissions"));
  }
  return absl::InvalidArgumentError(absl::StrCat(field, ": '", path, "' cannot be checked: ", std::strerror(err)));
}

}  // namespace tuneforge
