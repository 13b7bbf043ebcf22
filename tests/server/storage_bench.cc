// Throughput of the SQLite parc database, measured against raw SQLite doing
// the bare minimum with the same rows. Runs alternate and medians are
// reported (two shared cores: absolute times are noisy, ratios less so).
#include <algorithm>
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "parc/common/sqlite.h"
#include "storage_backends.h"

using namespace parc;
using namespace parc::server;
using namespace parc::server::test;

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

inventory::ItemMap SoftwareOnly(int n) {
  inventory::ItemMap items;
  for (auto& [id, f] : MakeInventory(n))
    if (id.first == "software") items[id] = f;
  return items;
}

}  // namespace

TEST_CASE("full inventory ingest vs raw SQLite batch insert", "[.bench]") {
  constexpr int kItems = 2000, kRuns = 9;
  parc::test::TempDir dir;
  auto items = SoftwareOnly(kItems);

  auto raw = Ok(sql::Database::Open(dir / "raw.db"));
  Ok(raw.Exec("CREATE TABLE inventory_items (host_id TEXT NOT NULL, section TEXT NOT NULL, item_key TEXT NOT NULL, "
              "fields TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (host_id, section, item_key)) WITHOUT ROWID"));
  auto store = Ok(OpenSqliteStorage((dir / "parc.db").string()));
  for (int r = 0; r < kRuns; ++r) Enroll(*store, "host-" + std::to_string(r), "pc");

  // The raw side gets its rows ready-made: only the inserts are timed.
  std::vector<std::string> json;
  for (const auto& [id, fields] : items) json.push_back(nlohmann::json(fields).dump());
  std::vector<double> raw_times, parc_times;
  for (int r = 0; r < kRuns; ++r) {
    const std::string host = "host-" + std::to_string(r);
    {
      auto t0 = std::chrono::steady_clock::now();
      Ok(raw.Transaction([&]() -> ExpectedVoid {
        auto st = raw.Cached("INSERT INTO inventory_items VALUES (?1, ?2, ?3, ?4, ?5)");
        if (!st) return Fail(st.error());
        size_t i = 0;
        for (const auto& [id, fields] : items) {
          (*st)->Reset();
          (*st)->Bind(1, host).Bind(2, id.first).Bind(3, id.second).Bind(4, json[i++]).Bind(5, 1);
          if (auto e = (*st)->Run(); !e) return e;
        }
        return {};
      }));
      raw_times.push_back(Seconds(t0));
    }
    {
      ReportIn report = FullReport(host, "r1", items);  // as received: built before the clock starts
      auto t0 = std::chrono::steady_clock::now();
      auto out = Ok(store->ApplyReport(std::move(report)));
      parc_times.push_back(Seconds(t0));
      REQUIRE(out.history_rows == static_cast<size_t>(kItems));
    }
  }
  // A re-report with one changed package (the common case once a host is known).
  std::vector<double> rereport_times;
  for (int r = 0; r < kRuns; ++r) {
    auto next = items;
    next[{"software", "package-1|amd64"}]["version"] = "run-" + std::to_string(r);
    ReportIn report = FullReport("host-" + std::to_string(r), "r2", std::move(next));
    auto t0 = std::chrono::steady_clock::now();
    Ok(store->ApplyReport(std::move(report)));
    rereport_times.push_back(Seconds(t0));
  }
  const double raw_ms = Median(raw_times) * 1000, parc_ms = Median(parc_times) * 1000;
  std::printf("full ingest of %d items: raw SQLite %.2f ms, Parc %.2f ms (incl. %d history rows), ratio %.2fx; "
              "re-report with 1 change %.2f ms\n",
              kItems, raw_ms, parc_ms, kItems, raw_ms / parc_ms, Median(rereport_times) * 1000);
  CHECK(raw_ms / parc_ms >= 0.25);
}

TEST_CASE("delta report throughput", "[.bench]") {
  constexpr int kHosts = 200, kDeltasPerHost = 50;
  parc::test::TempDir dir;
  auto store = Ok(OpenSqliteStorage((dir / "parc.db").string()));
  std::vector<inventory::ItemMap> current(kHosts);
  for (int h = 0; h < kHosts; ++h) {
    const std::string id = "host-" + std::to_string(h);
    Enroll(*store, id, id);
    current[h] = MakeInventory(50);
    Ok(store->ApplyReport(FullReport(id, "full", current[h])));
  }
  // Built beforehand: the agents' side of the work is not the server's.
  std::vector<ReportIn> reports;
  for (int d = 0; d < kDeltasPerHost; ++d)
    for (int h = 0; h < kHosts; ++h) {
      auto next = current[h];
      next[{"software", "package-" + std::to_string(d % 50) + "|amd64"}]["version"] = "v" + std::to_string(d);
      next[{"filesystems", "/"}]["free_bytes"] = std::to_string(d);
      next[{"software", "new-" + std::to_string(d) + "|all"}] = {{"name", "new"}, {"version", "1"}};
      reports.push_back(DeltaReport("host-" + std::to_string(h), "d" + std::to_string(d), inventory::Diff(current[h], next)));
      current[h] = std::move(next);
    }
  std::atomic<int> bad{0};
  auto t0 = std::chrono::steady_clock::now();
  for (auto& r : reports)
    store->ApplyReportAsync(std::move(r), [&](Expected<ReportOutcome> out) {
      if (!out || out->full_wanted) ++bad;
    });
  store->Flush();
  const double s = Seconds(t0);
  std::printf("%d delta reports (3 items each) in %.3f s: %.0f reports/s\n", kHosts * kDeltasPerHost, s,
              kHosts * kDeltasPerHost / s);
  CHECK(bad == 0);
  CHECK(kHosts * kDeltasPerHost / s >= 2000);
}
