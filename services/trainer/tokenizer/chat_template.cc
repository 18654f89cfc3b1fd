// Jinja-subset lexer, parser and interpreter for Hugging Face chat templates (see chat_template.h).
// Internally errors travel as a private exception type that never leaves this file's public functions.
#include "services/trainer/tokenizer/chat_template.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/trainer/tokenizer/utf8.h"

namespace tuneforge {
namespace jinja {

using Json = nlohmann::ordered_json;

struct TemplateError {
  std::string message;
};

[[noreturn]] void Fail(std::string msg) { throw TemplateError{std::move(msg)}; }

// ---------------------------------------------------------------- values
struct Value {
  enum Kind { kUndefined, kJson, kNamespace, kFunction };
  Kind kind = kUndefined;
  Json j;
  std::shared_ptr<Json> ns;  // kNamespace: shared, mutable attributes
  std::string fn;            // kFunction: global name
  static Value Of(Json v) {
    Value r;
    r.kind = kJson;
    r.j = std::move(v);
    return r;
  }
};

bool Truthy(const Value& v) {
  if (v.kind == Value::kUndefined) return false;
  if (v.kind != Value::kJson) return true;
  const Json& j = v.j;
  if (j.is_null()) return false;
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_integer() || j.is_number_unsigned()) return j.get<int64_t>() != 0;
  if (j.is_number_float()) return j.get<double>() != 0.0;
  if (j.is_string()) return !j.get_ref<const std::string&>().empty();
  return !j.empty();
}

std::string PyFloat(double d) {
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s = buf;
  if (s.find_first_of(".einn") == std::string::npos) s += ".0";
  return s;
}

// Python json.dumps(x, ensure_ascii=False) with default separators.
// json.dumps(j, ensure_ascii=False, indent=indent) as transformers' tojson filter writes it; indent < 0 is None
// (one line, ", " and ": " separators), otherwise one item per line indented by `indent` spaces per level.
void DumpPyJson(const Json& j, std::string* out, int indent = -1, int depth = 0) {
  auto next_line = [&](int level) {
    if (indent < 0) return;
    *out += "\n";
    out->append(static_cast<size_t>(indent) * level, ' ');
  };
  if (j.is_object() && !j.empty()) {
    *out += "{";
    bool first = true;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!first) *out += indent < 0 ? ", " : ",";
      first = false;
      next_line(depth + 1);
      *out += Json(it.key()).dump(-1, ' ', false, Json::error_handler_t::replace);
      *out += ": ";
      DumpPyJson(it.value(), out, indent, depth + 1);
    }
    next_line(depth);
    *out += "}";
  } else if (j.is_array() && !j.empty()) {
    *out += "[";
    for (size_t i = 0; i < j.size(); ++i) {
      if (i) *out += indent < 0 ? ", " : ",";
      next_line(depth + 1);
      DumpPyJson(j[i], out, indent, depth + 1);
    }
    next_line(depth);
    *out += "]";
  } else if (j.is_number_float()) {
    *out += PyFloat(j.get<double>());
  } else {
    *out += j.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
}

// Python repr-like rendering for non-string output.
void PyRepr(const Json& j, std::string* out, bool top) {
  if (j.is_string()) {
    if (top) {
      *out += j.get_ref<const std::string&>();
    } else {
      *out += "'" + j.get<std::string>() + "'";
    }
  } else if (j.is_null()) {
    *out += "None";
  } else if (j.is_boolean()) {
    *out += j.get<bool>() ? "True" : "False";
  } else if (j.is_number_float()) {
    *out += PyFloat(j.get<double>());
  } else if (j.is_number()) {
    *out += j.dump();
  } else if (j.is_array()) {
    *out += "[";
    for (size_t i = 0; i < j.size(); ++i) {
      if (i) *out += ", ";
      PyRepr(j[i], out, false);
    }
    *out += "]";
  } else {
    *out += "{";
    bool first = true;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!first) *out += ", ";
      first = false;
      *out += "'" + it.key() + "': ";
      PyRepr(it.value(), out, false);
    }
    *out += "}";
  }
}

std::string ToStr(const Value& v) {
  if (v.kind == Value::kUndefined) return "";
  if (v.kind == Value::kNamespace) return "<Namespace>";
  if (v.kind == Value::kFunction) return "<function " + v.fn + ">";
  std::string s;
  PyRepr(v.j, &s, true);
  return s;
}

const char* TypeName(const Value& v) {
  if (v.kind == Value::kUndefined) return "undefined";
  if (v.kind == Value::kNamespace) return "namespace";
  if (v.kind == Value::kFunction) return "function";
  return v.j.type_name();
}

// ---------------------------------------------------------------- lexer
struct Token {
  enum Type { kName, kString, kInt, kFloat, kOp, kEnd };
  Type type;
  std::string text;
  size_t pos;
};

struct Source {
  std::string_view text;
  std::string Where(size_t pos) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return absl::StrCat("line ", line, " column ", col);
  }
};

std::vector<Token> LexExpr(const Source& src, size_t begin, size_t end) {
  std::vector<Token> out;
  std::string_view s = src.text;
  size_t i = begin;
  while (i < end) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
      continue;
    }
    size_t start = i;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (i < end && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
      out.push_back({Token::kName, std::string(s.substr(start, i - start)), start});
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      bool is_float = false;
      while (i < end && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) {
        if (s[i] == '.') {
          if (i + 1 >= end || !std::isdigit(static_cast<unsigned char>(s[i + 1]))) break;
          is_float = true;
        }
        ++i;
      }
      out.push_back({is_float ? Token::kFloat : Token::kInt, std::string(s.substr(start, i - start)), start});
    } else if (c == '\'' || c == '"') {
      std::string val;
      ++i;
      while (i < end && s[i] != c) {
        if (s[i] == '\\' && i + 1 < end) {
          char e = s[i + 1];
          switch (e) {
            case 'n': val += '\n'; break;
            case 't': val += '\t'; break;
            case 'r': val += '\r'; break;
            case '\\': val += '\\'; break;
            case '\'': val += '\''; break;
            case '"': val += '"'; break;
            default: val += '\\'; val += e; break;
          }
          i += 2;
        } else {
          val += s[i++];
        }
      }
      if (i >= end) Fail("unterminated string literal at " + src.Where(start));
      ++i;
      out.push_back({Token::kString, val, start});
    } else {
      static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "(", ")",
                                   "[", "]", "{", "}", ",", ".", ":", "|", "=", "<", ">"};
      bool found = false;
      for (const char* op : kOps) {
        size_t n = std::strlen(op);
        if (s.substr(i, n) == op && i + n <= end) {
          out.push_back({Token::kOp, op, i});
          i += n;
          found = true;
          break;
        }
      }
      if (!found) Fail(absl::StrCat("unexpected character '", std::string(1, c), "' at ", src.Where(i)));
    }
  }
  out.push_back({Token::kEnd, "", end});
  return out;
}

// ---------------------------------------------------------------- AST
struct Expr {
  enum Kind { kLiteral, kName, kList, kDict, kAttr, kIndex, kSlice, kCall, kFilter, kTest, kUnary, kBinary, kCond };
  Kind kind;
  size_t pos = 0;
  Json literal;
  std::string name;  // name / attr / filter / test / operator
  std::vector<std::unique_ptr<Expr>> args;  // operands / call args / list items / dict k,v pairs
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
  bool negate = false;  // `is not`
};
using ExprPtr = std::unique_ptr<Expr>;

struct Node {
  enum Kind { kText, kOutput, kIf, kFor, kSet, kBlock, kBreak, kContinue };
  Kind kind = kBlock;
  size_t pos = 0;
  std::string text;
  ExprPtr expr;                                 // output / set value / for iterable
  std::vector<std::pair<ExprPtr, std::unique_ptr<Node>>> branches;  // if: (cond or null for else, body)
  std::vector<std::string> targets;             // for / set: names; set ns.attr: {ns, attr}
  bool set_attr = false;
  ExprPtr filter_cond;                          // for ... if cond
  std::unique_ptr<Node> body, else_body;
  std::vector<std::unique_ptr<Node>> children;  // block
};

class ExprParser {
 public:
  ExprParser(const Source& src, std::vector<Token> toks) : src_(src), t_(std::move(toks)) {}
  const Token& Peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  bool IsOp(const char* op, size_t k = 0) const { return Peek(k).type == Token::kOp && Peek(k).text == op; }
  bool IsName(const char* n, size_t k = 0) const { return Peek(k).type == Token::kName && Peek(k).text == n; }
  const Token& Next() { return t_[std::min(i_++, t_.size() - 1)]; }
  bool AtEnd() const { return Peek().type == Token::kEnd; }
  void Expect(const char* op) {
    if (!IsOp(op)) Fail(absl::StrCat("expected '", op, "' at ", src_.Where(Peek().pos), " but found '", Peek().text, "'"));
    ++i_;
  }
  std::string ExpectName() {
    if (Peek().type != Token::kName) Fail("expected a name at " + src_.Where(Peek().pos));
    return Next().text;
  }
  void ExpectEnd() {
    if (!AtEnd()) Fail(absl::StrCat("unexpected '", Peek().text, "' at ", src_.Where(Peek().pos)));
  }

  ExprPtr Make(Expr::Kind k, size_t pos) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->pos = pos;
    return e;
  }
  ExprPtr Bin(const std::string& op, ExprPtr a, ExprPtr b, size_t pos) {
    auto e = Make(Expr::kBinary, pos);
    e->name = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  // Full expression including inline if/else.
  ExprPtr Parse() {
    ExprPtr e = ParseOr();
    if (IsName("if")) {
      size_t pos = Next().pos;
      ExprPtr cond = ParseOr();
      ExprPtr other;
      if (IsName("else")) {
        Next();
        other = Parse();
      }
      auto c = Make(Expr::kCond, pos);
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(e));
      c->args.push_back(other ? std::move(other) : nullptr);
      return c;
    }
    return e;
  }
  // Expression that stops before a trailing `if` (for-loop filters).
  ExprPtr ParseNoCond() { return ParseOr(); }

 private:
  ExprPtr ParseOr() {
    ExprPtr e = ParseAnd();
    while (IsName("or")) {
      size_t pos = Next().pos;
      e = Bin("or", std::move(e), ParseAnd(), pos);
    }
    return e;
  }
  ExprPtr ParseAnd() {
    ExprPtr e = ParseNot();
    while (IsName("and")) {
      size_t pos = Next().pos;
      e = Bin("and", std::move(e), ParseNot(), pos);
    }
    return e;
  }
  ExprPtr ParseNot() {
    if (IsName("not")) {
      size_t pos = Next().pos;
      auto e = Make(Expr::kUnary, pos);
      e->name = "not";
      e->args.push_back(ParseNot());
      return e;
    }
    return ParseCompare();
  }
  ExprPtr ParseCompare() {
    ExprPtr e = ParseAdd();
    while (true) {
      size_t pos = Peek().pos;
      if (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp(">") || IsOp("<=") || IsOp(">=")) {
        std::string op = Next().text;
        e = Bin(op, std::move(e), ParseAdd(), pos);
      } else if (IsName("in")) {
        Next();
        e = Bin("in", std::move(e), ParseAdd(), pos);
      } else if (IsName("not") && IsName("in", 1)) {
        Next();
        Next();
        e = Bin("notin", std::move(e), ParseAdd(), pos);
      } else {
        return e;
      }
    }
  }
  ExprPtr ParseAdd() {
    ExprPtr e = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      size_t pos = Peek().pos;
      std::string op = Next().text;
      e = Bin(op, std::move(e), ParseConcat(), pos);
    }
    return e;
  }
  ExprPtr ParseConcat() {
    ExprPtr e = ParseMul();
    while (IsOp("~")) {
      size_t pos = Next().pos;
      e = Bin("~", std::move(e), ParseMul(), pos);
    }
    return e;
  }
  ExprPtr ParseMul() {
    ExprPtr e = ParseUnary();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      size_t pos = Peek().pos;
      std::string op = Next().text;
      e = Bin(op, std::move(e), ParseUnary(), pos);
    }
    return e;
  }
  ExprPtr ParseUnary() {
    if (IsOp("-") || IsOp("+")) {
      size_t pos = Peek().pos;
      std::string op = Next().text;
      auto e = Make(Expr::kUnary, pos);
      e->name = op;
      e->args.push_back(ParseUnary());
      return e;
    }
    return ParseFilters(ParsePostfix(ParsePrimary()));
  }
  void ParseCallArgs(Expr* e) {
    Expect("(");
    while (!IsOp(")")) {
      if (Peek().type == Token::kName && IsOp("=", 1)) {
        std::string k = Next().text;
        Next();
        e->kwargs.emplace_back(k, Parse());
      } else {
        e->args.push_back(Parse());
      }
      if (!IsOp(")")) Expect(",");
    }
    Expect(")");
  }
  ExprPtr ParseFilters(ExprPtr e) {
    while (true) {
      if (IsOp("|")) {
        size_t pos = Next().pos;
        auto f = Make(Expr::kFilter, pos);
        f->name = ExpectName();
        f->args.push_back(std::move(e));
        if (IsOp("(")) ParseCallArgs(f.get());
        e = std::move(f);
      } else if (IsName("is")) {
        size_t pos = Next().pos;
        auto t = Make(Expr::kTest, pos);
        if (IsName("not")) {
          Next();
          t->negate = true;
        }
        t->name = ExpectName();
        t->args.push_back(std::move(e));
        if (IsOp("(")) {
          ParseCallArgs(t.get());
        } else if (Peek().type == Token::kString || Peek().type == Token::kInt || Peek().type == Token::kFloat) {
          t->args.push_back(ParsePrimary());
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }
  ExprPtr ParsePostfix(ExprPtr e) {
    while (true) {
      if (IsOp(".")) {
        size_t pos = Next().pos;
        auto a = Make(Expr::kAttr, pos);
        a->name = ExpectName();
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (IsOp("[")) {
        size_t pos = Next().pos;
        ExprPtr parts[3];
        int colons = 0;
        for (;;) {
          if (IsOp("]")) break;
          if (IsOp(":")) {
            Next();
            if (++colons > 2) Fail("too many ':' in a slice at " + src_.Where(pos));
            continue;
          }
          parts[colons] = Parse();
        }
        Expect("]");
        if (colons == 0) {
          if (!parts[0]) Fail("empty subscript at " + src_.Where(pos));
          e = Bin("[]", std::move(e), std::move(parts[0]), pos);
          e->kind = Expr::kIndex;
        } else {
          auto s = Make(Expr::kSlice, pos);
          s->args.push_back(std::move(e));
          for (auto& p : parts) s->args.push_back(std::move(p));
          e = std::move(s);
        }
      } else if (IsOp("(")) {
        auto c = Make(Expr::kCall, Peek().pos);
        c->args.push_back(std::move(e));
        ParseCallArgs(c.get());
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  ExprPtr ParsePrimary() {
    const Token& t = Next();
    switch (t.type) {
      case Token::kString: {
        auto e = Make(Expr::kLiteral, t.pos);
        std::string s = t.text;
        while (Peek().type == Token::kString) s += Next().text;  // adjacent literals concatenate
        e->literal = s;
        return e;
      }
      case Token::kInt: {
        auto e = Make(Expr::kLiteral, t.pos);
        e->literal = std::stoll(t.text);
        return e;
      }
      case Token::kFloat: {
        auto e = Make(Expr::kLiteral, t.pos);
        e->literal = std::stod(t.text);
        return e;
      }
      case Token::kName: {
        auto e = Make(Expr::kLiteral, t.pos);
        if (t.text == "true" || t.text == "True") e->literal = true;
        else if (t.text == "false" || t.text == "False") e->literal = false;
        else if (t.text == "none" || t.text == "None") e->literal = nullptr;
        else {
          e->kind = Expr::kName;
          e->name = t.text;
        }
        return e;
      }
      case Token::kOp:
        if (t.text == "(") {
          ExprPtr e = Parse();
          if (IsOp(",")) {  // tuple -> list
            auto l = Make(Expr::kList, t.pos);
            l->args.push_back(std::move(e));
            while (IsOp(",")) {
              Next();
              if (IsOp(")")) break;
              l->args.push_back(Parse());
            }
            e = std::move(l);
          }
          Expect(")");
          return e;
        }
        if (t.text == "[") {
          auto l = Make(Expr::kList, t.pos);
          while (!IsOp("]")) {
            l->args.push_back(Parse());
            if (!IsOp("]")) Expect(",");
          }
          Expect("]");
          return l;
        }
        if (t.text == "{") {
          auto d = Make(Expr::kDict, t.pos);
          while (!IsOp("}")) {
            d->args.push_back(Parse());
            Expect(":");
            d->args.push_back(Parse());
            if (!IsOp("}")) Expect(",");
          }
          Expect("}");
          return d;
        }
        break;
      case Token::kEnd:
        Fail("unexpected end of expression at " + src_.Where(t.pos));
    }
    Fail(absl::StrCat("unexpected '", t.text, "' at ", src_.Where(t.pos)));
  }

  const Source& src_;
  std::vector<Token> t_;
  size_t i_ = 0;
};

// ---------------------------------------------------------------- template lexer (segments)
struct Segment {
  enum Type { kText, kExpr, kStmt, kComment };
  Type type;
  size_t begin, end;  // content range (excluding delimiters and -/+ markers)
  size_t pos;         // position of the opening delimiter
  bool strip_left = false, strip_right = false, plus_left = false;
  std::string text;   // kText after whitespace control
};

Segment MakeSegment(Segment::Type type, size_t begin, size_t end, size_t pos) {
  Segment s;
  s.type = type;
  s.begin = begin;
  s.end = end;
  s.pos = pos;
  return s;
}

std::vector<Segment> Segmentize(const Source& src) {
  std::string_view s = src.text;
  std::vector<Segment> segs;
  size_t i = 0;
  while (i < s.size()) {
    size_t open = std::string_view::npos;
    for (size_t k = i; k + 1 < s.size(); ++k) {
      if (s[k] == '{' && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#')) {
        open = k;
        break;
      }
    }
    if (open == std::string_view::npos) {
      segs.push_back(MakeSegment(Segment::kText, i, s.size(), i));
      break;
    }
    if (open > i) segs.push_back(MakeSegment(Segment::kText, i, open, i));
    char kind = s[open + 1];
    Segment seg = MakeSegment(kind == '{' ? Segment::kExpr : kind == '%' ? Segment::kStmt : Segment::kComment, 0, 0, open);
    size_t b = open + 2;
    if (b < s.size() && s[b] == '-') {
      seg.strip_left = true;
      ++b;
    } else if (b < s.size() && s[b] == '+') {
      seg.plus_left = true;
      ++b;
    }
    char close = kind == '{' ? '}' : kind == '%' ? '%' : '#';
    size_t k = b;
    char quote = 0;
    size_t close_at = std::string_view::npos;
    for (; k + 1 < s.size(); ++k) {
      if (kind != '#') {
        if (quote) {
          if (s[k] == '\\') {
            ++k;
          } else if (s[k] == quote) {
            quote = 0;
          }
          continue;
        }
        if (s[k] == '\'' || s[k] == '"') {
          quote = s[k];
          continue;
        }
      }
      if (s[k] == close && s[k + 1] == '}') {
        close_at = k;
        break;
      }
    }
    if (close_at == std::string_view::npos) Fail("unclosed tag opened at " + src.Where(open));
    size_t e = close_at;
    if (e > b && s[e - 1] == '-') {
      seg.strip_right = true;
      --e;
    } else if (e > b && s[e - 1] == '+') {
      --e;
    }
    seg.begin = b;
    seg.end = e;
    segs.push_back(seg);
    i = close_at + 2;
  }
  // Whitespace control: {%- / -%}, trim_blocks and lstrip_blocks.
  for (size_t n = 0; n < segs.size(); ++n) {
    Segment& seg = segs[n];
    if (seg.type != Segment::kText) continue;
    std::string t(s.substr(seg.begin, seg.end - seg.begin));
    if (n > 0) {
      const Segment& prev = segs[n - 1];
      if (prev.strip_right) {
        size_t k = t.find_first_not_of(" \t\r\n");
        t = k == std::string::npos ? "" : t.substr(k);
      } else if (prev.type != Segment::kExpr) {
        if (t.rfind("\r\n", 0) == 0) t = t.substr(2);
        else if (!t.empty() && t[0] == '\n') t = t.substr(1);
      }
    }
    if (n + 1 < segs.size()) {
      const Segment& next = segs[n + 1];
      if (next.strip_left) {
        size_t k = t.find_last_not_of(" \t\r\n");
        t = k == std::string::npos ? "" : t.substr(0, k + 1);
      } else if (next.type != Segment::kExpr && !next.plus_left) {
        size_t nl = t.rfind('\n');
        bool line_start = nl != std::string::npos || seg.begin == 0 ||
                          (n > 0 && segs[n - 1].type == Segment::kText);
        size_t from = nl == std::string::npos ? 0 : nl + 1;
        if (line_start && t.find_first_not_of(" \t", from) == std::string::npos) t.resize(from);
      }
    }
    seg.text = std::move(t);
  }
  return segs;
}

// ---------------------------------------------------------------- statement parser
class TemplateParser {
 public:
  TemplateParser(const Source& src, std::vector<Segment> segs) : src_(src), segs_(std::move(segs)) {}

  std::unique_ptr<Node> ParseAll() {
    std::string end;
    auto root = ParseBlock({}, &end);
    return root;
  }

 private:
  // Parses nodes until a statement whose keyword is in `stops` (returned via *stop, tokens kept in last_).
  std::unique_ptr<Node> ParseBlock(const std::vector<std::string>& stops, std::string* stop) {
    auto block = std::make_unique<Node>();
    block->kind = Node::kBlock;
    while (n_ < segs_.size()) {
      Segment& seg = segs_[n_++];
      if (seg.type == Segment::kComment) continue;
      if (seg.type == Segment::kText) {
        if (seg.text.empty()) continue;
        auto t = std::make_unique<Node>();
        t->kind = Node::kText;
        t->text = seg.text;
        block->children.push_back(std::move(t));
        continue;
      }
      ExprParser p(src_, LexExpr(src_, seg.begin, seg.end));
      if (seg.type == Segment::kExpr) {
        auto o = std::make_unique<Node>();
        o->kind = Node::kOutput;
        o->pos = seg.pos;
        o->expr = p.Parse();
        p.ExpectEnd();
        block->children.push_back(std::move(o));
        continue;
      }
      if (p.Peek().type != Token::kName) Fail("expected a statement keyword at " + src_.Where(seg.pos));
      std::string kw = p.Next().text;
      if (std::find(stops.begin(), stops.end(), kw) != stops.end()) {
        *stop = kw;
        stop_parser_ = std::make_unique<ExprParser>(std::move(p));
        return block;
      }
      if (kw == "if") {
        block->children.push_back(ParseIf(p, seg.pos));
      } else if (kw == "for") {
        block->children.push_back(ParseFor(p, seg.pos));
      } else if (kw == "set") {
        block->children.push_back(ParseSet(p, seg.pos));
      } else if (kw == "break" || kw == "continue") {
        p.ExpectEnd();
        auto b = std::make_unique<Node>();
        b->kind = kw == "break" ? Node::kBreak : Node::kContinue;
        block->children.push_back(std::move(b));
      } else {
        Fail(absl::StrCat("unsupported template statement '", kw, "' at ", src_.Where(seg.pos)));
      }
    }
    if (!stops.empty()) {
      Fail(absl::StrCat("missing {% ", stops.back(), " %}: the template ended inside a block"));
    }
    return block;
  }

  std::unique_ptr<Node> ParseIf(ExprParser& p, size_t pos) {
    auto node = std::make_unique<Node>();
    node->kind = Node::kIf;
    node->pos = pos;
    ExprPtr cond = p.Parse();
    p.ExpectEnd();
    while (true) {
      std::string stop;
      auto body = ParseBlock({"elif", "else", "endif"}, &stop);
      node->branches.emplace_back(std::move(cond), std::move(body));
      if (stop == "endif") {
        stop_parser_->ExpectEnd();
        return node;
      }
      if (stop == "elif") {
        cond = stop_parser_->Parse();
        stop_parser_->ExpectEnd();
        continue;
      }
      stop_parser_->ExpectEnd();
      auto else_body = ParseBlock({"endif"}, &stop);
      stop_parser_->ExpectEnd();
      node->branches.emplace_back(nullptr, std::move(else_body));
      return node;
    }
  }

  std::unique_ptr<Node> ParseFor(ExprParser& p, size_t pos) {
    auto node = std::make_unique<Node>();
    node->kind = Node::kFor;
    node->pos = pos;
    node->targets.push_back(p.ExpectName());
    while (p.IsOp(",")) {
      p.Next();
      node->targets.push_back(p.ExpectName());
    }
    if (!p.IsName("in")) Fail("expected 'in' in for loop at " + src_.Where(pos));
    p.Next();
    node->expr = p.ParseNoCond();
    if (p.IsName("if")) {
      p.Next();
      node->filter_cond = p.ParseNoCond();
    }
    if (p.IsName("recursive")) Fail("unsupported 'recursive' for loop at " + src_.Where(pos));
    p.ExpectEnd();
    std::string stop;
    node->body = ParseBlock({"else", "endfor"}, &stop);
    stop_parser_->ExpectEnd();
    if (stop == "else") {
      node->else_body = ParseBlock({"endfor"}, &stop);
      stop_parser_->ExpectEnd();
    }
    return node;
  }

  std::unique_ptr<Node> ParseSet(ExprParser& p, size_t pos) {
    auto node = std::make_unique<Node>();
    node->kind = Node::kSet;
    node->pos = pos;
    node->targets.push_back(p.ExpectName());
    if (p.IsOp(".")) {
      p.Next();
      node->targets.push_back(p.ExpectName());
      node->set_attr = true;
    } else {
      while (p.IsOp(",")) {
        p.Next();
        node->targets.push_back(p.ExpectName());
      }
    }
    if (!p.IsOp("=")) Fail("unsupported block form of 'set' (expected '=') at " + src_.Where(pos));
    p.Next();
    node->expr = p.Parse();
    if (p.IsOp(",")) {  // tuple value
      auto l = std::make_unique<Expr>();
      l->kind = Expr::kList;
      l->args.push_back(std::move(node->expr));
      while (p.IsOp(",")) {
        p.Next();
        l->args.push_back(p.Parse());
      }
      node->expr = std::move(l);
    }
    p.ExpectEnd();
    return node;
  }

  const Source& src_;
  std::vector<Segment> segs_;
  size_t n_ = 0;
  std::unique_ptr<ExprParser> stop_parser_;
};

// ---------------------------------------------------------------- interpreter
struct LoopSignal {
  bool is_break;
};

class Interpreter {
 public:
  Interpreter(const Source& src, const Json& ctx) : src_(src) {
    scopes_.emplace_back();
    if (ctx.is_object()) {
      for (auto it = ctx.begin(); it != ctx.end(); ++it) scopes_[0][it.key()] = Value::Of(it.value());
    }
    for (const char* f : {"raise_exception", "namespace", "range", "strftime_now"}) {
      Value v;
      v.kind = Value::kFunction;
      v.fn = f;
      if (!scopes_[0].count(f)) scopes_[0][f] = v;
    }
  }

  void Exec(const Node& n, std::string* out) {
    switch (n.kind) {
      case Node::kText:
        *out += n.text;
        return;
      case Node::kOutput:
        *out += ToStr(Eval(*n.expr));
        return;
      case Node::kBlock:
        for (const auto& c : n.children) Exec(*c, out);
        return;
      case Node::kIf:
        for (const auto& [cond, body] : n.branches) {
          if (!cond || Truthy(Eval(*cond))) {
            Exec(*body, out);
            return;
          }
        }
        return;
      case Node::kSet: {
        Value v = Eval(*n.expr);
        if (n.set_attr) {
          Value target = Lookup(n.targets[0]);
          if (target.kind != Value::kNamespace) {
            Fail(absl::StrCat("cannot assign attribute '", n.targets[1], "' of '", n.targets[0],
                              "' (not a namespace()) at ", src_.Where(n.pos)));
          }
          (*target.ns)[n.targets[1]] = ToJson(v, n.pos);
        } else if (n.targets.size() == 1) {
          scopes_.back()[n.targets[0]] = v;
        } else {
          Unpack(n.targets, v, n.pos);
        }
        return;
      }
      case Node::kBreak:
        throw LoopSignal{true};
      case Node::kContinue:
        throw LoopSignal{false};
      case Node::kFor:
        ExecFor(n, out);
        return;
    }
  }

 private:
  void Unpack(const std::vector<std::string>& names, const Value& v, size_t pos) {
    if (v.kind != Value::kJson || !v.j.is_array() || v.j.size() != names.size()) {
      Fail(absl::StrCat("cannot unpack ", TypeName(v), " into ", names.size(), " names at ", src_.Where(pos)));
    }
    for (size_t i = 0; i < names.size(); ++i) scopes_.back()[names[i]] = Value::Of(v.j[i]);
  }

  Json ToJson(const Value& v, size_t pos) {
    if (v.kind == Value::kJson) return v.j;
    if (v.kind == Value::kUndefined) return nullptr;
    if (v.kind == Value::kNamespace) return *v.ns;
    Fail("cannot store a function in a value at " + src_.Where(pos));
  }

  std::vector<Json> Items(const Value& v, size_t pos) {
    std::vector<Json> items;
    if (v.kind == Value::kJson && v.j.is_array()) {
      for (const auto& x : v.j) items.push_back(x);
    } else if (v.kind == Value::kJson && v.j.is_object()) {
      for (auto it = v.j.begin(); it != v.j.end(); ++it) items.push_back(it.key());
    } else if (v.kind == Value::kJson && v.j.is_string()) {
      const std::string& s = v.j.get_ref<const std::string&>();
      for (size_t i = 0; i < s.size();) {
        size_t len = 1;
        unsigned char c = s[i];
        if (c >= 0xF0) len = 4;
        else if (c >= 0xE0) len = 3;
        else if (c >= 0xC0) len = 2;
        items.push_back(s.substr(i, len));
        i += len;
      }
    } else if (v.kind != Value::kUndefined && !(v.kind == Value::kJson && v.j.is_null())) {
      Fail(absl::StrCat("'", TypeName(v), "' object is not iterable at ", src_.Where(pos)));
    } else if (v.kind == Value::kJson) {
      Fail(absl::StrCat("'NoneType' object is not iterable at ", src_.Where(pos)));
    }
    return items;
  }

  void ExecFor(const Node& n, std::string* out) {
    std::vector<Json> items = Items(Eval(*n.expr), n.pos);
    if (n.filter_cond) {
      std::vector<Json> kept;
      for (auto& it : items) {
        scopes_.emplace_back();
        BindTargets(n, it);
        if (Truthy(Eval(*n.filter_cond))) kept.push_back(it);
        scopes_.pop_back();
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (n.else_body) Exec(*n.else_body, out);
      return;
    }
    const size_t len = items.size();
    for (size_t i = 0; i < len; ++i) {
      scopes_.emplace_back();
      BindTargets(n, items[i]);
      Json loop = Json::object();
      loop["index"] = i + 1;
      loop["index0"] = i;
      loop["revindex"] = len - i;
      loop["revindex0"] = len - i - 1;
      loop["first"] = i == 0;
      loop["last"] = i + 1 == len;
      loop["length"] = len;
      if (i > 0) loop["previtem"] = items[i - 1];
      if (i + 1 < len) loop["nextitem"] = items[i + 1];
      scopes_.back()["loop"] = Value::Of(std::move(loop));
      bool brk = false;
      try {
        Exec(*n.body, out);
      } catch (const LoopSignal& s) {
        brk = s.is_break;
      }
      scopes_.pop_back();
      if (brk) break;
    }
  }

  void BindTargets(const Node& n, const Json& item) {
    if (n.targets.size() == 1) {
      scopes_.back()[n.targets[0]] = Value::Of(item);
    } else {
      Unpack(n.targets, Value::Of(item), n.pos);
    }
  }

  Value Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value{};
  }

  static int64_t AsInt(const Json& j) { return j.is_number_float() ? static_cast<int64_t>(j.get<double>()) : j.get<int64_t>(); }

  Value GetAttr(const Value& obj, const std::string& attr) {
    if (obj.kind == Value::kNamespace) {
      auto it = obj.ns->find(attr);
      return it == obj.ns->end() ? Value{} : Value::Of(*it);
    }
    if (obj.kind == Value::kJson && obj.j.is_object()) {
      auto it = obj.j.find(attr);
      if (it != obj.j.end()) return Value::Of(*it);
    }
    return Value{};
  }

  Value GetIndex(const Value& obj, const Value& key, size_t pos) {
    if (obj.kind == Value::kNamespace) return key.j.is_string() ? GetAttr(obj, key.j.get<std::string>()) : Value{};
    if (obj.kind != Value::kJson) return Value{};
    const Json& j = obj.j;
    if (j.is_object()) {
      if (!key.j.is_string()) return Value{};
      auto it = j.find(key.j.get<std::string>());
      return it == j.end() ? Value{} : Value::Of(*it);
    }
    if ((j.is_array() || j.is_string()) && key.kind == Value::kJson && key.j.is_number_integer()) {
      std::vector<Json> items = j.is_array() ? std::vector<Json>() : Items(obj, pos);
      int64_t n = j.is_array() ? static_cast<int64_t>(j.size()) : static_cast<int64_t>(items.size());
      int64_t i = key.j.get<int64_t>();
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value{};
      return Value::Of(j.is_array() ? j[static_cast<size_t>(i)] : items[static_cast<size_t>(i)]);
    }
    return Value{};
  }

  Value Slice(const Value& obj, const Value* a, const Value* b, const Value* c, size_t pos) {
    if (obj.kind != Value::kJson || !(obj.j.is_array() || obj.j.is_string())) {
      Fail(absl::StrCat("cannot slice ", TypeName(obj), " at ", src_.Where(pos)));
    }
    std::vector<Json> items = Items(obj, pos);
    int64_t n = static_cast<int64_t>(items.size());
    auto get = [&](const Value* v, bool* present) -> int64_t {
      *present = v && v->kind == Value::kJson && v->j.is_number();
      return *present ? AsInt(v->j) : 0;
    };
    bool has_a, has_b, has_c;
    int64_t start = get(a, &has_a), stop = get(b, &has_b), step = get(c, &has_c);
    if (!has_c) step = 1;
    if (step == 0) Fail("slice step cannot be zero at " + src_.Where(pos));
    auto clamp = [&](int64_t x, bool present, int64_t dflt) {
      if (!present) return dflt;
      if (x < 0) x += n;
      if (step > 0) return std::max<int64_t>(0, std::min(x, n));
      return std::max<int64_t>(-1, std::min(x, n - 1));
    };
    start = clamp(start, has_a, step > 0 ? 0 : n - 1);
    stop = clamp(stop, has_b, step > 0 ? n : -1);
    std::vector<Json> outv;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) outv.push_back(items[static_cast<size_t>(i)]);
    if (obj.j.is_string()) {
      std::string s;
      for (auto& x : outv) s += x.get<std::string>();
      return Value::Of(s);
    }
    return Value::Of(Json(outv));
  }

  // Python's str.strip: `chars` is a set of characters (code points, not bytes); without it, whitespace as
  // str.isspace() sees it, which includes U+00A0, U+3000 and the other Unicode spaces.
  static bool IsPySpace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
  }
  static std::string Strip(const std::string& s, const std::optional<std::string>& chars, bool left, bool right) {
    std::vector<uint32_t> set;
    if (chars) {
      for (size_t p = 0; p < chars->size();) set.push_back(DecodeUtf8Char(*chars, &p));
    }
    auto strip = [&](uint32_t c) {
      return chars ? std::find(set.begin(), set.end(), c) != set.end() : IsPySpace(c);
    };
    size_t b = 0, e = s.size();
    if (left) {
      for (size_t next = b; b < e && strip(DecodeUtf8Char(s, &next));) b = next;
    }
    if (right) {
      while (e > b) {
        size_t start = e - 1;
        while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        size_t p = start;
        if (!strip(DecodeUtf8Char(s, &p))) break;
        e = start;
      }
    }
    return s.substr(b, e - b);
  }

  Value CallMethod(const Value& obj, const std::string& m, const std::vector<Value>& args, size_t pos) {
    auto arg_str = [&](size_t i) -> std::string {
      if (i >= args.size() || args[i].kind != Value::kJson || !args[i].j.is_string()) {
        Fail(absl::StrCat("method '", m, "' expects a string argument ", i + 1, " at ", src_.Where(pos)));
      }
      return args[i].j.get<std::string>();
    };
    if (obj.kind == Value::kJson && obj.j.is_string()) {
      const std::string& s = obj.j.get_ref<const std::string&>();
      if (m == "strip" || m == "lstrip" || m == "rstrip") {
        std::optional<std::string> chars;
        if (!args.empty() && !(args[0].kind == Value::kJson && args[0].j.is_null())) chars = arg_str(0);
        return Value::Of(Strip(s, chars, m != "rstrip", m != "lstrip"));
      }
      if (m == "startswith") return Value::Of(s.rfind(arg_str(0), 0) == 0);
      if (m == "endswith") {
        std::string x = arg_str(0);
        return Value::Of(s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0);
      }
      if (m == "split") {
        Json parts = Json::array();
        if (args.empty()) {
          std::istringstream is(s);
          std::string w;
          while (is >> w) parts.push_back(w);
          return Value::Of(parts);
        }
        std::string sep = arg_str(0);
        if (sep.empty()) Fail("empty separator in split() at " + src_.Where(pos));
        size_t b = 0;
        for (size_t k; (k = s.find(sep, b)) != std::string::npos; b = k + sep.size()) parts.push_back(s.substr(b, k - b));
        parts.push_back(s.substr(b));
        return Value::Of(parts);
      }
      if (m == "upper" || m == "lower") {
        std::string r = s;
        for (auto& ch : r) ch = static_cast<char>(m == "upper" ? std::toupper(static_cast<unsigned char>(ch)) : std::tolower(static_cast<unsigned char>(ch)));
        return Value::Of(r);
      }
      if (m == "replace") {
        std::string from = arg_str(0), to = arg_str(1), r;
        if (from.empty()) return Value::Of(s);
        size_t b = 0;
        for (size_t k; (k = s.find(from, b)) != std::string::npos; b = k + from.size()) r += s.substr(b, k - b) + to;
        r += s.substr(b);
        return Value::Of(r);
      }
    }
    if (obj.kind == Value::kJson && obj.j.is_object()) {
      if (m == "items") {
        Json r = Json::array();
        for (auto it = obj.j.begin(); it != obj.j.end(); ++it) r.push_back(Json::array({it.key(), it.value()}));
        return Value::Of(r);
      }
      if (m == "keys" || m == "values") {
        Json r = Json::array();
        for (auto it = obj.j.begin(); it != obj.j.end(); ++it) r.push_back(m == "keys" ? Json(it.key()) : it.value());
        return Value::Of(r);
      }
      if (m == "get") {
        Value v = GetIndex(obj, args.empty() ? Value{} : args[0], pos);
        if (v.kind == Value::kUndefined) return args.size() > 1 ? args[1] : Value::Of(nullptr);
        return v;
      }
    }
    Fail(absl::StrCat("unsupported method '", m, "' on ", TypeName(obj), " at ", src_.Where(pos)));
  }

  Value CallFunction(const std::string& f, const Expr& e, const std::vector<Value>& args) {
    if (f == "raise_exception") {
      throw TemplateError{args.empty() ? std::string("raise_exception called") : ToStr(args[0])};
    }
    if (f == "namespace") {
      Value v;
      v.kind = Value::kNamespace;
      v.ns = std::make_shared<Json>(Json::object());
      for (const auto& [k, ex] : e.kwargs) (*v.ns)[k] = ToJson(Eval(*ex), ex->pos);
      return v;
    }
    if (f == "range") {
      int64_t start = 0, stop = 0, step = 1;
      if (args.size() == 1) stop = AsInt(args[0].j);
      else if (args.size() >= 2) {
        start = AsInt(args[0].j);
        stop = AsInt(args[1].j);
        if (args.size() > 2) step = AsInt(args[2].j);
      }
      if (step == 0) Fail("range() step cannot be zero at " + src_.Where(e.pos));
      Json r = Json::array();
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) r.push_back(i);
      return Value::Of(r);
    }
    Fail(absl::StrCat("unsupported function '", f, "' at ", src_.Where(e.pos)));
  }

  // tojson(indent=N) (Llama 3.1 writes tools with indent=4); the other json.dumps options are refused rather
  // than ignored.
  Value ToJsonFilter(const Value& v, const std::vector<Value>& args, const Expr& e) {
    if (!args.empty()) Fail("tojson takes only the keyword argument indent here, at " + src_.Where(e.pos));
    int indent = -1;
    for (const auto& [name, ex] : e.kwargs) {
      const Value arg = Eval(*ex);
      if (name != "indent") {
        Fail(absl::StrCat("unsupported keyword argument '", name, "' to filter 'tojson' at ", src_.Where(e.pos)));
      }
      if (arg.kind == Value::kJson && arg.j.is_null()) continue;
      if (arg.kind != Value::kJson || !arg.j.is_number_integer()) {
        Fail("tojson indent must be an integer or none at " + src_.Where(e.pos));
      }
      indent = static_cast<int>(std::max<int64_t>(0, arg.j.get<int64_t>()));
    }
    std::string s;
    DumpPyJson(ToJson(v, e.pos), &s, indent);
    return Value::Of(s);
  }

  Value ApplyFilter(const std::string& f, const Value& v, const std::vector<Value>& args, size_t pos) {
    if (f == "trim") {
      return Value::Of(Strip(ToStr(v), args.empty() ? std::nullopt : std::optional<std::string>(ToStr(args[0])),
                             true, true));
    }
    if (f == "length" || f == "count") {
      if (v.kind == Value::kJson && (v.j.is_array() || v.j.is_object())) return Value::Of(v.j.size());
      if (v.kind == Value::kJson && v.j.is_string()) return Value::Of(Items(v, pos).size());
      if (v.kind == Value::kUndefined) return Value::Of(0);
      Fail(absl::StrCat("object of type '", TypeName(v), "' has no length at ", src_.Where(pos)));
    }
    if (f == "tojson") {
      std::string s;
      DumpPyJson(ToJson(v, pos), &s);
      return Value::Of(s);
    }
    if (f == "upper" || f == "lower") return CallMethod(Value::Of(ToStr(v)), f, {}, pos);
    if (f == "capitalize") {
      std::string s = ToStr(v);
      for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i ? std::tolower(static_cast<unsigned char>(s[i])) : std::toupper(static_cast<unsigned char>(s[i])));
      return Value::Of(s);
    }
    if (f == "replace") return CallMethod(Value::Of(ToStr(v)), "replace", args, pos);
    if (f == "items") return CallMethod(v, "items", {}, pos);
    if (f == "default" || f == "d") {
      bool boolean = args.size() > 1 && Truthy(args[1]);
      if (v.kind == Value::kUndefined || (boolean && !Truthy(v))) return args.empty() ? Value::Of("") : args[0];
      return v;
    }
    if (f == "string") return Value::Of(ToStr(v));
    if (f == "int") {
      if (v.kind == Value::kJson && v.j.is_number()) return Value::Of(AsInt(v.j));
      try {
        return Value::Of(std::stoll(ToStr(v)));
      } catch (...) {
        return Value::Of(0);
      }
    }
    if (f == "list") return Value::Of(Json(Items(v, pos)));
    if (f == "first" || f == "last") {
      auto items = Items(v, pos);
      if (items.empty()) return Value{};
      return Value::Of(f == "first" ? items.front() : items.back());
    }
    if (f == "reverse") {
      auto items = Items(v, pos);
      std::reverse(items.begin(), items.end());
      if (v.kind == Value::kJson && v.j.is_string()) {
        std::string s;
        for (auto& x : items) s += x.get<std::string>();
        return Value::Of(s);
      }
      return Value::Of(Json(items));
    }
    if (f == "join") {
      std::string sep = args.empty() ? "" : ToStr(args[0]), s;
      auto items = Items(v, pos);
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) s += sep;
        s += ToStr(Value::Of(items[i]));
      }
      return Value::Of(s);
    }
    Fail(absl::StrCat("unsupported filter '", f, "' at ", src_.Where(pos)));
  }

  bool ApplyTest(const std::string& t, const Value& v, const std::vector<Value>& args, size_t pos) {
    const bool js = v.kind == Value::kJson;
    if (t == "defined") return v.kind != Value::kUndefined;
    if (t == "undefined") return v.kind == Value::kUndefined;
    if (t == "none") return js && v.j.is_null();
    if (t == "string") return js && v.j.is_string();
    if (t == "number") return js && v.j.is_number();
    if (t == "integer") return js && v.j.is_number_integer();
    if (t == "float") return js && v.j.is_number_float();
    if (t == "boolean") return js && v.j.is_boolean();
    if (t == "true") return js && v.j.is_boolean() && v.j.get<bool>();
    if (t == "false") return js && v.j.is_boolean() && !v.j.get<bool>();
    if (t == "mapping") return (js && v.j.is_object()) || v.kind == Value::kNamespace;
    if (t == "sequence") return js && (v.j.is_array() || v.j.is_string() || v.j.is_object());
    if (t == "iterable") return js && (v.j.is_array() || v.j.is_string() || v.j.is_object());
    if (t == "callable") return v.kind == Value::kFunction;
    if (t == "even" || t == "odd") {
      if (!js || !v.j.is_number_integer()) return false;
      return (v.j.get<int64_t>() % 2 == 0) == (t == "even");
    }
    if (t == "eq" || t == "equalto" || t == "==") return !args.empty() && Equal(v, args[0]);
    Fail(absl::StrCat("unsupported test '", t, "' at ", src_.Where(pos)));
  }

  static bool Equal(const Value& a, const Value& b) {
    if (a.kind != b.kind) return false;
    if (a.kind == Value::kJson) return a.j == b.j;
    if (a.kind == Value::kNamespace) return a.ns == b.ns;
    return a.kind == Value::kUndefined;
  }

  Value Arith(const std::string& op, const Value& a, const Value& b, size_t pos) {
    if (op == "~") return Value::Of(ToStr(a) + ToStr(b));
    const bool nums = a.kind == Value::kJson && b.kind == Value::kJson && a.j.is_number() && b.j.is_number();
    if (op == "+") {
      if (a.kind == Value::kJson && b.kind == Value::kJson) {
        if (a.j.is_string() && b.j.is_string()) return Value::Of(a.j.get<std::string>() + b.j.get<std::string>());
        if (a.j.is_array() && b.j.is_array()) {
          Json r = a.j;
          for (const auto& x : b.j) r.push_back(x);
          return Value::Of(r);
        }
      }
    }
    if (!nums) {
      Fail(absl::StrCat("unsupported operand types for ", op, ": '", TypeName(a), "' and '", TypeName(b), "' at ",
                        src_.Where(pos)));
    }
    const bool ints = !a.j.is_number_float() && !b.j.is_number_float();
    if (ints && op != "/") {
      int64_t x = a.j.get<int64_t>(), y = b.j.get<int64_t>();
      if (op == "+") return Value::Of(x + y);
      if (op == "-") return Value::Of(x - y);
      if (op == "*") return Value::Of(x * y);
      if (y == 0) Fail("division by zero at " + src_.Where(pos));
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return Value::Of(op == "//" ? q : r);
    }
    double x = a.j.get<double>(), y = b.j.get<double>();
    if (op == "+") return Value::Of(x + y);
    if (op == "-") return Value::Of(x - y);
    if (op == "*") return Value::Of(x * y);
    if (y == 0) Fail("division by zero at " + src_.Where(pos));
    if (op == "/") return Value::Of(x / y);
    if (op == "//") return Value::Of(std::floor(x / y));
    return Value::Of(x - std::floor(x / y) * y);
  }

  bool Contains(const Value& hay, const Value& needle, size_t pos) {
    if (hay.kind == Value::kJson && hay.j.is_string()) {
      if (needle.kind != Value::kJson || !needle.j.is_string()) Fail("'in <string>' requires a string at " + src_.Where(pos));
      return hay.j.get_ref<const std::string&>().find(needle.j.get<std::string>()) != std::string::npos;
    }
    if (hay.kind == Value::kJson && hay.j.is_object()) {
      return needle.kind == Value::kJson && needle.j.is_string() && hay.j.contains(needle.j.get<std::string>());
    }
    if (hay.kind == Value::kJson && hay.j.is_array()) {
      for (const auto& x : hay.j) {
        if (Equal(Value::Of(x), needle)) return true;
      }
      return false;
    }
    Fail(absl::StrCat("argument of type '", TypeName(hay), "' is not iterable at ", src_.Where(pos)));
  }

 public:
  Value Eval(const Expr& e) {
    switch (e.kind) {
      case Expr::kLiteral:
        return Value::Of(e.literal);
      case Expr::kName:
        return Lookup(e.name);
      case Expr::kList: {
        Json r = Json::array();
        for (const auto& a : e.args) r.push_back(ToJson(Eval(*a), a->pos));
        return Value::Of(r);
      }
      case Expr::kDict: {
        Json r = Json::object();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) r[ToStr(Eval(*e.args[i]))] = ToJson(Eval(*e.args[i + 1]), e.pos);
        return Value::Of(r);
      }
      case Expr::kAttr:
        return GetAttr(Eval(*e.args[0]), e.name);
      case Expr::kIndex:
        return GetIndex(Eval(*e.args[0]), Eval(*e.args[1]), e.pos);
      case Expr::kSlice: {
        Value obj = Eval(*e.args[0]);
        Value parts[3];
        for (int k = 0; k < 3; ++k) {
          if (e.args[k + 1]) parts[k] = Eval(*e.args[k + 1]);
        }
        return Slice(obj, e.args[1] ? &parts[0] : nullptr, e.args[2] ? &parts[1] : nullptr,
                     e.args[3] ? &parts[2] : nullptr, e.pos);
      }
      case Expr::kCall: {
        std::vector<Value> args;
        for (size_t i = 1; i < e.args.size(); ++i) args.push_back(Eval(*e.args[i]));
        const Expr& callee = *e.args[0];
        if (callee.kind == Expr::kAttr) {
          Value obj = Eval(*callee.args[0]);
          return CallMethod(obj, callee.name, args, e.pos);
        }
        Value fn = Eval(callee);
        if (fn.kind != Value::kFunction) {
          Fail(absl::StrCat("'", callee.kind == Expr::kName ? callee.name : std::string("expression"),
                            "' is not callable (", TypeName(fn), ") at ", src_.Where(e.pos)));
        }
        return CallFunction(fn.fn, e, args);
      }
      case Expr::kFilter: {
        Value v = Eval(*e.args[0]);
        std::vector<Value> args;
        for (size_t i = 1; i < e.args.size(); ++i) args.push_back(Eval(*e.args[i]));
        if (e.name == "tojson") return ToJsonFilter(v, args, e);
        if (!e.kwargs.empty()) {
          Fail(absl::StrCat("unsupported keyword arguments to filter '", e.name, "' at ", src_.Where(e.pos)));
        }
        return ApplyFilter(e.name, v, args, e.pos);
      }
      case Expr::kTest: {
        Value v = Eval(*e.args[0]);
        std::vector<Value> args;
        for (size_t i = 1; i < e.args.size(); ++i) args.push_back(Eval(*e.args[i]));
        return Value::Of(ApplyTest(e.name, v, args, e.pos) != e.negate);
      }
      case Expr::kUnary: {
        Value v = Eval(*e.args[0]);
        if (e.name == "not") return Value::Of(!Truthy(v));
        if (v.kind != Value::kJson || !v.j.is_number()) Fail("bad operand for unary " + e.name + " at " + src_.Where(e.pos));
        if (e.name == "+") return v;
        if (v.j.is_number_float()) return Value::Of(-v.j.get<double>());
        return Value::Of(-v.j.get<int64_t>());
      }
      case Expr::kCond: {
        if (Truthy(Eval(*e.args[0]))) return Eval(*e.args[1]);
        return e.args[2] ? Eval(*e.args[2]) : Value{};
      }
      case Expr::kBinary: {
        const std::string& op = e.name;
        if (op == "and") {
          Value a = Eval(*e.args[0]);
          return Truthy(a) ? Eval(*e.args[1]) : a;
        }
        if (op == "or") {
          Value a = Eval(*e.args[0]);
          return Truthy(a) ? a : Eval(*e.args[1]);
        }
        Value a = Eval(*e.args[0]);
        Value b = Eval(*e.args[1]);
        if (op == "==") return Value::Of(Equal(a, b));
        if (op == "!=") return Value::Of(!Equal(a, b));
        if (op == "in") return Value::Of(Contains(b, a, e.pos));
        if (op == "notin") return Value::Of(!Contains(b, a, e.pos));
        if (op == "<" || op == ">" || op == "<=" || op == ">=") {
          if (a.kind != Value::kJson || b.kind != Value::kJson ||
              !((a.j.is_number() && b.j.is_number()) || (a.j.is_string() && b.j.is_string()))) {
            Fail(absl::StrCat("cannot compare '", TypeName(a), "' with '", TypeName(b), "' at ", src_.Where(e.pos)));
          }
          bool lt = a.j < b.j, gt = b.j < a.j;
          if (op == "<") return Value::Of(lt);
          if (op == ">") return Value::Of(gt);
          if (op == "<=") return Value::Of(!gt);
          return Value::Of(!lt);
        }
        return Arith(op, a, b, e.pos);
      }
    }
    Fail("internal error: unknown expression");
  }

 private:
  const Source& src_;
  std::vector<std::map<std::string, Value>> scopes_;
};

}  // namespace jinja

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view source) {
  try {
    ChatTemplate t;
    t.source_ = std::make_shared<const std::string>(source);
    // Re-parse against the owned copy so positions and views stay valid.
    jinja::Source owned{*t.source_};
    jinja::TemplateParser p2(owned, jinja::Segmentize(owned));
    t.root_ = p2.ParseAll();
    return t;
  } catch (const jinja::TemplateError& e) {
    return absl::InvalidArgumentError("chat template: " + e.message);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("chat template: ", e.what()));
  }
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& context) const {
  if (!root_) return absl::FailedPreconditionError("chat template: Render called on an empty ChatTemplate");
  try {
    jinja::Source src{*source_};
    jinja::Interpreter in(src, context);
    std::string out;
    in.Exec(*root_, &out);
    return out;
  } catch (const jinja::TemplateError& e) {
    return absl::InvalidArgumentError(e.message);
  } catch (const jinja::LoopSignal&) {
    return absl::InvalidArgumentError("chat template: break/continue outside a for loop");
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("chat template: ", e.what()));
  }
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& context) const {
  nlohmann::ordered_json o;
  try {
    o = nlohmann::ordered_json::parse(context.dump());
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("chat template: bad context: ", e.what()));
  }
  return Render(o);
}

absl::StatusOr<ChatTemplateConfig> ReadTokenizerConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open tokenizer config ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": expected a JSON object"));
  ChatTemplateConfig cfg;
  auto ct = j.find("chat_template");
  if (ct == j.end() || ct->is_null()) {
    // No chat template: a base model's tokenizer.
  } else if (ct->is_string()) {
    cfg.chat_template = ct->get<std::string>();
  } else if (ct->is_array()) {
    bool found = false;
    for (const auto& e : *ct) {
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string()) {
        cfg.chat_template = e["template"].get<std::string>();
        found = true;
      }
    }
    if (!found) return absl::NotFoundError(absl::StrCat(path, ": chat_template list has no template named \"default\""));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(path, ": chat_template must be a string or a list of {name, template}"));
  }
  auto token = [&](const char* key) -> std::optional<std::string> {
    auto it = j.find(key);
    if (it == j.end()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
    return std::nullopt;
  };
  cfg.bos_token = token("bos_token");
  cfg.eos_token = token("eos_token");
  cfg.pad_token = token("pad_token");
  return cfg;
}

absl::StatusOr<ChatTemplateConfig> ReadChatTemplateConfig(const std::string& path) {
  auto cfg = ReadTokenizerConfig(path);
  if (cfg.ok() && cfg->chat_template.empty()) {
    return absl::NotFoundError(absl::StrCat(path, " has no chat_template; pass a template explicitly"));
  }
  return cfg;
}

absl::StatusOr<ChatFormat> LoadChatFormat(const std::string& tokenizer_dir) {
  const std::string file = tokenizer_dir + "/tokenizer_config.json";
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(file, " does not exist; chat messages need a tokenizer_config.json with "
                                            "a chat_template next to tokenizer.json"));
  }
  auto config = ReadChatTemplateConfig(file);
  if (!config.ok()) {
    if (config.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat("this tokenizer has no chat template (", file,
                                              " has no chat_template)"));
    }
    return config.status();
  }
  auto parsed = ChatTemplate::Parse(config->chat_template);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the chat_template of ", file, " cannot be used: ", parsed.status().message()));
  }
  return ChatFormat{*std::move(config), *std::move(parsed)};
}

absl::StatusOr<std::string> RenderChat(const ChatFormat& chat, const nlohmann::ordered_json& messages,
                                       bool add_generation_prompt, const nlohmann::ordered_json* tools) {
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = messages;
  ctx["add_generation_prompt"] = add_generation_prompt;
  if (chat.config.bos_token) ctx["bos_token"] = *chat.config.bos_token;
  if (chat.config.eos_token) ctx["eos_token"] = *chat.config.eos_token;
  // transformers always passes tools and documents, None when absent: `tools is none` holds then, and
  // `tools is defined` too.
  ctx["tools"] = tools != nullptr ? *tools : nlohmann::ordered_json(nullptr);
  ctx["documents"] = nullptr;
  return chat.chat_template.Render(ctx);
}

}  // namespace tuneforge
