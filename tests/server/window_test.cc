// Maintenance windows: parsing and membership, including windows that cross midnight.
#include <catch2/catch.hpp>

#include "window.h"

using namespace parc::server;

TEST_CASE("a Saturday night window covers Saturday evening and Sunday morning only", "[window]") {
  auto w = ParseWindow("Sat 22:00-06:00");
  REQUIRE(w);
  CHECK(w->Contains(6, 22 * 60));        // Sat 22:00
  CHECK(w->Contains(6, 23 * 60 + 59));   // Sat 23:59
  CHECK(w->Contains(0, 5 * 60 + 59));    // Sun 05:59
  CHECK_FALSE(w->Contains(0, 6 * 60));   // Sun 06:00
  CHECK_FALSE(w->Contains(6, 21 * 60));  // Sat 21:00
  CHECK_FALSE(w->Contains(5, 23 * 60));  // Fri 23:00
  CHECK_FALSE(w->Contains(6, 3 * 60));   // Sat 03:00 belongs to a Friday window
}

TEST_CASE("day ranges, lists and daily windows", "[window]") {
  auto weekdays = ParseWindow("Mon-Fri 12:00-13:30");
  REQUIRE(weekdays);
  for (int d = 1; d <= 5; ++d) CHECK(weekdays->Contains(d, 12 * 60 + 15));
  CHECK_FALSE(weekdays->Contains(0, 12 * 60 + 15));
  CHECK_FALSE(weekdays->Contains(3, 13 * 60 + 30));
  auto wrap = ParseWindow("Fri-Mon 00:00-24:00");
  REQUIRE(wrap);
  CHECK(wrap->Contains(5, 0));
  CHECK(wrap->Contains(0, 600));
  CHECK(wrap->Contains(1, 1439));
  CHECK_FALSE(wrap->Contains(2, 600));
  auto list = ParseWindow("sat,sun 08:00-09:00");
  REQUIRE(list);
  CHECK(list->Contains(0, 8 * 60));
  CHECK_FALSE(list->Contains(1, 8 * 60));
  auto daily = ParseWindow("daily 23:00-01:00");
  REQUIRE(daily);
  for (int d = 0; d < 7; ++d) CHECK(daily->Contains(d, 30));
}

TEST_CASE("malformed windows are refused with an example", "[window]") {
  for (const char* bad : {"", "Sat", "Sat 22:00", "Xyz 10:00-11:00", "Sat 25:00-06:00", "Sat 10:00-10:00",
                          "Sat 10:60-11:00", "Sat 10:00-24:30"}) {
    auto w = ParseWindow(bad);
    INFO(bad);
    REQUIRE_FALSE(w);
    CHECK(w.error().message().find("Sat 22:00-06:00") != std::string::npos);
  }
}
