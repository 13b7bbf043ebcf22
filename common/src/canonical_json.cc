#include "parc/common/canonical_json.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace parc::cjson {

void AppendString(std::string& out, std::string_view s) {
  // Printable ASCII other than '"' and '\' is written as it is; anything
  // else (escapes, UTF-8, bytes that are not UTF-8) is left to nlohmann, so
  // the rare cases are exactly its output by construction.
  bool plain = true;
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      plain = false;
      break;
    }
  if (!plain) {
    out += nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return;
  }
  out += '"';
  out.append(s);
  out += '"';
}

Object& Object::Add(std::string_view key, size_t begin) {
  fields_.push_back({key, begin, values_.size()});
  return *this;
}
Object& Object::Str(std::string_view key, std::string_view value) {
  size_t begin = values_.size();
  AppendString(values_, value);
  return Add(key, begin);
}
Object& Object::Int(std::string_view key, int64_t value) {
  size_t begin = values_.size();
  values_ += std::to_string(value);
  return Add(key, begin);
}
Object& Object::UInt(std::string_view key, uint64_t value) {
  size_t begin = values_.size();
  values_ += std::to_string(value);
  return Add(key, begin);
}
Object& Object::Bool(std::string_view key, bool value) {
  size_t begin = values_.size();
  values_ += value ? "true" : "false";
  return Add(key, begin);
}
Object& Object::Raw(std::string_view key, std::string_view value) {
  size_t begin = values_.size();
  values_.append(value);
  return Add(key, begin);
}

void Object::AppendTo(std::string& out) const {
  std::vector<const Field*> sorted;
  sorted.reserve(fields_.size());
  for (const auto& f : fields_) sorted.push_back(&f);
  // Bytewise, as nlohmann's std::map<std::string, ...> orders object keys.
  std::sort(sorted.begin(), sorted.end(), [](const Field* a, const Field* b) { return a->key < b->key; });
  out += '{';
  bool first = true;
  for (const Field* f : sorted) {
    if (!first) out += ',';
    first = false;
    AppendString(out, f->key);
    out += ':';
    out.append(values_, f->begin, f->end - f->begin);
  }
  out += '}';
}

std::string Object::Done() const {
  std::string out;
  out.reserve(values_.size() + fields_.size() * 16 + 2);
  AppendTo(out);
  return out;
}

Array& Array::Raw(std::string_view value) {
  Next();
  out_.append(value);
  return *this;
}
Array& Array::Str(std::string_view value) {
  Next();
  AppendString(out_, value);
  return *this;
}
Array& Array::Object(const cjson::Object& o) {
  Next();
  o.AppendTo(out_);
  return *this;
}

}  // namespace parc::cjson
