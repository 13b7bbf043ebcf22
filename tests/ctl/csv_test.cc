#include <catch2/catch.hpp>

#include "parc/ctl/csv.h"

using namespace parc::ctl;

TEST_CASE("CsvField quotes only what RFC 4180 requires", "[ctl]") {
  CHECK(CsvField("plain") == "plain");
  CHECK(CsvField("") == "");
  CHECK(CsvField(" spaced ") == " spaced ");
  CHECK(CsvField("a,b") == "\"a,b\"");
  CHECK(CsvField("say \"hi\"") == "\"say \"\"hi\"\"\"");
  CHECK(CsvField("two\nlines") == "\"two\nlines\"");
  CHECK(CsvField("cr\r") == "\"cr\r\"");
  CHECK(CsvField("é,ü") == "\"é,ü\"");
}

TEST_CASE("CsvRecord joins with commas and ends with CRLF", "[ctl]") {
  CHECK(CsvRecord({"host_id", "hostname", "a,b", ""}) == "host_id,hostname,\"a,b\",\r\n");
  CHECK(CsvRecord({}) == "\r\n");
}
