#include <catch2/catch.hpp>

#include "inventory_fixture.h"
#include "parc/agent/edid.h"

using parc::agent::ParseEdid;
using parc::test::EdidSpec;
using parc::test::MakeEdid;

TEST_CASE("EDID: manufacturer, product, serial, name, year and size", "[edid]") {
  auto info = ParseEdid(MakeEdid({}));
  REQUIRE(info.has_value());
  CHECK(info->manufacturer == "DEL");
  CHECK(info->product_code == 0xa0b1);
  CHECK(info->serial == "ABC123");
  CHECK(info->name == "DELL U2423");
  CHECK(info->year == 2023);
  CHECK(info->width_cm == 53);
  CHECK(info->height_cm == 30);
}

TEST_CASE("EDID: numeric serial when there is no serial descriptor", "[edid]") {
  EdidSpec spec;
  spec.manufacturer = "SAM";
  spec.serial = "";
  spec.name = "";
  spec.numeric_serial = 0x01020304;
  auto info = ParseEdid(MakeEdid(spec));
  REQUIRE(info.has_value());
  CHECK(info->manufacturer == "SAM");
  CHECK(info->serial == "16909060");
  CHECK(info->name.empty());
  spec.numeric_serial = 0;
  info = ParseEdid(MakeEdid(spec));
  REQUIRE(info.has_value());
  CHECK(info->serial.empty());
}

TEST_CASE("EDID: a 13-character name fills the descriptor without terminator", "[edid]") {
  EdidSpec spec;
  spec.name = "ABCDEFGHIJKLM";
  auto info = ParseEdid(MakeEdid(spec));
  REQUIRE(info.has_value());
  CHECK(info->name == "ABCDEFGHIJKLM");
}

TEST_CASE("EDID: extension blocks after the base block are accepted", "[edid]") {
  auto info = ParseEdid(MakeEdid({}) + std::string(128, '\x02'));
  REQUIRE(info.has_value());
  CHECK(info->name == "DELL U2423");
}

TEST_CASE("EDID: truncated, bad header and bad checksum are rejected", "[edid]") {
  std::string good = MakeEdid({});
  CHECK_FALSE(ParseEdid("").has_value());
  CHECK_FALSE(ParseEdid(good.substr(0, 127)).has_value());
  std::string bad_header = good;
  bad_header[0] = 0x01;
  bad_header[127] = static_cast<char>(bad_header[127] - 1);  // keep the sum right
  CHECK_FALSE(ParseEdid(bad_header).has_value());
  std::string bad_sum = good;
  bad_sum[20] = static_cast<char>(bad_sum[20] ^ 0x10);
  CHECK_FALSE(ParseEdid(bad_sum).has_value());
}
