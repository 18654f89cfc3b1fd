// Local dataset files, read in chunks: UTF-8 validation and hashing on the way, a SAX parser for json/jsonl that
// builds one row at a time and keeps the file's column order, an RFC 4180 csv reader fed record by record, feature
// inference, and the seeded split (and its first indices without the whole permutation).
#include "common/dataset_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <streambuf>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/json_limits.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace tuneforge {
namespace {

using json = nlohmann::json;

// Our abseil's string_view is its own type, not std::string_view; StrCat needs it.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// ---------------------------------------------------------------------------------------------------------------
// JSON messages

// nlohmann messages look like "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ...";
// keep the part after the position, since we report our own line numbers.
std::string JsonErrorDetail(const std::string& what) {
  std::string_view w = what;
  size_t p = w.find("parse error at line");
  if (p != std::string_view::npos) {
    size_t colon = w.find(": ", p);
    if (colon != std::string_view::npos) return std::string(w.substr(colon + 2));
  }
  size_t bracket = w.find("] ");
  if (w.rfind("[json.exception", 0) == 0 && bracket != std::string_view::npos) return std::string(w.substr(bracket + 2));
  return what;
}

std::string JsonTypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "a number";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a binary value";
  }
}


class KeyOrder {
 public:
  void Add(const std::string& key) {
    if (seen_.insert(key).second) keys_.push_back(key);
  }
  std::vector<std::string> Take() { return std::move(keys_); }

 private:
  std::vector<std::string> keys_;
  std::unordered_set<std::string> seen_;
};

// ---------------------------------------------------------------------------------------------------------------
// CSV fields and values

struct CsvRecord {
  std::vector<std::string> fields;
  int line = 0;  // where the record starts
};

// The records of `text`, whose first line is line `first_line` of the file.
absl::Status ReadCsvRecords(std::string_view text, absl::string_view label, int first_line,
                            std::vector<CsvRecord>* records) {
  const size_t n = text.size();
  size_t i = 0;
  int line = first_line;
  auto is_break = [&](size_t k) { return text[k] == '\n' || text[k] == '\r'; };
  while (i < n) {
    CsvRecord record;
    record.line = line;
    bool blank = true;  // a single empty, unquoted field: a blank line, skipped as pandas does
    for (;;) {
      std::string field;
      if (i < n && text[i] == '"') {
        blank = false;
        const int quote_line = line;
        ++i;
        for (;;) {
          if (i >= n) {
            return absl::InvalidArgumentError(absl::StrCat(
                label, ":", quote_line, ": quoted field is never closed; add the closing '\"' (a '\"' inside a ",
                "quoted field is written '\"\"')"));
          }
          size_t next = text.find_first_of("\"\n\r", i);
          if (next == std::string_view::npos) next = n;
          field.append(text.data() + i, next - i);
          i = next;
          if (i >= n) continue;
          char c = text[i];
          if (c == '"') {
            if (i + 1 < n && text[i + 1] == '"') {
              field.push_back('"');
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          // A line break inside the quotes belongs to the value.
          if (c == '\n' || !(i + 1 < n && text[i + 1] == '\n')) ++line;
          field.push_back(c);
          ++i;
        }
        if (i < n && text[i] != ',' && !is_break(i)) {
          return absl::InvalidArgumentError(absl::StrCat(
              label, ":", line, ": unexpected character '", std::string(1, text[i]),
              "' after the closing quote of a field; inside a quoted field write a double quote as '\"\"'"));
        }
      } else {
        size_t start = i;
        while (i < n && text[i] != ',' && !is_break(i)) ++i;
        field.assign(text.data() + start, i - start);
        if (!field.empty()) blank = false;
      }
      record.fields.push_back(std::move(field));
      if (i < n && text[i] == ',') {
        blank = false;
        ++i;
        continue;
      }
      if (i < n) {  // CRLF, LF or a lone CR ends the record
        if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
        ++i;
        ++line;
      }
      break;
    }
    if (!blank) records->push_back(std::move(record));
  }
  return absl::OkStatus();
}

bool ParseCsvInt(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  size_t start = (s[0] == '+' || s[0] == '-') ? 1 : 0;
  if (start == s.size()) return false;
  for (size_t k = start; k < s.size(); ++k) {
    if (s[k] < '0' || s[k] > '9') return false;
  }
  if (s[0] == '+') s.remove_prefix(1);
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// Decimal numbers as pandas' C parser reads them: [+-] digits [. digits] [e [+-] digits], or [+-] . digits [...].
bool ParseCsvFloat(std::string_view s, double* out) {
  size_t k = 0;
  if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
  size_t digits = 0;
  while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) ++k, ++digits;
  if (k < s.size() && s[k] == '.') {
    ++k;
    while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) ++k, ++digits;
  }
  if (digits == 0) return false;
  if (k < s.size() && (s[k] == 'e' || s[k] == 'E')) {
    ++k;
    if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
    size_t exp_digits = 0;
    while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) ++k, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  if (k != s.size()) return false;
  if (s[0] == '+') s.remove_prefix(1);
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(*out);
}

bool ParseCsvBool(std::string_view s, bool* out) {
  if (s == "True" || s == "true" || s == "TRUE") {
    *out = true;
    return true;
  }
  if (s == "False" || s == "false" || s == "FALSE") {
    *out = false;
    return true;
  }
  return false;
}

enum class CsvColumnType { kInt, kFloat, kBool, kString };

// ---------------------------------------------------------------------------------------------------------------
// Features and splits

class FeatureAccumulator {
 public:
  void Add(const json& row) {
    if (!row.is_object()) return;
    for (auto it = row.begin(); it != row.end(); ++it) {
      auto [slot, inserted] = index_.emplace(it.key(), kinds_.size());
      if (inserted) {
        order_.push_back(it.key());
        kinds_.push_back(0);
      }
      kinds_[slot->second] |= KindBit(it.value());
    }
  }

  std::vector<DatasetFeature> Result(const std::vector<std::string>& column_order) const {
    std::vector<DatasetFeature> out;
    std::unordered_set<std::string> emitted;
    auto emit = [&](const std::string& name) {
      auto it = index_.find(name);
      if (it == index_.end() || !emitted.insert(name).second) return;
      out.push_back({name, TypeName(kinds_[it->second])});
    };
    for (const std::string& name : column_order) emit(name);
    for (const std::string& name : order_) emit(name);
    return out;
  }

 private:
  enum : unsigned { kInt = 1, kFloat = 2, kString = 4, kBool = 8, kList = 16, kObject = 32, kOther = 64 };

  static unsigned KindBit(const json& v) {
    switch (v.type()) {
      case json::value_t::null: return 0;
      case json::value_t::number_integer:
      case json::value_t::number_unsigned: return kInt;
      case json::value_t::number_float: return kFloat;
      case json::value_t::string: return kString;
      case json::value_t::boolean: return kBool;
      case json::value_t::array: return kList;
      case json::value_t::object: return kObject;
      default: return kOther;
    }
  }

  static std::string TypeName(unsigned kinds) {
    switch (kinds) {
      case 0: return "null";
      case kInt: return "int";
      case kFloat:
      case kInt | kFloat: return "float";
      case kString: return "string";
      case kBool: return "bool";
      case kList: return "list";
      case kObject: return "object";
      default: return "mixed";
    }
  }

  std::vector<std::string> order_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<unsigned> kinds_;
};

// Uniform integer in [0, bound) from raw 64-bit draws, rejecting the short top range so that every value is
// equally likely. std::uniform_int_distribution is not used: its algorithm differs between standard libraries.
uint64_t UniformBelow(std::mt19937_64& gen, uint64_t bound) {
  const uint64_t threshold = (uint64_t{0} - bound) % bound;  // 2^64 mod bound
  for (;;) {
    uint64_t r = gen();
    if (r >= threshold) return r % bound;
  }
}

std::string FormatSplitSetting(double v) { return absl::StrFormat("%.17g", v); }


// Rows of the generated test split of n >= 2 rows: ceil(n * test_size), clamped to [1, n-1].
size_t TestSplitSize(size_t n, double test_size) {
  const double wanted = std::ceil(static_cast<double>(n) * test_size);
  if (wanted >= static_cast<double>(n - 1)) return n - 1;
  if (wanted > 1) return static_cast<size_t>(wanted);
  return 1;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading: a file in chunks, hashed and checked as UTF-8 on the way, with the BOM removed.

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() { ::close(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

std::string TooLargeMessage(absl::string_view label, int64_t size, int64_t max_bytes) {
  return absl::StrCat(label, " is larger than the limit for a local dataset file (", size, " > ", max_bytes,
                      " bytes); use a smaller file or publish the dataset on a Hugging Face Hub");
}

absl::Status CheckUtf8(std::string_view text, absl::string_view label, int line, size_t base_offset) {
  size_t bad = FirstInvalidUtf8(text);
  if (bad == std::string_view::npos) return absl::OkStatus();
  const int at_line = line + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<ptrdiff_t>(bad), '\n'));
  return absl::InvalidArgumentError(
      absl::StrFormat("%s:%d: not valid UTF-8 (byte 0x%02X at byte offset %d); save the file as UTF-8", label, at_line,
                      static_cast<unsigned char>(text[bad]), bad + base_offset));
}

// Bytes at the end of `text` that may start a UTF-8 sequence completed by the next chunk (0-3).
size_t IncompleteUtf8Tail(std::string_view text) {
  for (size_t back = 1; back <= 3 && back <= text.size(); ++back) {
    const auto c = static_cast<unsigned char>(text[text.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return len > back ? back : 0;
  }
  return 0;
}

class FileStream {
 public:
  static absl::StatusOr<std::unique_ptr<FileStream>> Open(const std::string& path, absl::string_view label,
                                                          const DatasetReadLimits& limits) {
    std::string where = label == path ? std::string(label) : absl::StrCat(label, " ('", path, "')");
    // O_NONBLOCK keeps open() from hanging on a FIFO; it changes nothing for regular files.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) return absl::NotFoundError(absl::StrCat(where, " does not exist"));
      if (err == EACCES) {
        return absl::PermissionDeniedError(
            absl::StrCat(where, " cannot be read (permission denied); make it readable by the tuneforge user"));
      }
      return absl::InvalidArgumentError(absl::StrCat(where, " cannot be opened: ", std::strerror(err)));
    }
    auto stream = std::unique_ptr<FileStream>(new FileStream(fd, where, label, limits));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, " cannot be examined: ", std::strerror(errno)));
    }
    if (S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " is a directory; give the path of a .jsonl, .json, .csv or .parquet file"));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " is not a regular file; give the path of a .jsonl, .json, .csv or .parquet file"));
    }
    if (st.st_size > limits.max_file_bytes) {
      return absl::ResourceExhaustedError(TooLargeMessage(label, st.st_size, limits.max_file_bytes));
    }
    return stream;
  }

  ~FileStream() { ::close(fd_); }

  // The next piece of the file's text, checked as UTF-8 (a sequence cut by the chunk boundary waits for the next
  // piece). Empty at the end of the file or on an error (status()).
  std::string_view Next() {
    while (status_.ok() && !eof_) {
      // Keep the bytes of an incomplete UTF-8 sequence from the last piece in front.
      buffer_.erase(0, returned_);
      const size_t carried = buffer_.size();
      buffer_.resize(carried + limits_.read_chunk_bytes);
      ssize_t n;
      do {
        n = ::read(fd_, buffer_.data() + carried, limits_.read_chunk_bytes);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        status_ = absl::DataLossError(absl::StrCat(where_, ": read error: ", std::strerror(errno)));
        break;
      }
      buffer_.resize(carried + static_cast<size_t>(n));
      hash_.Update(std::string_view(buffer_.data() + carried, static_cast<size_t>(n)));
      size_ += n;
      if (size_ > limits_.max_file_bytes) {  // it grew since it was opened
        status_ = absl::ResourceExhaustedError(TooLargeMessage(label_, size_, limits_.max_file_bytes));
        break;
      }
      eof_ = n == 0;
      std::string_view text(buffer_);
      size_t start = 0;
      if (!bom_checked_ && (text.size() >= 3 || eof_)) {
        bom_checked_ = true;
        if (text.substr(0, 3) == "\xEF\xBB\xBF") start = bom_ = 3;
      } else if (!bom_checked_) {
        returned_ = 0;
        continue;  // fewer than 3 bytes so far: the BOM may still be coming
      }
      const size_t tail = eof_ ? 0 : IncompleteUtf8Tail(text.substr(start));
      const std::string_view piece = text.substr(start, text.size() - start - tail);
      returned_ = start + piece.size();
      max_buffered_ = std::max(max_buffered_, buffer_.capacity());
      status_ = CheckUtf8(piece, label_, line_, static_cast<size_t>(offset_));
      if (!status_.ok()) break;
      line_ += static_cast<int>(std::count(piece.begin(), piece.end(), '\n'));
      offset_ += static_cast<int64_t>(start + piece.size());
      if (!piece.empty()) return piece;
    }
    return {};
  }

  // Reads the rest of a binary file (Parquet) for its size and hash, without the text checks of Next().
  absl::Status HashAll() {
    std::string chunk(limits_.read_chunk_bytes, '\0');
    while (true) {
      ssize_t n;
      do {
        n = ::read(fd_, chunk.data(), chunk.size());
      } while (n < 0 && errno == EINTR);
      if (n < 0) return absl::DataLossError(absl::StrCat(where_, ": read error: ", std::strerror(errno)));
      if (n == 0) return absl::OkStatus();
      hash_.Update(std::string_view(chunk.data(), static_cast<size_t>(n)));
      size_ += n;
      max_buffered_ = chunk.size();
      if (size_ > limits_.max_file_bytes) {  // it grew since it was opened
        return absl::ResourceExhaustedError(TooLargeMessage(label_, size_, limits_.max_file_bytes));
      }
    }
  }

  const absl::Status& status() const { return status_; }
  int64_t size() const { return size_; }
  std::string HexDigest() { return hash_.HexDigest(); }
  size_t bom() const { return bom_; }
  size_t max_buffered() const { return max_buffered_; }
  const std::string& where() const { return where_; }

  // (line, column) of a byte offset of the text (after the BOM), found by reading the file again: for errors only.
  std::pair<int, size_t> LineAndColumnAt(size_t offset) {
    int line = 1;
    size_t column = 1;
    std::string chunk(64 << 10, '\0');
    size_t pos = 0, skip = bom_;
    if (::lseek(fd_, 0, SEEK_SET) != 0) return {line, column};
    for (ssize_t n; pos < offset && (n = ::read(fd_, chunk.data(), chunk.size())) > 0;) {
      for (ssize_t k = 0; k < n && pos < offset; ++k) {
        if (skip > 0) {
          --skip;
          continue;
        }
        ++pos;
        if (chunk[k] == '\n') {
          ++line;
          column = 1;
        } else {
          ++column;
        }
      }
    }
    return {line, column};
  }

 private:
  FileStream(int fd, std::string where, absl::string_view label, const DatasetReadLimits& limits)
      : fd_(fd), where_(std::move(where)), label_(label), limits_(limits) {}

  int fd_;
  std::string where_;
  std::string label_;
  DatasetReadLimits limits_;
  std::string buffer_;
  size_t returned_ = 0;  // bytes of buffer_ handed out by the last Next()
  bool eof_ = false;
  bool bom_checked_ = false;
  size_t bom_ = 0;
  int line_ = 1;         // line of the next byte handed out
  int64_t offset_ = 0;   // file offset of the next byte handed out
  int64_t size_ = 0;
  size_t max_buffered_ = 0;
  Sha256 hash_;
  absl::Status status_;
};

std::string RowTooLargeMessage(absl::string_view label, int line, size_t limit) {
  return absl::StrCat(label, ":", line, ": a row is larger than the ", limit,
                      "-byte limit for one row; split the data into smaller rows");
}

// ---------------------------------------------------------------------------------------------------------------
// jsonl: lines, split across chunks, each parsed on its own.

// Calls `line(text, line_number)` with each line (without its line break) of the stream; a line over `max_bytes`
// stops with INVALID_ARGUMENT. `line` returns false to stop. Returns the most bytes a line held.
absl::Status ForEachLine(FileStream& stream, absl::string_view label, size_t max_bytes, size_t* held,
                         const std::function<absl::Status(std::string_view, int, bool*)>& line) {
  std::string partial;
  int line_no = 1;
  bool more = true;
  auto emit = [&](std::string_view text) -> absl::Status {
    if (text.size() > max_bytes) return absl::InvalidArgumentError(RowTooLargeMessage(label, line_no, max_bytes));
    RETURN_IF_ERROR(line(text, line_no, &more));
    ++line_no;
    return absl::OkStatus();
  };
  for (std::string_view piece = stream.Next(); !piece.empty() && more; piece = stream.Next()) {
    while (!piece.empty() && more) {
      const size_t nl = piece.find('\n');
      if (nl == std::string_view::npos) {
        if (partial.size() + piece.size() > max_bytes) {
          return absl::InvalidArgumentError(RowTooLargeMessage(label, line_no, max_bytes));
        }
        partial.append(piece);
        *held = std::max(*held, partial.capacity());
        break;
      }
      if (partial.empty()) {
        RETURN_IF_ERROR(emit(piece.substr(0, nl)));
      } else {
        partial.append(piece.substr(0, nl));
        *held = std::max(*held, partial.capacity());
        RETURN_IF_ERROR(emit(partial));
        partial.clear();
      }
      piece.remove_prefix(nl + 1);
    }
  }
  RETURN_IF_ERROR(stream.status());
  if (more && !partial.empty()) RETURN_IF_ERROR(emit(partial));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------------------------
// JSON via SAX: builds one row at a time like nlohmann's own parser builds a document, but limits nesting, records
// the order in which a row's keys appear (a nlohmann::json object forgets it), and hands each row on as soon as it
// is complete. jsonl: the root value is the row. json: rows are the elements of a root array, or of the arrays under
// the keys of a root object (the candidates: the file's rows are those of the one key whose array holds objects only).

class RowSaxBuilder {
 public:
  // `row(key, row, keys)`: key is "" but for the rows of a root object's key; keys in file order. False stops.
  using RowFn = std::function<bool(const std::string& key, json&& row, std::vector<std::string>&& keys)>;

  // `position` tells how many bytes the parser has read (to bound the size of a row).
  RowSaxBuilder(bool root_is_row, std::function<size_t()> position, size_t max_row_bytes, RowFn row)
      : root_is_row_(root_is_row), position_(std::move(position)), max_row_bytes_(max_row_bytes), on_row_(std::move(row)) {}

  bool null() { return Value(json(nullptr), "null"); }
  bool boolean(bool v) { return Value(json(v), "a boolean"); }
  bool number_integer(json::number_integer_t v) { return Value(json(v), "a number"); }
  bool number_unsigned(json::number_unsigned_t v) { return Value(json(v), "a number"); }
  bool number_float(json::number_float_t v, const json::string_t&) { return Value(json(v), "a number"); }
  bool string(json::string_t& v) { return Value(json(std::move(v)), "a string"); }
  bool binary(json::binary_t& v) { return Value(json::binary(std::move(v)), "a binary value"); }
  bool start_object(std::size_t) { return Open(json::object(), "an object"); }
  bool start_array(std::size_t) { return Open(json::array(), "an array"); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }
  bool key(json::string_t& k) {
    Frame& top = frames_.back();
    switch (top.kind) {
      case Kind::kRootObject:
        top_key_ = k;
        candidates_.emplace(k, true);
        break;
      case Kind::kRow:
        if (top.value->is_object()) row_keys_.push_back(k);
        [[fallthrough]];
      case Kind::kInRow:
        pending_ = &(*top.value)[k];
        break;
      default:
        break;
    }
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) {
    error_position_ = position;
    error_ = JsonErrorDetail(ex.what());
    return false;
  }

  bool too_deep() const { return too_deep_; }
  bool seen_any() const { return seen_any_; }
  size_t error_position() const { return error_position_; }
  const std::string& error() const { return error_; }
  const std::string& shape_error() const { return shape_error_; }
  bool stopped() const { return stopped_; }
  // json: the keys of a root object whose value is an array of objects only (sorted); empty for a root array.
  std::vector<std::string> Candidates() const {
    std::vector<std::string> out;
    for (const auto& [key, only_objects] : candidates_) {
      if (only_objects) out.push_back(key);
    }
    return out;
  }
  bool root_is_array() const { return root_is_array_; }

 private:
  enum class Kind { kRootArray, kRootObject, kKeyArray, kRow, kInRow, kSkip };
  struct Frame {
    Kind kind;
    json* value;  // the container being built (kRow, kInRow)
  };

  // What a value that starts here becomes: a row, part of a row, a container of rows, or something skipped.
  // False (with shape_error_) when the file cannot be a dataset.
  bool Classify(bool is_object, bool is_container, const char* type, Kind* kind) {
    seen_any_ = true;
    if (frames_.empty()) {
      if (root_is_row_) {
        *kind = Kind::kRow;
      } else if (!is_container) {
        return Shape(absl::StrCat("the top-level value is ", type, kExpectedJson));
      } else {
        root_is_array_ = !is_object;
        *kind = is_object ? Kind::kRootObject : Kind::kRootArray;
      }
      return true;
    }
    switch (frames_.back().kind) {
      case Kind::kRootArray:
        if (!is_object) {
          return Shape(absl::StrCat("element ", elements_, " (0-based) of the top-level array is ", type,
                                    ", expected an object", kExpectedJson));
        }
        ++elements_;
        *kind = Kind::kRow;
        return true;
      case Kind::kRootObject:
        if (is_container && !is_object) {
          *kind = Kind::kKeyArray;
        } else {
          candidates_[top_key_] = false;
          *kind = Kind::kSkip;
        }
        return true;
      case Kind::kKeyArray:
        if (!is_object) candidates_[top_key_] = false;
        *kind = is_object ? Kind::kRow : Kind::kSkip;
        return true;
      case Kind::kRow:
      case Kind::kInRow:
        *kind = Kind::kInRow;
        return true;
      case Kind::kSkip:
        *kind = Kind::kSkip;
        return true;
    }
    return true;
  }

  // Where a value that belongs to the row being built goes.
  json* Place(json&& v) {
    json* parent = frames_.back().value;
    if (parent->is_array()) {
      parent->push_back(std::move(v));
      return &parent->back();
    }
    *pending_ = std::move(v);
    return pending_;
  }

  bool Value(json&& v, const char* type) {
    Kind kind;
    if (!Classify(false, false, type, &kind)) return false;
    if (kind == Kind::kRow) {  // a jsonl line holding a scalar: its caller says what is wrong
      row_start_ = position_();
      return Emit(std::move(v));
    }
    if (kind != Kind::kInRow) return true;
    Place(std::move(v));
    return CheckRowSize();
  }

  bool Open(json&& v, const char* type) {
    Kind kind;
    if (!Classify(v.is_object(), true, type, &kind)) return false;
    if (frames_.size() >= static_cast<size_t>(kMaxJsonDepth)) {
      too_deep_ = true;
      return false;
    }
    json* value = nullptr;
    if (kind == Kind::kRow) {
      row_ = std::move(v);
      value = &row_;
      row_keys_.clear();
      row_start_ = position_();
    } else if (kind == Kind::kInRow) {
      value = Place(std::move(v));
    }
    frames_.push_back({kind, value});
    return kind != Kind::kInRow || CheckRowSize();
  }

  bool Close() {
    const Kind kind = frames_.back().kind;
    frames_.pop_back();
    if (kind == Kind::kRow) return Emit(std::move(row_));
    return kind != Kind::kInRow || CheckRowSize();
  }

  bool Emit(json&& row) {
    if (!CheckRowSize()) return false;
    const bool under_key = !frames_.empty() && frames_.back().kind == Kind::kKeyArray;
    if (!on_row_(under_key ? top_key_ : std::string(), std::move(row), std::move(row_keys_))) {
      stopped_ = true;
      return false;
    }
    row_keys_.clear();
    return true;
  }

  bool CheckRowSize() {
    if (position_() - row_start_ <= max_row_bytes_) return true;
    return Shape(absl::StrCat("a row is larger than the ", max_row_bytes_,
                              "-byte limit for one row; split the data into smaller rows"));
  }

  bool Shape(std::string message) {
    shape_error_ = std::move(message);
    return false;
  }

  static constexpr const char* kExpectedJson =
      "; a .json dataset must be an array of objects ([{...}, {...}]) or an object with one such array "
      "(as {\"data\": [{...}]}); for one object per line use .jsonl";

  const bool root_is_row_;
  std::function<size_t()> position_;
  const size_t max_row_bytes_;
  RowFn on_row_;
  std::vector<Frame> frames_;  // open containers, outermost first; value pointers stay valid (only the last is open)
  json row_;
  json* pending_ = nullptr;  // slot of the key just read
  std::vector<std::string> row_keys_;
  std::string top_key_;
  std::map<std::string, bool> candidates_;
  size_t elements_ = 0;  // elements of a root array so far
  size_t row_start_ = 0;
  bool root_is_array_ = false;
  bool too_deep_ = false;
  bool seen_any_ = false;
  bool stopped_ = false;
  std::string shape_error_;
  size_t error_position_ = 0;
  std::string error_;
};

// nlohmann's parser reads a std::istream through this: the pieces of a FileStream, in place.
class FileStreamBuf : public std::streambuf {
 public:
  explicit FileStreamBuf(FileStream& stream) : stream_(stream) {}
  // Bytes of text the parser has taken so far.
  size_t consumed() const { return before_ + static_cast<size_t>(gptr() - eback()); }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    before_ += static_cast<size_t>(egptr() - eback());
    const std::string_view piece = stream_.Next();
    if (piece.empty()) return traits_type::eof();
    char* p = const_cast<char*>(piece.data());
    setg(p, p, p + piece.size());
    return traits_type::to_int_type(*gptr());
  }

 private:
  FileStream& stream_;
  size_t before_ = 0;
};

struct JsonRows {
  bool root_is_object = false;          // json whose root is an object: rows are under one of its keys
  std::vector<std::string> candidates;  // json with a root object: keys whose arrays hold objects only
  size_t largest_row = 0;               // bytes
};

// Every row of a jsonl or json file, in order: `row(key, row, keys)` as RowSaxBuilder gives them (jsonl rows are
// objects; for json every element of a candidate array is passed, with its key). False from `row` stops early.
absl::StatusOr<JsonRows> ForEachJsonRow(FileStream& stream, DatasetFormat format, absl::string_view label,
                                        size_t max_row_bytes, const RowSaxBuilder::RowFn& row) {
  JsonRows out;
  if (format == DatasetFormat::kJsonl) {
    absl::Status status = ForEachLine(
        stream, label, max_row_bytes, &out.largest_row,
        [&](std::string_view line, int line_no, bool* more) -> absl::Status {
          if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
          if (line.find_first_not_of(" \t\r") == std::string_view::npos) return absl::OkStatus();
          out.largest_row = std::max(out.largest_row, line.size());
          absl::Status not_an_object;
          RowSaxBuilder sax(
              /*root_is_row=*/true, [] { return size_t{0}; }, max_row_bytes,
              [&](const std::string& key, json&& value, std::vector<std::string>&& keys) {
                if (!value.is_object()) {
                  not_an_object = absl::InvalidArgumentError(absl::StrCat(
                      label, ":", line_no, ": expected a JSON object, got ", JsonTypeName(value),
                      "; each line must hold one object such as {\"text\": \"...\"}"));
                  return false;
                }
                if (!row(key, std::move(value), std::move(keys))) *more = false;
                return true;
              });
          bool ok = false;
          try {
            ok = json::sax_parse(line.data(), line.data() + line.size(), &sax);
          } catch (const json::exception& e) {
            return absl::InvalidArgumentError(
                absl::StrCat(label, ":", line_no, ": not valid JSON: ", JsonErrorDetail(e.what())));
          }
          RETURN_IF_ERROR(not_an_object);
          if (sax.too_deep()) {
            return absl::InvalidArgumentError(absl::StrCat(label, ":", line_no, ": JSON nested deeper than ",
                                                           kMaxJsonDepth, " levels; flatten the row"));
          }
          if (!ok) {
            return absl::InvalidArgumentError(absl::StrCat(label, ":", line_no, ":",
                                                           std::max<size_t>(sax.error_position(), 1),
                                                           ": not valid JSON: ", sax.error(),
                                                           "; each line must hold one JSON object"));
          }
          return absl::OkStatus();
        });
    RETURN_IF_ERROR(status);
    return out;
  }

  FileStreamBuf buffer(stream);
  std::istream in(&buffer);
  size_t row_start = 0;
  RowSaxBuilder sax(
      /*root_is_row=*/false, [&] { return buffer.consumed(); }, max_row_bytes,
      [&](const std::string& key, json&& value, std::vector<std::string>&& keys) {
        out.largest_row = std::max(out.largest_row, buffer.consumed() - std::min(buffer.consumed(), row_start));
        row_start = buffer.consumed();
        return row(key, std::move(value), std::move(keys));
      });
  bool ok = false;
  try {
    ok = json::sax_parse(in, &sax);
  } catch (const json::exception& e) {
    RETURN_IF_ERROR(stream.status());
    return absl::InvalidArgumentError(absl::StrCat(label, ": not valid JSON: ", JsonErrorDetail(e.what())));
  }
  RETURN_IF_ERROR(stream.status());  // a read or UTF-8 error ends the text the parser sees
  if (!sax.shape_error().empty()) return absl::InvalidArgumentError(absl::StrCat(label, ": ", sax.shape_error()));
  if (sax.too_deep()) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": JSON nested deeper than ", kMaxJsonDepth, " levels; flatten the rows"));
  }
  if (!ok && !sax.stopped()) {
    if (!sax.seen_any() && absl::StrContains(sax.error(), "unexpected end of input")) {
      return out;  // only whitespace: no rows
    }
    // nlohmann counts the position from 1 (it is the number of bytes read, the bad one included).
    const size_t at = sax.error_position() > 0 ? sax.error_position() - 1 : 0;
    const auto [line, column] = stream.LineAndColumnAt(at);
    return absl::InvalidArgumentError(absl::StrCat(label, ":", line, ":", column, ": not valid JSON (byte offset ",
                                                   at + stream.bom(), "): ", sax.error()));
  }
  out.root_is_object = sax.seen_any() && !sax.root_is_array();
  out.candidates = sax.Candidates();
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// CSV: records split across chunks (a quoted value may span lines), each parsed by ReadCsvRecords.

absl::Status ForEachCsvRecord(FileStream& stream, absl::string_view label, size_t max_row_bytes, size_t* held,
                              const std::function<absl::Status(CsvRecord&&, bool*)>& record) {
  enum class State { kFieldStart, kUnquoted, kQuoted, kQuoteInQuoted };
  State state = State::kFieldStart;
  std::string text;
  int line = 1, record_line = 1;
  char previous = '\0';
  bool more = true;
  auto flush = [&]() -> absl::Status {
    std::vector<CsvRecord> records;
    RETURN_IF_ERROR(ReadCsvRecords(text, label, record_line, &records));
    text.clear();
    for (CsvRecord& r : records) {
      if (more) RETURN_IF_ERROR(record(std::move(r), &more));
    }
    return absl::OkStatus();
  };
  for (std::string_view piece = stream.Next(); !piece.empty() && more; piece = stream.Next()) {
    for (size_t i = 0; i < piece.size() && more; ++i) {
      const char c = piece[i];
      const bool crlf = c == '\n' && previous == '\r';
      previous = c;
      if (c == '\r' || (c == '\n' && !crlf)) ++line;
      const bool is_break = c == '\n' || c == '\r';
      if (state == State::kQuoted) {
        text.push_back(c);
        if (c == '"') state = State::kQuoteInQuoted;
      } else if (is_break) {
        if (crlf && state == State::kFieldStart && text.empty()) continue;  // the LF of a CRLF that ended a record
        RETURN_IF_ERROR(flush());
        state = State::kFieldStart;
        record_line = line;
      } else {
        text.push_back(c);
        if (c == ',') {
          state = State::kFieldStart;
        } else if (c == '"' && (state == State::kFieldStart || state == State::kQuoteInQuoted)) {
          state = State::kQuoted;  // an opening quote, or the second of a "" inside a quoted value
        } else {
          state = State::kUnquoted;  // after a closing quote, ReadCsvRecords reports the stray character
        }
      }
      if (text.size() > max_row_bytes) {
        return absl::InvalidArgumentError(RowTooLargeMessage(label, record_line, max_row_bytes));
      }
      *held = std::max(*held, text.capacity());
    }
  }
  RETURN_IF_ERROR(stream.status());
  if (more && !text.empty()) RETURN_IF_ERROR(flush());
  return absl::OkStatus();
}

struct CsvColumn {
  bool all_int = true, all_number = true, all_bool = true, has_value = false;
};

CsvColumnType TypeOf(const CsvColumn& c) {
  return c.all_int ? CsvColumnType::kInt
         : c.all_number ? CsvColumnType::kFloat
         : c.all_bool   ? CsvColumnType::kBool
                        : CsvColumnType::kString;
}

// The header's column names ("Unnamed: <i>" for empty cells); a duplicate is INVALID_ARGUMENT.
absl::StatusOr<std::vector<std::string>> CsvHeader(const CsvRecord& header, absl::string_view label) {
  std::vector<std::string> names;
  std::unordered_set<std::string> seen;
  for (size_t c = 0; c < header.fields.size(); ++c) {
    std::string name = header.fields[c].empty() ? absl::StrCat("Unnamed: ", c) : header.fields[c];
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(label, ":", header.line, ": column '", name,
                                                     "' appears twice in the header; give every column a unique name"));
    }
    names.push_back(std::move(name));
  }
  return names;
}

absl::Status CheckCsvWidth(const CsvRecord& record, size_t width, absl::string_view label) {
  if (record.fields.size() == width) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(label, ":", record.line, ": row has ", record.fields.size(),
                                                 " fields but the header has ", width,
                                                 "; quote values that contain commas or line breaks (\"a, b\")"));
}

json TypedCsvRow(CsvRecord&& record, const std::vector<std::string>& names, const std::vector<int>& types) {
  json row = json::object();
  for (size_t c = 0; c < names.size(); ++c) {
    std::string& v = record.fields[c];
    json& cell = row[names[c]];
    if (v.empty()) continue;  // stays null
    switch (static_cast<CsvColumnType>(types[c])) {
      case CsvColumnType::kInt: {
        int64_t i = 0;
        ParseCsvInt(v, &i);
        cell = i;
        break;
      }
      case CsvColumnType::kFloat: {
        double d = 0;
        ParseCsvFloat(v, &d);
        cell = d;
        break;
      }
      case CsvColumnType::kBool: {
        bool b = false;
        ParseCsvBool(v, &b);
        cell = b;
        break;
      }
      case CsvColumnType::kString:
        cell = std::move(v);
        break;
    }
  }
  return row;
}

}  // namespace

// -----------------------------------------------------------------------------------------------------------------

std::string_view DatasetFormatName(DatasetFormat f) {
  switch (f) {
    case DatasetFormat::kJsonl: return "jsonl";
    case DatasetFormat::kJson: return "json";
    case DatasetFormat::kCsv: return "csv";
    case DatasetFormat::kParquet: return "parquet";
  }
  return "unknown";
}

absl::StatusOr<DatasetFormat> DatasetFormatFromPath(std::string_view path_in, std::string_view field_in) {
  const absl::string_view path = Av(path_in), field = Av(field_in);
  constexpr absl::string_view kSupported = "supported formats: .jsonl (or .ndjson), .json, .csv, .parquet";
  size_t slash = path.rfind('/');
  absl::string_view name = slash == absl::string_view::npos ? path : path.substr(slash + 1);
  size_t dot = name.rfind('.');
  if (dot == absl::string_view::npos || dot + 1 == name.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", path, "' has no file extension to tell its format; ", kSupported));
  }
  std::string ext = absl::AsciiStrToLower(name.substr(dot + 1));
  if (ext == "jsonl" || ext == "ndjson") return DatasetFormat::kJsonl;
  if (ext == "json") return DatasetFormat::kJson;
  if (ext == "csv") return DatasetFormat::kCsv;
  if (ext == "parquet") {
    if (ParquetSupported()) return DatasetFormat::kParquet;
    return absl::UnimplementedError(absl::StrCat(
        field, ": '", path,
        "': this tuneforge was built without Parquet support (rebuild it with pyarrow in its Python environment); "
        "or convert the file to jsonl (e.g. pandas.read_parquet(...).to_json(lines=True, orient='records'))"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": '", path, "' has extension '.", name.substr(dot + 1), "'; ", kSupported));
}

absl::StatusOr<DatasetFileSummary> SummarizeDatasetFile(const std::string& path, DatasetFormat format,
                                                       std::string_view label_in, const DatasetReadLimits& limits) {
  const absl::string_view label = Av(label_in);
  ASSIGN_OR_RETURN(std::unique_ptr<FileStream> stream, FileStream::Open(path, label, limits));
  DatasetFileSummary summary;
  summary.format = format;
  size_t held = 0;
  if (format == DatasetFormat::kParquet) {
    // The raw bytes for size and hash (the same checks of the path as every format), then Arrow's reader.
    RETURN_IF_ERROR(stream->HashAll());
    ASSIGN_OR_RETURN(const ParquetSummary parquet, SummarizeParquetFile(path, stream->where()));
    summary.num_rows = parquet.num_rows;
    for (const ParquetColumn& c : parquet.columns) {
      summary.columns.push_back(c.name);
      summary.features.push_back({c.name, c.type, c.null_count});
    }
    summary.size = stream->size();
    summary.sha256 = stream->HexDigest();
    summary.max_buffered_bytes = stream->max_buffered();
    summary.parquet_row_groups = parquet.num_row_groups;
    summary.parquet_compression = parquet.compression;
    return summary;
  }
  if (format == DatasetFormat::kCsv) {
    std::vector<CsvColumn> columns;
    bool header = true;
    RETURN_IF_ERROR(ForEachCsvRecord(*stream, label, limits.max_row_bytes, &held,
                                     [&](CsvRecord&& record, bool*) -> absl::Status {
                                       if (header) {
                                         ASSIGN_OR_RETURN(summary.columns, CsvHeader(record, label));
                                         columns.resize(summary.columns.size());
                                         header = false;
                                         return absl::OkStatus();
                                       }
                                       RETURN_IF_ERROR(CheckCsvWidth(record, columns.size(), label));
                                       for (size_t c = 0; c < columns.size(); ++c) {
                                         const std::string& v = record.fields[c];
                                         CsvColumn& col = columns[c];
                                         if (v.empty()) continue;
                                         col.has_value = true;
                                         int64_t i;
                                         double d;
                                         bool b;
                                         if (col.all_int && !ParseCsvInt(v, &i)) col.all_int = false;
                                         if (col.all_number && !col.all_int && !ParseCsvFloat(v, &d)) {
                                           col.all_number = false;
                                         }
                                         if (col.all_bool && !ParseCsvBool(v, &b)) col.all_bool = false;
                                       }
                                       ++summary.num_rows;
                                       return absl::OkStatus();
                                     }));
    static const char* const kTypeNames[] = {"int", "float", "bool", "string"};
    for (size_t c = 0; c < columns.size(); ++c) {
      const CsvColumnType type = TypeOf(columns[c]);
      summary.csv_column_types.push_back(static_cast<int>(type));
      summary.features.push_back({summary.columns[c], columns[c].has_value ? kTypeNames[static_cast<int>(type)] : "null"});
    }
  } else {
    // Per candidate key of a .json object ("" for jsonl and root arrays): columns, features and rows.
    struct RowStats {
      KeyOrder columns;
      FeatureAccumulator features;
      int64_t rows = 0;
    };
    std::map<std::string, RowStats> stats;
    ASSIGN_OR_RETURN(JsonRows rows,
                     ForEachJsonRow(*stream, format, label, limits.max_row_bytes,
                                    [&](const std::string& key, json&& row, std::vector<std::string>&& keys) {
                                      RowStats& s = stats[key];
                                      for (const std::string& k : keys) s.columns.Add(k);
                                      s.features.Add(row);
                                      ++s.rows;
                                      return true;
                                    }));
    held = rows.largest_row;
    std::string key;
    if (rows.root_is_object) {
      const std::string expected =
          "; a .json dataset must be an array of objects ([{...}, {...}]) or an object with one such array "
          "(as {\"data\": [{...}]}); for one object per line use .jsonl";
      if (rows.candidates.size() > 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            label, ": the top-level object has several arrays of objects ('", absl::StrJoin(rows.candidates, "', '"),
            "') and it is unclear which holds the rows", expected));
      }
      if (rows.candidates.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(label, ": the top-level object has no array-of-objects value", expected));
      }
      key = rows.candidates[0];
    }
    summary.json_rows_key = key;
    RowStats& s = stats[key];
    summary.num_rows = s.rows;
    summary.columns = s.columns.Take();
    summary.features = s.features.Result(summary.columns);
  }
  if (summary.num_rows == 0) return absl::InvalidArgumentError(absl::StrCat(label, " has no rows"));
  summary.size = stream->size();
  summary.sha256 = stream->HexDigest();
  summary.max_buffered_bytes = stream->max_buffered() + held;
  return summary;
}

absl::Status ForEachDatasetRow(const std::string& path, std::string_view label_in, const DatasetFileSummary& summary,
                               const std::function<bool(size_t, json&&)>& row, const DatasetReadLimits& limits) {
  const absl::string_view label = Av(label_in);
  ASSIGN_OR_RETURN(std::unique_ptr<FileStream> stream, FileStream::Open(path, label, limits));
  if (summary.format == DatasetFormat::kParquet) return ForEachParquetRow(path, stream->where(), row);
  size_t index = 0;
  if (summary.format == DatasetFormat::kCsv) {
    bool header = true;
    size_t held = 0;
    return ForEachCsvRecord(*stream, label, limits.max_row_bytes, &held,
                            [&](CsvRecord&& record, bool* more) -> absl::Status {
                              if (header) {
                                header = false;
                                return absl::OkStatus();
                              }
                              RETURN_IF_ERROR(CheckCsvWidth(record, summary.columns.size(), label));
                              *more = row(index++, TypedCsvRow(std::move(record), summary.columns,
                                                               summary.csv_column_types));
                              return absl::OkStatus();
                            });
  }
  return ForEachJsonRow(*stream, summary.format, label, limits.max_row_bytes,
                        [&](const std::string& key, json&& value, std::vector<std::string>&&) {
                          if (key != summary.json_rows_key) return true;
                          return row(index++, std::move(value));
                        })
      .status();
}

absl::StatusOr<DatasetFileContent> LoadDatasetFile(const std::string& path, DatasetFormat format,
                                                   std::string_view label, int64_t max_bytes) {
  DatasetReadLimits limits;
  limits.max_file_bytes = max_bytes;
  ASSIGN_OR_RETURN(DatasetFileSummary summary, SummarizeDatasetFile(path, format, label, limits));
  DatasetFileContent content;
  content.rows.reserve(static_cast<size_t>(summary.num_rows));
  RETURN_IF_ERROR(ForEachDatasetRow(
      path, label, summary,
      [&](size_t, json&& row) {
        content.rows.push_back(std::move(row));
        return true;
      },
      limits));
  content.columns = std::move(summary.columns);
  content.size = summary.size;
  content.sha256 = std::move(summary.sha256);
  return content;
}

std::vector<DatasetFeature> InferFeatures(const std::vector<json>& rows, const std::vector<std::string>& column_order) {
  FeatureAccumulator acc;
  for (const json& row : rows) acc.Add(row);
  return acc.Result(column_order);
}

std::vector<size_t> SeededPermutation(size_t n, uint64_t seed) {
  std::vector<size_t> perm(n);
  for (size_t i = 0; i < n; ++i) perm[i] = i;
  if (n < 2) return perm;
  std::mt19937_64 gen(seed);
  for (size_t i = n - 1; i > 0; --i) {
    size_t j = static_cast<size_t>(UniformBelow(gen, static_cast<uint64_t>(i) + 1));
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

SplitIndices TrainTestSplit(size_t n, double test_size, uint64_t seed) {
  SplitIndices out;
  if (n < 2) {
    for (size_t i = 0; i < n; ++i) out.train.push_back(i);
    return out;
  }
  const std::vector<size_t> perm = SeededPermutation(n, seed);
  const size_t n_test = TestSplitSize(n, test_size);
  out.test.assign(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(n_test));
  out.train.assign(perm.begin() + static_cast<std::ptrdiff_t>(n_test), perm.end());
  std::sort(out.test.begin(), out.test.end());
  std::sort(out.train.begin(), out.train.end());
  return out;
}

SplitIndices FirstSplitIndices(size_t n, double test_size, uint64_t seed, size_t k) {
  SplitIndices out;
  if (n < 2) {
    for (size_t i = 0; i < n && i < k; ++i) out.train.push_back(i);
    return out;
  }
  const size_t n_test = TestSplitSize(n, test_size);
  // Follow the indices begin..end-1 through SeededPermutation's swaps; an index ends in test when its final
  // position is below n_test. Batches grow until both sides have k (the lowest indices come first).
  for (size_t begin = 0, batch = 256; begin < n && (out.train.size() < k || out.test.size() < k); batch *= 4) {
    const size_t end = std::min(n, begin + batch);
    std::unordered_map<size_t, size_t> at;  // position -> index
    for (size_t v = begin; v < end; ++v) at.emplace(v, v);
    std::mt19937_64 gen(seed);
    for (size_t i = n - 1; i > 0; --i) {
      const size_t j = static_cast<size_t>(UniformBelow(gen, static_cast<uint64_t>(i) + 1));
      if (i == j) continue;
      auto at_i = at.find(i), at_j = at.find(j);
      if (at_i != at.end() && at_j != at.end()) {
        std::swap(at_i->second, at_j->second);
      } else if (at_i != at.end()) {
        const size_t v = at_i->second;
        at.erase(at_i);
        at.emplace(j, v);
      } else if (at_j != at.end()) {
        const size_t v = at_j->second;
        at.erase(at_j);
        at.emplace(i, v);
      }
    }
    std::vector<std::pair<size_t, size_t>> final_positions;  // (index, position)
    for (const auto& [position, v] : at) final_positions.emplace_back(v, position);
    std::sort(final_positions.begin(), final_positions.end());
    for (const auto& [v, position] : final_positions) {
      std::vector<size_t>& side = position < n_test ? out.test : out.train;
      if (side.size() < k) side.push_back(v);
    }
    begin = end;
  }
  return out;
}

namespace {

// A string cut to at most kPreviewCellBytes (on a UTF-8 character boundary), ending with "…" when cut; containers
// with their strings cut.
json PreviewValue(const json& value) {
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (s.size() <= kPreviewCellBytes) return value;
    size_t cut = kPreviewCellBytes;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    return s.substr(0, cut) + "\xE2\x80\xA6";
  }
  if (value.is_array() || value.is_object()) {
    json out = value.is_array() ? json::array() : json::object();
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (value.is_array()) {
        out.push_back(PreviewValue(*it));
      } else {
        out[it.key()] = PreviewValue(*it);
      }
    }
    return out;
  }
  return value;
}

}  // namespace

std::optional<json> PreviewRow(const json& row) {
  json out = PreviewValue(row);
  if (out.dump(-1, ' ', false, json::error_handler_t::replace).size() > kMaxPreviewRowBytes) return std::nullopt;
  return out;
}

namespace {

// The preview rows of a file: those at `indices` (ascending) for each split, read up to the last one wanted.
absl::Status CollectPreview(const std::string& path, const DatasetFileSummary& summary,
                            const std::map<std::string, std::vector<size_t>>& indices, const DatasetReadLimits& limits,
                            std::map<std::string, std::vector<json>>* preview) {
  std::map<size_t, std::string> wanted;
  for (const auto& [split, list] : indices) {
    (*preview)[split];
    for (size_t i : list) wanted.emplace(i, split);
  }
  if (wanted.empty()) return absl::OkStatus();
  const size_t last = wanted.rbegin()->first;
  return ForEachDatasetRow(
      path, path, summary,
      [&](size_t index, json&& row) {
        auto it = wanted.find(index);
        if (it != wanted.end()) {
          if (std::optional<json> shown = PreviewRow(row)) (*preview)[it->second].push_back(std::move(*shown));
        }
        return index < last;
      },
      limits);
}

std::vector<size_t> FirstIndices(int64_t n) {
  std::vector<size_t> out;
  for (size_t i = 0; i < kDatasetPreviewRows && i < static_cast<size_t>(n); ++i) out.push_back(i);
  return out;
}

// Feature types of two files with the same columns: a column's kinds in both (int and float make float; null gives
// way to the other; any other difference is mixed).
std::vector<DatasetFeature> MergeFeatures(std::vector<DatasetFeature> train, const std::vector<DatasetFeature>& test) {
  for (DatasetFeature& f : train) {
    for (const DatasetFeature& t : test) {
      if (t.name != f.name) continue;
      f.null_count = f.null_count < 0 || t.null_count < 0 ? -1 : f.null_count + t.null_count;
      if (t.type == f.type || t.type == "null") continue;
      const bool numbers = (f.type == "int" || f.type == "float") && (t.type == "int" || t.type == "float");
      f.type = f.type == "null" ? t.type : numbers ? "float" : "mixed";
    }
  }
  return train;
}

}  // namespace

absl::StatusOr<LocalDatasetInfo> InspectLocalDataset(const std::string& train_path, const std::string& test_path,
                                                     double test_size, uint64_t seed,
                                                     const DatasetReadLimits& limits) {
  if (!(test_size > 0 && test_size <= 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat("local.test_size must be in (0, 0.5], got ",
                                                   FormatSplitSetting(test_size), "; 0.1 is a common choice"));
  }
  LocalDatasetInfo info;
  info.seed = seed;
  info.test_size = test_size;
  ASSIGN_OR_RETURN(info.format, DatasetFormatFromPath(train_path, "local.train_path"));
  ASSIGN_OR_RETURN(DatasetFileSummary train, SummarizeDatasetFile(train_path, info.format, train_path, limits));
  info.files.emplace_back(train_path, train.size, train.sha256);

  Sha256 fingerprint;
  fingerprint.Update(absl::StrCat("tuneforge.local_dataset.v1\nformat=", Av(DatasetFormatName(info.format)),
                                  "\ntrain=", train.sha256, "\n"));
  info.features = train.features;

  if (!test_path.empty()) {
    ASSIGN_OR_RETURN(DatasetFormat test_format, DatasetFormatFromPath(test_path, "local.test_path"));
    if (test_format != info.format) {
      return absl::InvalidArgumentError(absl::StrCat("local.test_path: '", test_path, "' is ",
                                                     Av(DatasetFormatName(test_format)), " but local.train_path is ",
                                                     Av(DatasetFormatName(info.format)), "; use one format for both files"));
    }
    ASSIGN_OR_RETURN(DatasetFileSummary test, SummarizeDatasetFile(test_path, test_format, test_path, limits));
    std::set<std::string> train_cols(train.columns.begin(), train.columns.end());
    std::set<std::string> test_cols(test.columns.begin(), test.columns.end());
    std::vector<std::string> missing, extra;
    for (const std::string& c : train.columns) {
      if (test_cols.count(c) == 0) missing.push_back(absl::StrCat("'", c, "'"));
    }
    for (const std::string& c : test.columns) {
      if (train_cols.count(c) == 0) extra.push_back(absl::StrCat("'", c, "'"));
    }
    if (!missing.empty() || !extra.empty()) {
      std::vector<std::string> parts;
      if (!missing.empty()) parts.push_back(absl::StrCat("missing ", absl::StrJoin(missing, ", ")));
      if (!extra.empty()) parts.push_back(absl::StrCat("extra ", absl::StrJoin(extra, ", ")));
      return absl::InvalidArgumentError(absl::StrCat("local.test_path: the columns of '", test_path,
                                                     "' differ from the train file's: ", absl::StrJoin(parts, "; "),
                                                     "; give both files the same columns"));
    }
    info.features = MergeFeatures(std::move(info.features), test.features);
    info.files.emplace_back(test_path, test.size, test.sha256);
    info.split_generated = false;
    info.splits.push_back({"train", train.num_rows, {train_path}});
    info.splits.push_back({"test", test.num_rows, {test_path}});
    RETURN_IF_ERROR(CollectPreview(train_path, train, {{"train", FirstIndices(train.num_rows)}}, limits, &info.preview));
    RETURN_IF_ERROR(CollectPreview(test_path, test, {{"test", FirstIndices(test.num_rows)}}, limits, &info.preview));
    fingerprint.Update(absl::StrCat("test=", test.sha256, "\nsplit_generated=0\n"));
  } else {
    if (train.num_rows < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          train_path, " has only ", train.num_rows,
          " row, too few to split off a test split; add rows or give local.test_path"));
    }
    const size_t n = static_cast<size_t>(train.num_rows);
    const size_t n_test = TestSplitSize(n, test_size);
    const SplitIndices first = FirstSplitIndices(n, test_size, seed, kDatasetPreviewRows);
    info.split_generated = true;
    info.splits.push_back({"train", static_cast<int64_t>(n - n_test), {train_path}});
    info.splits.push_back({"test", static_cast<int64_t>(n_test), {train_path}});
    RETURN_IF_ERROR(
        CollectPreview(train_path, train, {{"train", first.train}, {"test", first.test}}, limits, &info.preview));
    fingerprint.Update(absl::StrCat("split_generated=1\nseed=", seed, "\ntest_size=", FormatSplitSetting(test_size),
                                    "\n"));
  }
  info.fingerprint = fingerprint.HexDigest();
  return info;
}

}  // namespace tuneforge
