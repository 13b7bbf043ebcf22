// kernel_cmdline: an argument of the kernel command line as GRUB builds it
// from GRUB_CMDLINE_LINUX and GRUB_CMDLINE_LINUX_DEFAULT. /etc/default/grub
// and /etc/default/grub.d/*.cfg are shell scripts that grub-mkconfig sources;
// the simple assignments they are made of are evaluated here without running
// any shell, and anything that would need a shell to know the value is an
// error rather than a guess.
#include <algorithm>
#include <cctype>
#include <map>
#include <optional>

#include "kinds.h"

namespace parc::policy::kinds {

namespace {

constexpr const char* kGrub = "/etc/default/grub";
constexpr const char* kGrubD = "/etc/default/grub.d/*.cfg";
constexpr const char* kLinux = "GRUB_CMDLINE_LINUX";
constexpr const char* kDefault = "GRUB_CMDLINE_LINUX_DEFAULT";

bool Ours(const std::string& name) { return name == kLinux || name == kDefault; }

// A piece of a shell word after quote removal: literal text or a variable.
struct Seg {
  bool var = false;
  std::string text;  // literal, or the variable name
};

struct Word {
  std::vector<Seg> segs;
  size_t begin = 0, end = 0;   // byte range in the file
  bool opaque = false;         // $(..), `..`, ${x:-y}, $1: needs a shell
  void Literal(char c) {
    if (segs.empty() || segs.back().var) segs.push_back({false, ""});
    segs.back().text += c;
  }
  // The literal text of the whole word when it has no variable.
  std::optional<std::string> Plain() const {
    std::string s;
    for (const auto& g : segs) {
      if (g.var) return std::nullopt;
      s += g.text;
    }
    if (opaque) return std::nullopt;
    return s;
  }
};

struct Statement {
  std::vector<Word> words;
  int line = 0;
  bool conditional = false;  // after && or || or in a pipeline
};

bool NameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool NameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }

// Splits shell text into statements of words; quotes, escapes, comments,
// line continuations and $VAR/${VAR} references are understood.
Expected<std::vector<Statement>> Tokenize(const std::string& t) {
  std::vector<Statement> out;
  Statement cur;
  int line = 1;
  bool next_conditional = false;
  auto flush = [&](bool conditional_after) {
    if (!cur.words.empty()) out.push_back(std::move(cur));
    cur = Statement{};
    next_conditional = conditional_after;
  };
  size_t i = 0;
  const size_t n = t.size();
  auto dollar = [&](Word& w) {
    // at t[i] == '$'
    if (i + 1 < n && t[i + 1] == '{') {
      size_t close = t.find('}', i + 2);
      if (close == std::string::npos) return false;
      std::string inner = t.substr(i + 2, close - i - 2);
      bool simple = !inner.empty() && NameStart(inner[0]) && std::all_of(inner.begin(), inner.end(), NameChar);
      if (simple) w.segs.push_back({true, inner});
      else w.opaque = true;
      i = close + 1;
      return true;
    }
    if (i + 1 < n && t[i + 1] == '(') {
      int depth = 0;
      size_t j = i + 1;
      for (; j < n; ++j) {
        if (t[j] == '(') ++depth;
        if (t[j] == ')' && --depth == 0) break;
        if (t[j] == '\n') ++line;
      }
      w.opaque = true;
      i = j < n ? j + 1 : n;
      return true;
    }
    if (i + 1 < n && NameStart(t[i + 1])) {
      size_t j = i + 1;
      while (j < n && NameChar(t[j])) ++j;
      w.segs.push_back({true, t.substr(i + 1, j - i - 1)});
      i = j;
      return true;
    }
    if (i + 1 < n && (std::isdigit(static_cast<unsigned char>(t[i + 1])) || std::string("@*#?$!-").find(t[i + 1]) != std::string::npos)) {
      w.opaque = true;
      i += 2;
      return true;
    }
    w.Literal('$');
    ++i;
    return true;
  };
  while (i < n) {
    char c = t[i];
    if (c == '\n') {
      ++line;
      ++i;
      flush(false);
      continue;
    }
    if (c == ';') {
      ++i;
      flush(false);
      continue;
    }
    if (c == '&' || c == '|') {
      ++i;
      if (i < n && t[i] == c) ++i;
      flush(true);
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
      continue;
    }
    if (c == '\\' && i + 1 < n && t[i + 1] == '\n') {
      i += 2;
      ++line;
      continue;
    }
    if (c == '#') {
      while (i < n && t[i] != '\n') ++i;
      continue;
    }
    if (cur.words.empty()) {
      cur.line = line;
      cur.conditional = next_conditional;
    }
    Word w;
    w.begin = i;
    if (c == '(' || c == ')') {
      w.Literal(c);
      ++i;
      w.end = i;
      cur.words.push_back(std::move(w));
      continue;
    }
    while (i < n) {
      c = t[i];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';' || c == '&' || c == '|' || c == '(' || c == ')') break;
      if (c == '\\') {
        if (i + 1 < n && t[i + 1] == '\n') {
          ++line;
        } else if (i + 1 < n) {
          w.Literal(t[i + 1]);
        }
        i += 2;
      } else if (c == '\'') {
        size_t close = t.find('\'', i + 1);
        if (close == std::string::npos) return Fail(Errc::kParse, "line " + std::to_string(line) + ": unterminated single quote");
        for (size_t k = i + 1; k < close; ++k) {
          if (t[k] == '\n') ++line;
          w.Literal(t[k]);
        }
        i = close + 1;
      } else if (c == '"') {
        ++i;
        bool closed = false;
        while (i < n) {
          char d = t[i];
          if (d == '"') {
            closed = true;
            ++i;
            break;
          }
          if (d == '\\' && i + 1 < n && std::string("$`\"\\\n").find(t[i + 1]) != std::string::npos) {
            if (t[i + 1] == '\n') ++line;
            else w.Literal(t[i + 1]);
            i += 2;
          } else if (d == '$') {
            if (!dollar(w)) return Fail(Errc::kParse, "line " + std::to_string(line) + ": unterminated ${");
          } else if (d == '`') {
            size_t close = t.find('`', i + 1);
            w.opaque = true;
            i = close == std::string::npos ? n : close + 1;
          } else {
            if (d == '\n') ++line;
            w.Literal(d);
            ++i;
          }
        }
        if (!closed) return Fail(Errc::kParse, "line " + std::to_string(line) + ": unterminated double quote");
      } else if (c == '$') {
        if (!dollar(w)) return Fail(Errc::kParse, "line " + std::to_string(line) + ": unterminated ${");
      } else if (c == '`') {
        size_t close = t.find('`', i + 1);
        w.opaque = true;
        i = close == std::string::npos ? n : close + 1;
      } else {
        w.Literal(c);
        ++i;
      }
    }
    w.end = i;
    cur.words.push_back(std::move(w));
  }
  flush(false);
  return out;
}

// NAME=... words: the name and the value's segments.
std::optional<std::pair<std::string, Word>> AsAssignment(const Word& w) {
  if (w.segs.empty() || w.segs[0].var) return std::nullopt;
  const std::string& first = w.segs[0].text;
  size_t eq = first.find('=');
  if (eq == std::string::npos || eq == 0 || !NameStart(first[0])) return std::nullopt;
  for (size_t k = 0; k < eq; ++k)
    if (!NameChar(first[k])) return std::nullopt;
  Word value = w;
  value.segs[0].text = first.substr(eq + 1);
  if (value.segs[0].text.empty()) value.segs.erase(value.segs.begin());
  return std::make_pair(first.substr(0, eq), value);
}

struct Assignment {
  std::string file;
  int line = 0;
  std::string name;
  Word value;
  size_t begin = 0, end = 0;  // the NAME=... word in the file
};

struct Evaluation {
  std::map<std::string, std::string> value;     // kLinux / kDefault
  std::map<std::string, std::string> where;     // last assignment "file:line"
  std::vector<Assignment> assignments;          // of kLinux / kDefault, in order
  std::string error;
};

using FileTexts = std::vector<std::pair<std::string, std::string>>;

// grub-mkconfig: /etc/default/grub, then each existing grub.d/*.cfg in order.
Expected<FileTexts> ReadFiles(const Context& ctx) {
  FileTexts out;
  auto main = ctx.Read(kGrub);
  if (!main) return Fail(main.error().WithContext("cannot read " + std::string(kGrub)));
  out.emplace_back(kGrub, *main);
  auto cfgs = ctx.Glob(kGrubD);
  if (!cfgs) return Fail(cfgs.error().WithContext(kGrubD));
  for (const auto& f : *cfgs) {
    auto text = ctx.Read(f);
    if (!text) {
      if (text.error().Is(Errc::kNotFound)) continue;  // [ -e "$x" ] skips a dangling link
      return Fail(text.error().WithContext("cannot read " + f));
    }
    out.emplace_back(f, *text);
  }
  return out;
}

Evaluation EvaluateGrub(const FileTexts& files) {
  Evaluation ev;
  // Variables of the sourced scripts; nullopt: known to need a shell.
  std::map<std::string, std::optional<std::string>> vars;
  for (const auto& [file, text] : files) {
    auto stmts = Tokenize(text);
    if (!stmts) {
      ev.error = file + ": " + stmts.error().message();
      return ev;
    }
    int depth = 0;
    for (const auto& st : *stmts) {
      auto at = file + ":" + std::to_string(st.line);
      auto first = st.words[0].Plain();
      // Nesting is tracked coarsely: anything inside if/case/loops, braces or
      // parentheses (function bodies, subshells) is conditional.
      if (first && (*first == "if" || *first == "case" || *first == "for" || *first == "while" || *first == "until")) ++depth;
      if (first && (*first == "fi" || *first == "esac" || *first == "done")) depth = std::max(0, depth - 1);
      for (const auto& w : st.words) {
        auto p = w.Plain();
        if (p && (*p == "{" || *p == "(")) ++depth;
        if (p && (*p == "}" || *p == ")")) depth = std::max(0, depth - 1);
      }
      size_t k = 0;
      if (first && (*first == "export" || *first == "readonly")) k = 1;
      if (first && (*first == "." || *first == "source")) {
        ev.error = at + ": sources another file, which Parc does not follow";
        return ev;
      }
      if (first && *first == "unset") {
        for (size_t w = 1; w < st.words.size(); ++w)
          if (auto name = st.words[w].Plain()) {
            if (Ours(*name) && (depth > 0 || st.conditional)) {
              ev.error = at + ": " + *name + " is unset conditionally; Parc does not run shell code";
              return ev;
            }
            vars[*name] = "";
            if (Ours(*name)) {
              ev.value[*name] = "";
              ev.where[*name] = at;
            }
          }
        continue;
      }
      // Only a statement made of assignments sets variables for the rest of the script.
      bool all = k < st.words.size();
      for (size_t w = k; w < st.words.size() && all; ++w) all = AsAssignment(st.words[w]).has_value();
      for (size_t w = k; w < st.words.size(); ++w) {
        auto a = AsAssignment(st.words[w]);
        if (!a) continue;
        if (Ours(a->first) && (!all || depth > 0 || st.conditional)) {
          ev.error = at + ": " + a->first + " is set inside a shell condition, loop or command; Parc does not run shell code";
          return ev;
        }
      }
      if (!all) continue;
      for (size_t w = k; w < st.words.size(); ++w) {
        auto a = AsAssignment(st.words[w]);
        const Word& value = a->second;
        std::optional<std::string> v = std::string();
        if (value.opaque) v.reset();
        for (const auto& g : value.segs) {
          if (!v) break;
          if (!g.var) {
            *v += g.text;
            continue;
          }
          auto it = vars.find(g.text);
          if (it != vars.end() && !it->second) v.reset();
          else if (it != vars.end()) *v += *it->second;
          else if (Ours(a->first)) {
            ev.error = at + ": " + a->first + " uses $" + g.text + ", which these files never set";
            return ev;
          }
        }
        if (Ours(a->first)) {
          if (!v) {
            ev.error = at + ": " + a->first + " needs a shell to evaluate (command substitution or parameter expansion)";
            return ev;
          }
          ev.value[a->first] = *v;
          ev.where[a->first] = at;
          ev.assignments.push_back({file, st.line, a->first, value, st.words[w].begin, st.words[w].end});
        }
        vars[a->first] = v;
      }
    }
  }
  return ev;
}

std::string ArgName(const std::string& arg) { return arg.substr(0, arg.find('=')); }

// The words of the command line GRUB boots with (normal entries).
std::vector<std::string> Cmdline(const Evaluation& ev) {
  auto words = SplitWords(ev.value.contains(kLinux) ? ev.value.at(kLinux) : "");
  for (auto& w : SplitWords(ev.value.contains(kDefault) ? ev.value.at(kDefault) : "")) words.push_back(std::move(w));
  return words;
}

// The kernel takes the last occurrence of a parameter.
std::optional<std::string> LastOf(const std::vector<std::string>& words, const std::string& name) {
  std::optional<std::string> out;
  for (const auto& w : words)
    if (ArgName(w) == name) out = w;
  return out;
}

// A value split into kernel arguments; a piece glued to a variable stays whole.
std::vector<std::vector<Seg>> Pieces(const Word& value) {
  std::vector<std::vector<Seg>> out;
  std::vector<Seg> cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (const auto& g : value.segs) {
    if (g.var) {
      cur.push_back(g);
      continue;
    }
    for (char c : g.text) {
      if (c == ' ' || c == '\t' || c == '\n') {
        flush();
        continue;
      }
      if (cur.empty() || cur.back().var) cur.push_back({false, ""});
      cur.back().text += c;
    }
  }
  flush();
  return out;
}

std::optional<std::string> PlainPiece(const std::vector<Seg>& p) {
  if (p.size() == 1 && !p[0].var) return p[0].text;
  return std::nullopt;
}

// NAME="..." written back with double quotes; variables kept as references.
std::string Serialize(const std::string& name, const std::vector<std::vector<Seg>>& pieces) {
  std::string out = name + "=\"";
  for (size_t p = 0; p < pieces.size(); ++p) {
    if (p) out += ' ';
    for (const auto& g : pieces[p]) {
      if (g.var) {
        out += "${" + g.text + "}";
        continue;
      }
      for (char c : g.text) {
        if (c == '"' || c == '\\' || c == '$' || c == '`') out += '\\';
        out += c;
      }
    }
  }
  return out + "\"";
}

class KernelCmdline final : public Check {
 public:
  explicit KernelCmdline(std::string arg) : arg_(std::move(arg)), name_(ArgName(arg_)) {}

  Finding Evaluate(const Context& ctx) const override {
    // A file linked above the root is refused, not taken for absent.
    if (auto host = ctx.Resolve(kGrub); !host) return ErrorFinding(std::string(kGrub) + ": " + host.error().message());
    if (!ctx.Exists(kGrub)) return NotApplicable(std::string(kGrub) + " does not exist");
    auto files = ReadFiles(ctx);
    if (!files) return ErrorFinding(files.error().message());
    auto ev = EvaluateGrub(*files);
    if (!ev.error.empty()) return ErrorFinding(ev.error);
    std::string expected = arg_ + " on the kernel command line (" + kLinux + " or " + kDefault + ")";
    std::string found = Found(ev);
    auto last = LastOf(Cmdline(ev), name_);
    if (last && *last == arg_) return Pass(expected, found);
    if (last) found += "; the kernel would get " + *last;
    return FailWith(expected, found);
  }

  ExpectedVoid Remediate(const Context& ctx, Change& change) const override {
    auto files = ReadFiles(ctx);
    if (!files) return Fail(files.error());
    auto ev = EvaluateGrub(*files);
    if (!ev.error.empty()) return Fail(Errc::kFailedPrecondition, ev.error);
    FileTexts edited = *files;
    // 1. Other values of the same parameter go, wherever they are literal.
    Replace(edited, ev, [&](const Assignment& a, std::vector<std::vector<Seg>>& pieces) {
      (void)a;
      size_t before = pieces.size();
      std::erase_if(pieces, [&](const std::vector<Seg>& p) {
        auto plain = PlainPiece(p);
        return plain && ArgName(*plain) == name_ && *plain != arg_;
      });
      return pieces.size() != before;
    });
    // 2. The argument is appended to the last GRUB_CMDLINE_LINUX unless the result already has it.
    auto ev2 = EvaluateGrub(edited);
    if (!ev2.error.empty()) return Fail(Errc::kInternal, "the edited GRUB configuration does not evaluate: " + ev2.error);
    auto last = LastOf(Cmdline(ev2), name_);
    if (!last || *last != arg_) {
      const Assignment* target = nullptr;
      for (const auto& a : ev2.assignments)
        if (a.name == kLinux) target = &a;
      if (target) {
        const Assignment* t = target;
        Replace(edited, ev2, [&](const Assignment& a, std::vector<std::vector<Seg>>& pieces) {
          if (a.file != t->file || a.begin != t->begin) return false;
          pieces.push_back({Seg{false, arg_}});
          return true;
        });
      } else {
        auto& text = edited.front().second;
        if (!text.empty() && text.back() != '\n') text += '\n';
        text += std::string(kLinux) + "=\"" + arg_ + "\"\n";
      }
    }
    for (size_t i = 0; i < edited.size(); ++i) {
      if (edited[i].second == (*files)[i].second) continue;
      if (auto r = change.WriteFile(ctx, edited[i].first, edited[i].second); !r) return r;
    }
    change.Note("kernel argument " + arg_ + " is in " + kGrub + " (or grub.d); it takes effect after update-grub and a reboot");
    return {};
  }

 private:
  template <typename Fn>
  static void Replace(FileTexts& files, const Evaluation& ev, Fn&& edit) {
    // Back to front in each file, so that earlier byte ranges stay valid.
    for (auto it = ev.assignments.rbegin(); it != ev.assignments.rend(); ++it) {
      auto pieces = Pieces(it->value);
      if (!edit(*it, pieces)) continue;
      for (auto& [file, text] : files)
        if (file == it->file) text.replace(it->begin, it->end - it->begin, Serialize(it->name, pieces));
    }
  }

  std::string Found(const Evaluation& ev) const {
    std::string out;
    for (const char* v : {kLinux, kDefault}) {
      if (!out.empty()) out += "; ";
      if (ev.value.contains(v)) out += std::string(v) + "=\"" + ev.value.at(v) + "\" (" + ev.where.at(v) + ")";
      else out += std::string(v) + " not set";
    }
    return out;
  }

  std::string arg_, name_;
};

}  // namespace

Expected<CheckPtr> MakeKernelCmdline(Fields& f) {
  auto arg = f.String("arg");
  if (!arg) return Fail(arg.error());
  if (arg->empty() || (*arg)[0] == '=' || (*arg)[0] == '-' ||
      arg->find_first_of(" \t\r\n\"'`$\\;&|#") != std::string::npos)
    return Fail(f.Bad("arg", "must be one kernel argument such as slub_debug=FZP or iommu=force (no blanks, quotes or shell characters)"));
  return std::make_shared<KernelCmdline>(*arg);
}

}  // namespace parc::policy::kinds
