// Windows rule kinds (registry, service_start, audit_policy). Every field is
// validated now, so that a Windows baseline is known to be well formed
// before any Windows machine runs it. Checking and remediating belong to the
// Windows platform code, which is not written yet: on a Windows root these
// rules say so as an error (never a silent pass), on any other root they do
// not apply.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include "kinds.h"

namespace parc::policy::kinds {

namespace {

constexpr const char* kNotWritten = "the Windows platform code is not written yet";

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool HasControlChar(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

class WindowsCheck : public Check {
 public:
  Finding Evaluate(const Context& ctx) const override {
    if (!ctx.os().windows) return NotApplicable("Windows rule");
    return {Status::kError, Describe(), "", std::string(kNotWritten) + ": cannot check this rule"};
  }
  std::string CannotRemediate(const Context& ctx) const override {
    (void)ctx;
    return kNotWritten;
  }
  ExpectedVoid Remediate(const Context& ctx, Change& change) const override {
    (void)ctx;
    (void)change;
    return Fail(Errc::kFailedPrecondition, kNotWritten);
  }
  // What the rule wants, for reports ("HKLM\...\Parameters SMB1 = 0 (REG_DWORD)").
  virtual std::string Describe() const = 0;
};

// ---- registry -------------------------------------------------------------------

struct RegistrySpec {
  std::string hive, path, value_name, type, match = "exact";
  bool absent = false;
  std::string data;                       // REG_SZ, or the number as written
  uint64_t number = 0;                    // REG_DWORD / REG_QWORD
  std::vector<std::string> multi;         // REG_MULTI_SZ
};

class Registry final : public WindowsCheck {
 public:
  explicit Registry(RegistrySpec s) : s_(std::move(s)) {}
  std::string Describe() const override {
    std::string where = s_.hive + "\\" + s_.path + " " + s_.value_name;
    if (s_.absent) return where + " absent";
    std::string op = s_.match == "min" ? " >= " : s_.match == "max" ? " <= " : " = ";
    std::string data;
    if (s_.type == "REG_MULTI_SZ") {
      for (const auto& m : s_.multi) data += (data.empty() ? "" : ", ") + ("\"" + m + "\"");
      data = "[" + data + "]";
    } else if (s_.type == "REG_SZ") {
      data = "\"" + s_.data + "\"";
    } else {
      data = std::to_string(s_.number);
    }
    return where + op + data + " (" + s_.type + ")";
  }

 private:
  RegistrySpec s_;
};

// Decimal or 0x hexadecimal, within the type's width.
std::optional<uint64_t> ParseRegNumber(const std::string& text, bool qword) {
  std::string_view s = text;
  int base = 10;
  if (s.starts_with("0x") || s.starts_with("0X")) {
    s.remove_prefix(2);
    base = 16;
  }
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  if (!qword && v > 0xffffffffULL) return std::nullopt;
  return v;
}

ExpectedVoid ValidateKeyPath(Fields& f, const std::string& path) {
  if (path.empty()) return Fail(f.Bad("path", "must not be empty"));
  if (path.find('/') != std::string::npos) return Fail(f.Bad("path", "registry paths use backslashes (SYSTEM\\CurrentControlSet\\...)"));
  if (path.front() == '\\' || path.back() == '\\' || path.find("\\\\") != std::string::npos)
    return Fail(f.Bad("path", "must not start or end with a backslash nor hold an empty key name"));
  if (HasControlChar(path)) return Fail(f.Bad("path", "must not contain control characters"));
  std::string first = Upper(path.substr(0, path.find('\\')));
  if (first.starts_with("HKEY_") || first == "HKLM" || first == "HKCU" || first == "HKU" || first == "HKCR")
    return Fail(f.Bad("path", "starts with a hive; give the hive in 'hive' and the path below it"));
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('\\', start);
    if (end == std::string::npos) end = path.size();
    if (end - start > 255) return Fail(f.Bad("path", "a key name is longer than 255 characters"));
    start = end + 1;
  }
  return {};
}

// ---- service_start ----------------------------------------------------------------

class ServiceStart final : public WindowsCheck {
 public:
  ServiceStart(std::string service, std::string start) : service_(std::move(service)), start_(std::move(start)) {}
  std::string Describe() const override { return "service " + service_ + " start = " + start_; }

 private:
  std::string service_, start_;
};

// ---- audit_policy -----------------------------------------------------------------

// Advanced audit policy subcategories as auditpol names them in English, with
// their GUIDs: the platform code should set them by GUID, since subcategory
// names are translated on non-English Windows.
struct Subcategory {
  const char* name;
  const char* guid;
};
constexpr Subcategory kSubcategories[] = {
    {"Security State Change", "0CCE9210-69AE-11D9-BED3-505054503030"},
    {"Security System Extension", "0CCE9211-69AE-11D9-BED3-505054503030"},
    {"System Integrity", "0CCE9212-69AE-11D9-BED3-505054503030"},
    {"IPsec Driver", "0CCE9213-69AE-11D9-BED3-505054503030"},
    {"Other System Events", "0CCE9214-69AE-11D9-BED3-505054503030"},
    {"Logon", "0CCE9215-69AE-11D9-BED3-505054503030"},
    {"Logoff", "0CCE9216-69AE-11D9-BED3-505054503030"},
    {"Account Lockout", "0CCE9217-69AE-11D9-BED3-505054503030"},
    {"IPsec Main Mode", "0CCE9218-69AE-11D9-BED3-505054503030"},
    {"IPsec Quick Mode", "0CCE9219-69AE-11D9-BED3-505054503030"},
    {"IPsec Extended Mode", "0CCE921A-69AE-11D9-BED3-505054503030"},
    {"Special Logon", "0CCE921B-69AE-11D9-BED3-505054503030"},
    {"Other Logon/Logoff Events", "0CCE921C-69AE-11D9-BED3-505054503030"},
    {"File System", "0CCE921D-69AE-11D9-BED3-505054503030"},
    {"Registry", "0CCE921E-69AE-11D9-BED3-505054503030"},
    {"Kernel Object", "0CCE921F-69AE-11D9-BED3-505054503030"},
    {"SAM", "0CCE9220-69AE-11D9-BED3-505054503030"},
    {"Certification Services", "0CCE9221-69AE-11D9-BED3-505054503030"},
    {"Application Generated", "0CCE9222-69AE-11D9-BED3-505054503030"},
    {"Handle Manipulation", "0CCE9223-69AE-11D9-BED3-505054503030"},
    {"File Share", "0CCE9224-69AE-11D9-BED3-505054503030"},
    {"Filtering Platform Packet Drop", "0CCE9225-69AE-11D9-BED3-505054503030"},
    {"Filtering Platform Connection", "0CCE9226-69AE-11D9-BED3-505054503030"},
    {"Other Object Access Events", "0CCE9227-69AE-11D9-BED3-505054503030"},
    {"Sensitive Privilege Use", "0CCE9228-69AE-11D9-BED3-505054503030"},
    {"Non Sensitive Privilege Use", "0CCE9229-69AE-11D9-BED3-505054503030"},
    {"Other Privilege Use Events", "0CCE922A-69AE-11D9-BED3-505054503030"},
    {"Process Creation", "0CCE922B-69AE-11D9-BED3-505054503030"},
    {"Process Termination", "0CCE922C-69AE-11D9-BED3-505054503030"},
    {"DPAPI Activity", "0CCE922D-69AE-11D9-BED3-505054503030"},
    {"RPC Events", "0CCE922E-69AE-11D9-BED3-505054503030"},
    {"Audit Policy Change", "0CCE922F-69AE-11D9-BED3-505054503030"},
    {"Authentication Policy Change", "0CCE9230-69AE-11D9-BED3-505054503030"},
    {"Authorization Policy Change", "0CCE9231-69AE-11D9-BED3-505054503030"},
    {"MPSSVC Rule-Level Policy Change", "0CCE9232-69AE-11D9-BED3-505054503030"},
    {"Filtering Platform Policy Change", "0CCE9233-69AE-11D9-BED3-505054503030"},
    {"Other Policy Change Events", "0CCE9234-69AE-11D9-BED3-505054503030"},
    {"User Account Management", "0CCE9235-69AE-11D9-BED3-505054503030"},
    {"Computer Account Management", "0CCE9236-69AE-11D9-BED3-505054503030"},
    {"Security Group Management", "0CCE9237-69AE-11D9-BED3-505054503030"},
    {"Distribution Group Management", "0CCE9238-69AE-11D9-BED3-505054503030"},
    {"Application Group Management", "0CCE9239-69AE-11D9-BED3-505054503030"},
    {"Other Account Management Events", "0CCE923A-69AE-11D9-BED3-505054503030"},
    {"Directory Service Access", "0CCE923B-69AE-11D9-BED3-505054503030"},
    {"Directory Service Changes", "0CCE923C-69AE-11D9-BED3-505054503030"},
    {"Directory Service Replication", "0CCE923D-69AE-11D9-BED3-505054503030"},
    {"Detailed Directory Service Replication", "0CCE923E-69AE-11D9-BED3-505054503030"},
    {"Credential Validation", "0CCE923F-69AE-11D9-BED3-505054503030"},
    {"Kerberos Service Ticket Operations", "0CCE9240-69AE-11D9-BED3-505054503030"},
    {"Other Account Logon Events", "0CCE9241-69AE-11D9-BED3-505054503030"},
    {"Kerberos Authentication Service", "0CCE9242-69AE-11D9-BED3-505054503030"},
    {"Network Policy Server", "0CCE9243-69AE-11D9-BED3-505054503030"},
    {"Detailed File Share", "0CCE9244-69AE-11D9-BED3-505054503030"},
    {"Removable Storage", "0CCE9245-69AE-11D9-BED3-505054503030"},
    {"Central Policy Staging", "0CCE9246-69AE-11D9-BED3-505054503030"},
    {"User / Device Claims", "0CCE9247-69AE-11D9-BED3-505054503030"},
    {"Plug and Play Events", "0CCE9248-69AE-11D9-BED3-505054503030"},
    {"Group Membership", "0CCE9249-69AE-11D9-BED3-505054503030"},
    {"Token Right Adjusted Events", "0CCE924A-69AE-11D9-BED3-505054503030"},
};

class AuditPolicy final : public WindowsCheck {
 public:
  AuditPolicy(const Subcategory& sub, std::string setting) : sub_(sub), setting_(std::move(setting)) {}
  std::string Describe() const override {
    if (setting_ == "no_auditing") return "audit policy " + std::string(sub_.name) + " {" + sub_.guid + "}: no auditing";
    return "audit policy " + std::string(sub_.name) + " {" + sub_.guid + "}: at least " + setting_;
  }

 private:
  Subcategory sub_;
  std::string setting_;
};

}  // namespace

Expected<CheckPtr> MakeRegistry(Fields& f) {
  RegistrySpec s;
  auto hive = f.OneOf("hive", {"HKLM", "HKCU", "HKU"});
  if (!hive) return Fail(hive.error());
  s.hive = *hive;
  auto path = f.String("path");
  if (!path) return Fail(path.error());
  if (auto v = ValidateKeyPath(f, *path); !v) return Fail(v.error());
  s.path = *path;
  auto name = f.String("value_name");
  if (!name) return Fail(name.error());
  if (name->empty()) return Fail(f.Bad("value_name", "must name a value (the unnamed default value is not supported)"));
  if (name->size() > 16383 || HasControlChar(*name)) return Fail(f.Bad("value_name", "must be at most 16383 printable characters"));
  s.value_name = *name;
  auto absent = f.BoolOr("absent", false);
  if (!absent) return Fail(absent.error());
  s.absent = *absent;
  if (s.absent) {
    for (const char* k : {"type", "data", "match"})
      if (f.Has(k)) return Fail(f.Bad(k, "not used with absent = true (the value must not exist)"));
    return std::make_shared<Registry>(std::move(s));
  }
  auto type = f.OneOf("type", {"REG_DWORD", "REG_SZ", "REG_MULTI_SZ", "REG_QWORD"});
  if (!type) return Fail(type.error());
  s.type = *type;
  if (!f.Has("data")) return Fail(f.Bad("data", "is required"));
  if (s.type == "REG_MULTI_SZ") {
    auto multi = f.Strings("data");
    if (!multi) return Fail(f.Bad("data", "must be an array of strings for REG_MULTI_SZ"));
    for (const auto& m : *multi)
      if (m.empty() || m.find('\0') != std::string::npos)
        return Fail(f.Bad("data", "REG_MULTI_SZ strings must not be empty (an empty string ends the list)"));
    s.multi = *multi;
  } else {
    auto data = f.String("data");
    if (!data) return Fail(data.error());
    s.data = *data;
    if (s.type == "REG_DWORD" || s.type == "REG_QWORD") {
      auto n = ParseRegNumber(s.data, s.type == "REG_QWORD");
      if (!n)
        return Fail(f.Bad("data", "'" + s.data + "' is not a " + s.type + " (decimal or 0x hex, at most " +
                                      (s.type == "REG_QWORD" ? "0xFFFFFFFFFFFFFFFF" : "0xFFFFFFFF") + ")"));
      s.number = *n;
    } else if (s.data.find('\0') != std::string::npos) {
      return Fail(f.Bad("data", "must not contain a NUL character"));
    }
  }
  auto match = f.OneOf("match", {"exact", "min", "max"}, std::string("exact"));
  if (!match) return Fail(match.error());
  s.match = *match;
  if (s.match != "exact" && s.type != "REG_DWORD" && s.type != "REG_QWORD")
    return Fail(f.Bad("match", "min and max compare numbers: type must be REG_DWORD or REG_QWORD"));
  return std::make_shared<Registry>(std::move(s));
}

Expected<CheckPtr> MakeServiceStart(Fields& f) {
  auto service = f.String("service");
  if (!service) return Fail(service.error());
  if (service->empty() || service->size() > 256 ||
      !std::all_of(service->begin(), service->end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == '$'; }))
    return Fail(f.Bad("service", "must be a service key name such as mrxsmb10 (letters, digits, '_', '-', '.', '$')"));
  auto start = f.OneOf("start", {"disabled", "manual", "automatic", "automatic_delayed"});
  if (!start) return Fail(start.error());
  return std::make_shared<ServiceStart>(*service, *start);
}

Expected<CheckPtr> MakeAuditPolicy(Fields& f) {
  auto sub = f.String("subcategory");
  if (!sub) return Fail(sub.error());
  const Subcategory* found = nullptr;
  for (const auto& s : kSubcategories)
    if (Upper(s.name) == Upper(CollapseSpaces(*sub))) found = &s;
  if (!found)
    return Fail(f.Bad("subcategory", "'" + *sub + "' is not an advanced audit policy subcategory (English name as 'auditpol /list /subcategory:*' shows it, such as Logon or Process Creation)"));
  auto setting = f.OneOf("setting", {"no_auditing", "success", "failure", "success_and_failure"});
  if (!setting) return Fail(setting.error());
  return std::make_shared<AuditPolicy>(*found, *setting);
}

}  // namespace parc::policy::kinds
