// Prompt template parsing and rendering.
#include "common/prompt_template.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace tuneforge {

namespace {

// Python's str() of a JSON scalar that is not a string.
std::string ScalarText(const nlohmann::json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_number_integer()) return v.dump();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e16) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.1f", d);  // 2.0 as Python writes it
      return buf;
    }
    return v.dump();  // shortest round-trip form
  }
  return v.dump();  // lists and objects
}

}  // namespace

absl::StatusOr<PromptTemplate> PromptTemplate::Parse(std::string_view text, std::string_view field_name) {
  const std::string field(field_name);  // absl::StrCat here does not take std::string_view
  PromptTemplate out;
  out.field_ = field;
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) out.pieces_.push_back(Piece{false, std::move(literal)});
    literal.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        literal.push_back('}');
        ++i;
        continue;
      }
      return absl::InvalidArgumentError(absl::StrCat(field, ": unbalanced '}' at byte offset ", i,
                                                     " has no matching '{'; write '}}' for a literal brace"));
    }
    if (c != '{') {
      literal.push_back(c);
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      literal.push_back('{');
      ++i;
      continue;
    }
    const size_t close = text.find_first_of("{}", i + 1);
    if (close == std::string_view::npos || text[close] == '{') {
      return absl::InvalidArgumentError(absl::StrCat(field, ": unbalanced '{' at byte offset ", i,
                                                     " is not closed by '}'; write {column} for a slot or '{{' for a "
                                                     "literal brace"));
    }
    if (close == i + 1) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": empty slot '{}' at byte offset ", i,
                                                     "; put a column name between the braces, or write '{{}}' for "
                                                     "literal braces"));
    }
    flush();
    std::string name(text.substr(i + 1, close - i - 1));
    if (std::find(out.slots_.begin(), out.slots_.end(), name) == out.slots_.end()) out.slots_.push_back(name);
    out.pieces_.push_back(Piece{true, std::move(name)});
    i = close;
  }
  flush();
  return out;
}

absl::StatusOr<std::string> PromptTemplate::Render(const nlohmann::json& row, std::string_view row_label) const {
  const std::string label(row_label);
  if (!row.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, " is not a JSON object, so ", field_, " cannot fill its slots; fix or remove that row"));
  }
  std::string out;
  for (const Piece& p : pieces_) {
    if (!p.slot) {
      out += p.text;
      continue;
    }
    auto it = row.find(p.text);
    if (it == row.end() || it->is_null()) {
      return absl::InvalidArgumentError(absl::StrCat(
          label, (it == row.end() ? " has no column '" : " has a null value in column '"), p.text, "', which ",
          field_, " uses as {", p.text, "}; fill that value in the dataset or remove the row, or change the prompt"));
    }
    if (it->is_string()) {
      out += it->get_ref<const std::string&>();
    } else {
      out += ScalarText(*it);
    }
  }
  return out;
}

}  // namespace tuneforge
