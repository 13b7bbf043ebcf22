#pragma once
// Canonical JSON written straight into a string: compact, object keys sorted
// bytewise, strings escaped exactly as nlohmann::json::dump(-1, ' ', false,
// error_handler_t::replace) escapes them, integers in plain decimal. That is
// the form Parc signs (package manifests, image manifests and index lines);
// producing it without first building a json document makes signing, and
// checking that what was parsed is what was signed, several times cheaper on
// large manifests. Byte-identical to nlohmann's dump of the same document
// (tests/common/canonical_json_test.cc).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parc::cjson {

// A JSON string literal of s (quotes included).
void AppendString(std::string& out, std::string_view s);

// An object: fields in any order, written sorted by key. Keys must outlive
// the Object (literals, or strings the caller keeps); each key once.
class Object {
 public:
  Object& Str(std::string_view key, std::string_view value);
  Object& Int(std::string_view key, int64_t value);
  Object& UInt(std::string_view key, uint64_t value);
  Object& Bool(std::string_view key, bool value);
  // value: canonical JSON already (an array or object built with this file).
  Object& Raw(std::string_view key, std::string_view value);
  std::string Done() const;
  void AppendTo(std::string& out) const;

 private:
  struct Field {
    std::string_view key;
    size_t begin, end;  // the value in values_
  };
  Object& Add(std::string_view key, size_t begin);
  std::vector<Field> fields_;
  std::string values_;
};

// An array of canonical JSON values.
class Array {
 public:
  Array& Raw(std::string_view value);
  Array& Str(std::string_view value);
  Array& Object(const cjson::Object& o);
  std::string Done() const { return out_.empty() ? "[]" : out_ + "]"; }

 private:
  void Next() { out_ += out_.empty() ? '[' : ','; }
  std::string out_;
};

}  // namespace parc::cjson
