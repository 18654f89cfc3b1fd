// Local dataset files: one read that hashes and buffers the file, UTF-8 validation, a SAX parser for json/jsonl
// that keeps the file's column order, an RFC 4180 csv reader, feature inference and the seeded split.
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
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace tuneforge {
namespace {

using json = nlohmann::json;

// Our abseil's string_view is its own type, not std::string_view; StrCat needs it.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// ---------------------------------------------------------------------------------------------------------------
// Reading

struct RawFile {
  std::string bytes;
  std::string sha256;
};

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

absl::StatusOr<RawFile> ReadWholeFile(const std::string& path, absl::string_view label, int64_t max_bytes) {
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
  FdCloser closer(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, " cannot be examined: ", std::strerror(errno)));
  }
  if (S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " is a directory; give the path of a .jsonl, .json or .csv file"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " is not a regular file; give the path of a .jsonl, .json or .csv file"));
  }
  if (st.st_size > max_bytes) return absl::ResourceExhaustedError(TooLargeMessage(label, st.st_size, max_bytes));

  RawFile raw;
  Sha256 hash;
  // Read straight into a buffer of the stat()ed size (no regrowth copies of a multi-GiB string), then keep
  // reading in case the file grew meanwhile.
  raw.bytes.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  constexpr size_t kChunk = size_t{1} << 20;
  std::string tail;
  for (;;) {
    const bool in_place = got < raw.bytes.size();
    if (!in_place) tail.resize(kChunk);
    char* dst = in_place ? raw.bytes.data() + got : tail.data();
    size_t want = in_place ? std::min(kChunk, raw.bytes.size() - got) : kChunk;
    ssize_t n = ::read(fd, dst, want);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      return absl::DataLossError(absl::StrCat(where, ": read error: ", std::strerror(err)));
    }
    if (n == 0) break;
    hash.Update(std::string_view(dst, static_cast<size_t>(n)));
    if (in_place) {
      got += static_cast<size_t>(n);
    } else {
      raw.bytes.append(tail.data(), static_cast<size_t>(n));
      got = raw.bytes.size();
      if (static_cast<int64_t>(got) > max_bytes) {
        return absl::ResourceExhaustedError(TooLargeMessage(label, static_cast<int64_t>(got), max_bytes));
      }
    }
  }
  raw.bytes.resize(got);  // the file may also have shrunk
  raw.sha256 = hash.HexDigest();
  return raw;
}

// ---------------------------------------------------------------------------------------------------------------
// Positions and UTF-8

int LineAt(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

size_t ColumnAt(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t nl = offset == 0 ? std::string_view::npos : text.rfind('\n', offset - 1);
  return nl == std::string_view::npos ? offset + 1 : offset - nl;
}

// Offset of the first byte that does not start or continue a well-formed UTF-8 sequence (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or npos.
size_t FirstInvalidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + 1 >= n || s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (i + k >= n || (s[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

absl::Status CheckUtf8(std::string_view text, absl::string_view label, size_t base_offset) {
  size_t bad = FirstInvalidUtf8(text);
  if (bad == std::string_view::npos) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s:%d: not valid UTF-8 (byte 0x%02X at byte offset %d); save the file as UTF-8", label, LineAt(text, bad),
      static_cast<unsigned char>(text[bad]), bad + base_offset));
}

std::string_view StripBom(std::string_view text) {
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  return text;
}

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

// ---------------------------------------------------------------------------------------------------------------
// JSON via SAX: builds the DOM like nlohmann's own parser, but limits nesting and records the order in which row
// keys first appear (a nlohmann::json object forgets it).

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

class RowSaxBuilder {
 public:
  // jsonl: the root is the row. json: rows are the elements of a root array, or of an array under a root key.
  explicit RowSaxBuilder(bool root_is_row) : root_is_row_(root_is_row) {}

  bool null() { return Put(json(nullptr)); }
  bool boolean(bool v) { return Put(json(v)); }
  bool number_integer(json::number_integer_t v) { return Put(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return Put(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return Put(json(v)); }
  bool string(json::string_t& v) { return Put(json(std::move(v))); }
  bool binary(json::binary_t& v) { return Put(json::binary(std::move(v))); }
  bool start_object(std::size_t) { return Open(json::object()); }
  bool start_array(std::size_t) { return Open(json::array()); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }
  bool key(json::string_t& k) {
    const size_t depth = stack_.size();
    if (root_is_row_) {
      if (depth == 1) root_keys_.Add(k);
    } else if (depth == 1) {
      top_key_ = k;
    } else if (depth == 2 && stack_[0]->is_array()) {
      root_keys_.Add(k);
    } else if (depth == 3 && stack_[0]->is_object() && stack_[1]->is_array()) {
      keys_by_top_key_[top_key_].Add(k);
    }
    pending_ = &(*stack_.back())[k];
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) {
    error_position_ = position;
    error_ = JsonErrorDetail(ex.what());
    return false;
  }

  json& root() { return root_; }
  bool too_deep() const { return too_deep_; }
  size_t error_position() const { return error_position_; }
  const std::string& error() const { return error_; }
  // Column order for rows of the root array (json), or of the root object (jsonl).
  std::vector<std::string> TakeRootKeys() { return root_keys_.Take(); }
  // Column order for rows of the array under root key `key` (json wrapper objects).
  std::vector<std::string> TakeKeysUnder(const std::string& key) { return keys_by_top_key_[key].Take(); }

 private:
  json* Place(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json* top = stack_.back();
    if (top->is_array()) {
      top->push_back(std::move(v));
      return &top->back();
    }
    *pending_ = std::move(v);
    return pending_;
  }
  bool Put(json&& v) {
    Place(std::move(v));
    return true;
  }
  bool Open(json&& v) {
    if (stack_.size() >= static_cast<size_t>(kMaxJsonNestingDepth)) {
      too_deep_ = true;
      return false;
    }
    stack_.push_back(Place(std::move(v)));
    return true;
  }
  bool Close() {
    stack_.pop_back();
    return true;
  }

  const bool root_is_row_;
  json root_;
  std::vector<json*> stack_;  // open containers; pointers stay valid because only the last child of each is open
  json* pending_ = nullptr;   // slot of the key just read
  std::string top_key_;
  KeyOrder root_keys_;
  std::unordered_map<std::string, KeyOrder> keys_by_top_key_;
  bool too_deep_ = false;
  size_t error_position_ = 0;
  std::string error_;
};

absl::Status ParseJsonl(std::string_view text, absl::string_view label, DatasetFileContent* out) {
  KeyOrder columns;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    ++line_no;
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string_view::npos ? text.size() : nl;
    std::string_view line = text.substr(pos, end - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;

    RowSaxBuilder sax(/*root_is_row=*/true);
    bool ok = false;
    try {
      ok = json::sax_parse(line.data(), line.data() + line.size(), &sax);
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ":", line_no, ": not valid JSON: ", JsonErrorDetail(e.what())));
    }
    if (sax.too_deep()) {
      return absl::InvalidArgumentError(absl::StrCat(label, ":", line_no, ": JSON nested deeper than ",
                                                     kMaxJsonNestingDepth, " levels; flatten the row"));
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(label, ":", line_no, ":", std::max<size_t>(sax.error_position(), 1),
                                                     ": not valid JSON: ", sax.error(),
                                                     "; each line must hold one JSON object"));
    }
    if (!sax.root().is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(label, ":", line_no, ": expected a JSON object, got ",
                                                     JsonTypeName(sax.root()),
                                                     "; each line must hold one object such as {\"text\": \"...\"}"));
    }
    for (const std::string& k : sax.TakeRootKeys()) columns.Add(k);
    out->rows.push_back(std::move(sax.root()));
  }
  out->columns = columns.Take();
  return absl::OkStatus();
}

bool IsArrayOfObjects(const json& v) {
  return v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_object(); });
}

absl::Status ParseJsonDocument(std::string_view text, size_t base_offset, absl::string_view label,
                               DatasetFileContent* out) {
  RowSaxBuilder sax(/*root_is_row=*/false);
  bool ok = false;
  try {
    ok = json::sax_parse(text.data(), text.data() + text.size(), &sax);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": not valid JSON: ", JsonErrorDetail(e.what())));
  }
  if (sax.too_deep()) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": JSON nested deeper than ", kMaxJsonNestingDepth, " levels; flatten the rows"));
  }
  if (!ok) {
    // nlohmann counts the position from 1 (it is the number of bytes read, the bad one included).
    size_t at = sax.error_position() > 0 ? sax.error_position() - 1 : 0;
    return absl::InvalidArgumentError(absl::StrCat(label, ":", LineAt(text, at), ":", ColumnAt(text, at),
                                                   ": not valid JSON (byte offset ", at + base_offset,
                                                   "): ", sax.error()));
  }
  json& root = sax.root();
  const std::string expected =
      "; a .json dataset must be an array of objects ([{...}, {...}]) or an object with one such array "
      "(as {\"data\": [{...}]}); for one object per line use .jsonl";
  if (root.is_array()) {
    for (size_t i = 0; i < root.size(); ++i) {
      if (!root[i].is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": element ", i, " (0-based) of the top-level array is ",
                                                       JsonTypeName(root[i]), ", expected an object", expected));
      }
    }
    out->rows = std::move(root.get_ref<json::array_t&>());
    out->columns = sax.TakeRootKeys();
    return absl::OkStatus();
  }
  if (root.is_object()) {
    std::vector<std::string> candidates;
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (IsArrayOfObjects(it.value())) candidates.push_back(it.key());
    }
    if (candidates.size() == 1) {
      out->rows = std::move(root[candidates[0]].get_ref<json::array_t&>());
      out->columns = sax.TakeKeysUnder(candidates[0]);
      return absl::OkStatus();
    }
    if (candidates.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": the top-level object has no array-of-objects value", expected));
    }
    return absl::InvalidArgumentError(absl::StrCat(label, ": the top-level object has several arrays of objects ('",
                                                   absl::StrJoin(candidates, "', '"),
                                                   "') and it is unclear which holds the rows", expected));
  }
  return absl::InvalidArgumentError(absl::StrCat(label, ": the top-level value is ", JsonTypeName(root), expected));
}

// ---------------------------------------------------------------------------------------------------------------
// CSV

struct CsvRecord {
  std::vector<std::string> fields;
  int line = 0;  // where the record starts
};

absl::Status ReadCsvRecords(std::string_view text, absl::string_view label, std::vector<CsvRecord>* records) {
  const size_t n = text.size();
  size_t i = 0;
  int line = 1;
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

absl::Status ParseCsv(std::string_view text, absl::string_view label, DatasetFileContent* out) {
  std::vector<CsvRecord> records;
  RETURN_IF_ERROR(ReadCsvRecords(text, label, &records));
  if (records.empty()) return absl::InvalidArgumentError(absl::StrCat(label, " has no rows"));

  const CsvRecord& header = records[0];
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
  const size_t width = names.size();
  for (size_t r = 1; r < records.size(); ++r) {
    if (records[r].fields.size() != width) {
      return absl::InvalidArgumentError(absl::StrCat(
          label, ":", records[r].line, ": row has ", records[r].fields.size(), " fields but the header has ", width,
          "; quote values that contain commas or line breaks (\"a, b\")"));
    }
  }

  std::vector<CsvColumnType> types(width);
  for (size_t c = 0; c < width; ++c) {
    bool all_int = true, all_number = true, all_bool = true;
    for (size_t r = 1; r < records.size() && (all_number || all_bool); ++r) {
      const std::string& v = records[r].fields[c];
      if (v.empty()) continue;
      int64_t i;
      double d;
      bool b;
      if (all_int && !ParseCsvInt(v, &i)) all_int = false;
      if (all_number && !all_int && !ParseCsvFloat(v, &d)) all_number = false;
      if (all_bool && !ParseCsvBool(v, &b)) all_bool = false;
    }
    types[c] = all_int ? CsvColumnType::kInt
               : all_number ? CsvColumnType::kFloat
               : all_bool   ? CsvColumnType::kBool
                            : CsvColumnType::kString;
  }

  out->rows.reserve(records.size() - 1);
  for (size_t r = 1; r < records.size(); ++r) {
    json row = json::object();
    for (size_t c = 0; c < width; ++c) {
      std::string& v = records[r].fields[c];
      json& cell = row[names[c]];
      if (v.empty()) continue;  // stays null
      switch (types[c]) {
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
    out->rows.push_back(std::move(row));
    records[r].fields.clear();
    records[r].fields.shrink_to_fit();
  }
  out->columns = std::move(names);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------------------------
// Features

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

}  // namespace

// -----------------------------------------------------------------------------------------------------------------

std::string_view DatasetFormatName(DatasetFormat f) {
  switch (f) {
    case DatasetFormat::kJsonl: return "jsonl";
    case DatasetFormat::kJson: return "json";
    case DatasetFormat::kCsv: return "csv";
  }
  return "unknown";
}

absl::StatusOr<DatasetFormat> DatasetFormatFromPath(std::string_view path_in, std::string_view field_in) {
  const absl::string_view path = Av(path_in), field = Av(field_in);
  constexpr absl::string_view kSupported = "supported formats: .jsonl (or .ndjson), .json, .csv";
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
    return absl::UnimplementedError(absl::StrCat(
        field, ": '", path,
        "': parquet is not supported yet; convert the file to jsonl (e.g. "
        "pandas.read_parquet(...).to_json(lines=True, orient='records'))"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": '", path, "' has extension '.", name.substr(dot + 1), "'; ", kSupported));
}

absl::StatusOr<DatasetFileContent> LoadDatasetFile(const std::string& path, DatasetFormat format,
                                                   std::string_view label_in, int64_t max_bytes) {
  const absl::string_view label = Av(label_in);
  ASSIGN_OR_RETURN(RawFile raw, ReadWholeFile(path, label, max_bytes));
  DatasetFileContent content;
  content.size = static_cast<int64_t>(raw.bytes.size());
  content.sha256 = std::move(raw.sha256);

  std::string_view text = StripBom(raw.bytes);
  const size_t bom = raw.bytes.size() - text.size();
  RETURN_IF_ERROR(CheckUtf8(text, label, bom));
  switch (format) {
    case DatasetFormat::kJsonl:
      RETURN_IF_ERROR(ParseJsonl(text, label, &content));
      break;
    case DatasetFormat::kJson:
      if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat(label, " has no rows"));
      }
      RETURN_IF_ERROR(ParseJsonDocument(text, bom, label, &content));
      break;
    case DatasetFormat::kCsv:
      RETURN_IF_ERROR(ParseCsv(text, label, &content));
      break;
  }
  if (content.rows.empty()) return absl::InvalidArgumentError(absl::StrCat(label, " has no rows"));
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
  const double wanted = std::ceil(static_cast<double>(n) * test_size);
  size_t n_test = 1;
  if (wanted >= static_cast<double>(n - 1)) {
    n_test = n - 1;
  } else if (wanted > 1) {
    n_test = static_cast<size_t>(wanted);
  }
  out.test.assign(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(n_test));
  out.train.assign(perm.begin() + static_cast<std::ptrdiff_t>(n_test), perm.end());
  std::sort(out.test.begin(), out.test.end());
  std::sort(out.train.begin(), out.train.end());
  return out;
}

absl::StatusOr<LocalDatasetInfo> InspectLocalDataset(const std::string& train_path, const std::string& test_path,
                                                     double test_size, uint64_t seed) {
  if (!(test_size > 0 && test_size <= 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat("local.test_size must be in (0, 0.5], got ",
                                                   FormatSplitSetting(test_size), "; 0.1 is a common choice"));
  }
  LocalDatasetInfo info;
  info.seed = seed;
  info.test_size = test_size;
  ASSIGN_OR_RETURN(info.format, DatasetFormatFromPath(train_path, "local.train_path"));
  ASSIGN_OR_RETURN(DatasetFileContent train, LoadDatasetFile(train_path, info.format, train_path));
  info.files.emplace_back(train_path, train.size, train.sha256);

  Sha256 fingerprint;
  fingerprint.Update(absl::StrCat("tuneforge.local_dataset.v1\nformat=", Av(DatasetFormatName(info.format)),
                                  "\ntrain=", train.sha256, "\n"));
  FeatureAccumulator features;
  for (const json& row : train.rows) features.Add(row);

  auto preview_of = [](const std::vector<json>& rows, const std::vector<size_t>* indices) {
    std::vector<json> out;
    size_t count = indices == nullptr ? rows.size() : indices->size();
    for (size_t k = 0; k < count && k < kDatasetPreviewRows; ++k) out.push_back(rows[indices ? (*indices)[k] : k]);
    return out;
  };

  if (!test_path.empty()) {
    ASSIGN_OR_RETURN(DatasetFormat test_format, DatasetFormatFromPath(test_path, "local.test_path"));
    if (test_format != info.format) {
      return absl::InvalidArgumentError(absl::StrCat("local.test_path: '", test_path, "' is ",
                                                     Av(DatasetFormatName(test_format)), " but local.train_path is ",
                                                     Av(DatasetFormatName(info.format)), "; use one format for both files"));
    }
    ASSIGN_OR_RETURN(DatasetFileContent test, LoadDatasetFile(test_path, test_format, test_path));
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
    for (const json& row : test.rows) features.Add(row);
    info.files.emplace_back(test_path, test.size, test.sha256);
    info.split_generated = false;
    info.splits.push_back({"train", static_cast<int64_t>(train.rows.size()), {train_path}});
    info.splits.push_back({"test", static_cast<int64_t>(test.rows.size()), {test_path}});
    info.preview["train"] = preview_of(train.rows, nullptr);
    info.preview["test"] = preview_of(test.rows, nullptr);
    fingerprint.Update(absl::StrCat("test=", test.sha256, "\nsplit_generated=0\n"));
  } else {
    if (train.rows.size() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          train_path, " has only ", train.rows.size(),
          " row, too few to split off a test split; add rows or give local.test_path"));
    }
    SplitIndices split = TrainTestSplit(train.rows.size(), test_size, seed);
    info.split_generated = true;
    info.splits.push_back({"train", static_cast<int64_t>(split.train.size()), {train_path}});
    info.splits.push_back({"test", static_cast<int64_t>(split.test.size()), {train_path}});
    info.preview["train"] = preview_of(train.rows, &split.train);
    info.preview["test"] = preview_of(train.rows, &split.test);
    fingerprint.Update(absl::StrCat("split_generated=1\nseed=", seed, "\ntest_size=", FormatSplitSetting(test_size),
                                    "\n"));
  }
  info.features = features.Result(train.columns);
  info.fingerprint = fingerprint.HexDigest();
  return info;
}

}  // namespace tuneforge
