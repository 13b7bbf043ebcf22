#include <catch2/catch.hpp>

#include "parc/ctl/text.h"

using namespace parc::ctl;

TEST_CASE("DisplayWidth counts code points, not bytes", "[ctl]") {
  CHECK(DisplayWidth("") == 0);
  CHECK(DisplayWidth("abc") == 3);
  CHECK(DisplayWidth("poste élève") == 11);  // two 2-byte letters
  CHECK(DisplayWidth("…") == 1);             // 3 bytes
  CHECK(DisplayWidth("日本") == 2);
}

TEST_CASE("TruncateToWidth cuts on code points and marks the cut", "[ctl]") {
  CHECK(TruncateToWidth("short", 10) == "short");
  CHECK(TruncateToWidth("exactly", 7) == "exactly");
  CHECK(TruncateToWidth("truncated", 6) == "trunc…");
  CHECK(DisplayWidth(TruncateToWidth("truncated", 6)) == 6);
  // Never splits a multi-byte character.
  CHECK(TruncateToWidth("ééééé", 3) == "éé…");
  CHECK(TruncateToWidth("abc", 1) == "…");
  CHECK(TruncateToWidth("abc", 0) == "");
}

TEST_CASE("Printable neutralises terminal control sequences from agents", "[ctl]") {
  CHECK(Printable("pc-01") == "pc-01");
  CHECK(Printable("évier") == "évier");
  CHECK(Printable("a\x1b[31mred") == "a\\x1b[31mred");
  CHECK(Printable("two\nlines\r\t") == "two\\nlines\\r\\t");
  CHECK(Printable("del\x7f") == "del\\x7f");
  CHECK(Printable("c1\xc2\x9b") == "c1\\u009b");     // C1 CSI encoded as UTF-8
  CHECK(Printable("bad\xff\xfe") == "bad\\xff\\xfe");  // invalid UTF-8
  CHECK(Printable("\xc3") == "\\xc3");                // truncated sequence
  CHECK(Printable("\xc0\xaf") == "\\xc0\\xaf");       // overlong '/'
}

TEST_CASE("ShortId, Join, ToUpper, Trim", "[ctl]") {
  CHECK(ShortId("0123456789abcdef") == "01234567");
  CHECK(ShortId("abc") == "abc");
  CHECK(Join({"a", "b", "c"}, ", ") == "a, b, c");
  CHECK(Join({}, ",") == "");
  CHECK(ToUpper("last seen") == "LAST SEEN");
  CHECK(Trim("  x y \t\n") == "x y");
  CHECK(Trim("   ") == "");
}

TEST_CASE("Human values for sizes and times, raw text otherwise", "[ctl]") {
  CHECK(HumanBytes(512) == "512 B");
  CHECK(HumanBytes(1536) == "1.5 KiB");
  CHECK(HumanBytes(16ULL * 1024 * 1024 * 1024) == "16.0 GiB");
  CHECK(HumanFieldValue("total_bytes", "1073741824") == "1.0 GiB");
  CHECK(HumanFieldValue("total_bytes", "unknown") == "unknown");
  CHECK(HumanFieldValue("boot_time", "86400") == "1970-01-02 00:00:00Z");
  CHECK(HumanFieldValue("version", "1024") == "1024");
}
