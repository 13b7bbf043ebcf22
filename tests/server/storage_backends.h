// The parc database backends the contract tests run against, and helpers to
// build enrolled hosts and inventories. To add a backend (PostgreSQL), add an
// entry to Backends(): every contract test then runs against it too.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "parc/common/hash.h"
#include "parc/server/storage.h"
#include "sqlite_storage_testing.h"
#include "test_support.h"

namespace parc::server::test {

struct Backend {
  std::string name;
  // Opens the database kept under `dir`, creating it the first time; opening
  // again with the same dir reopens the same data (a server restart).
  std::function<Expected<std::unique_ptr<Storage>>(const std::filesystem::path& dir)> open;
  // Makes the next large write fail as a full disk would; extra <= 0 lifts it.
  // Empty when the backend cannot simulate it.
  std::function<ExpectedVoid(Storage&, int64_t extra_pages)> limit_size;
};

inline std::vector<Backend> Backends() {
  return {
      {"sqlite",
       [](const std::filesystem::path& dir) { return OpenSqliteStorage((dir / "parc.db").string()); },
       [](Storage& s, int64_t extra) { return LimitDatabaseSizeForTesting(s, extra); }},
  };
}

template <typename T>
T Ok(Expected<T> r) {
  if (!r) FAIL("unexpected error: " << r.error().String());
  return std::move(*r);
}
inline void Ok(ExpectedVoid r) {
  if (!r) FAIL("unexpected error: " << r.error().String());
}

// One open database in a fresh directory.
class Db {
 public:
  explicit Db(Backend backend) : backend_(std::move(backend)) { Reopen(); }
  void Reopen() {
    store_.reset();
    store_ = Ok(backend_.open(dir_.path()));
  }
  void Close() { store_.reset(); }
  Storage* operator->() const { return store_.get(); }
  Storage& operator*() const { return *store_; }
  const Backend& backend() const { return backend_; }

 private:
  Backend backend_;
  parc::test::TempDir dir_{"parc-storage"};
  std::unique_ptr<Storage> store_;
};

// Every test case starts with this: it runs once per backend.
#define FOR_EACH_BACKEND(db)                                                        \
  auto db##_backend = GENERATE(from_range(::parc::server::test::Backends()));       \
  INFO("backend: " << db##_backend.name);                                           \
  ::parc::server::test::Db db(db##_backend)

inline TokenRecord MakeToken(const std::string& id, const std::string& secret, const std::string& group = "",
                             int64_t expires_at = 100000) {
  TokenRecord t;
  t.id = id;
  t.secret_hash = Sha256Hex(secret);
  t.group = group;
  t.comment = "test";
  t.created_at = 1;
  t.expires_at = expires_at;
  return t;
}

inline NewHost MakeHost(const std::string& id, const std::string& hostname, std::vector<std::string> identity = {},
                        int64_t at = 1000) {
  NewHost h;
  h.id = id;
  h.hostname = hostname;
  h.cert_fingerprint = Sha256Hex("cert-" + id);
  h.cert_expires_at = at + 86400 * 365;
  h.platform_os = "linux";
  h.platform_arch = "x86_64";
  h.distribution = "debian";
  h.identity = std::move(identity);
  h.enrolled_at = at;
  return h;
}

inline HostRecord Enroll(Storage& s, const std::string& id, const std::string& hostname,
                         std::vector<std::string> identity = {}, const std::string& group = "", int64_t at = 1000) {
  Ok(s.CreateToken(MakeToken("tok-" + id, "secret-" + id, group)));
  return Ok(s.EnrollHost("tok-" + id, Sha256Hex("secret-" + id), MakeHost(id, hostname, std::move(identity), at)));
}

// A plausible workstation inventory with `packages` software items.
inline inventory::ItemMap MakeInventory(int packages, const std::string& uuid = "4c4c4544-0042-3510-8051-b4c04f4e3232") {
  inventory::ItemMap items;
  items[{"os", ""}] = {{"id", "debian"}, {"pretty_name", "Debian GNU/Linux 12 (bookworm)"}, {"hostname", "pc1"},
                       {"boot_time", "1700000000"}};
  items[{"hardware", ""}] = {{"system_uuid", uuid}, {"serial_number", "SN-" + uuid.substr(0, 8)},
                             {"board_serial", "To be filled by O.E.M."}, {"system_vendor", "Dell Inc."}};
  items[{"memory", ""}] = {{"total_bytes", "16000000000"}, {"available_bytes", "8000000000"}};
  items[{"interfaces", "eth0"}] = {{"name", "eth0"}, {"mac", "00:1a:2b:" + uuid.substr(0, 2) + ":" + uuid.substr(2, 2) + ":" + uuid.substr(4, 2)},
                                   {"type", "ether"},
                                   {"addresses", "192.168.1.10/24"}, {"speed_mbps", "1000"}};
  items[{"interfaces", "lo"}] = {{"name", "lo"}, {"type", "loopback"}, {"addresses", "127.0.0.1/8"}};
  items[{"filesystems", "/"}] = {{"mount_point", "/"}, {"type", "ext4"}, {"size_bytes", "100000000000"},
                                 {"free_bytes", "50000000000"}};
  items[{"disks", "sda"}] = {{"name", "sda"}, {"serial", "WD-" + uuid.substr(0, 8)}, {"size_bytes", "500107862016"}};
  for (int i = 0; i < packages; ++i) {
    std::string name = "package-" + std::to_string(i);
    items[{"software", name + "|amd64"}] = {{"name", name},
                                            {"architecture", "amd64"},
                                            {"version", "1." + std::to_string(i) + "-1"},
                                            {"source", "dpkg"},
                                            {"summary", "the \"" + name + "\" package, éàü"},
                                            {"installed_size_bytes", std::to_string(1000 + i)},
                                            {"vendor", "Debian <debian@example.org>"}};
  }
  return items;
}

inline ReportIn FullReport(const std::string& host, const std::string& report_id, inventory::ItemMap items,
                           int64_t at = 2000) {
  ReportIn r;
  r.host_id = host;
  r.report_id = report_id;
  r.received_at = at;
  r.full = std::move(items);
  return r;
}

inline ReportIn DeltaReport(const std::string& host, const std::string& report_id, v1::InventoryDelta delta,
                            int64_t at = 2000) {
  ReportIn r;
  r.host_id = host;
  r.report_id = report_id;
  r.received_at = at;
  r.delta = std::move(delta);
  return r;
}

// What is stored, in the generic form, for comparisons.
inline inventory::ItemMap Stored(Storage& s, const std::string& host) {
  inventory::ItemMap out;
  for (auto& item : Ok(s.GetInventory(host, ""))) out[{item.section, item.key}] = item.fields;
  return out;
}

}  // namespace parc::server::test
