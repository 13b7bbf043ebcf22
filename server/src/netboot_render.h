// Unattended installation: validation of the per-host values, answer file
// templates with named variables escaped for their target format, iPXE
// scripts and the site dnsmasq configuration. No I/O and no gRPC: the boot
// server, the NetbootService and the tests share it. docs/netboot.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "parc/common/error.h"

namespace parc::netboot {

// How a value is made safe for the text it lands in.
enum class Format {
  kPreseed,  // debconf lines run partly by sh: a whitelist of characters, nothing to escape
  kXml,      // autounattend.xml: & < > " ' as entities
  kYaml,     // cloud-init: every value becomes a double-quoted YAML scalar
  kIpxe,     // iPXE scripts: a whitelist (iPXE expands ${...} and splits on spaces)
};

struct OsInfo {
  std::string name;         // debian12, windows11, ubuntu-cloud
  std::string title;        // for people
  std::string answer_file;  // preseed.cfg, autounattend.xml, user-data
  Format format;
  std::string template_file;  // installer/netboot/<this>
};
const std::vector<OsInfo>& SupportedOs();
const OsInfo* FindOs(std::string_view name);
std::string SupportedOsNames();  // "debian12, windows11, ubuntu-cloud"

// --- values -----------------------------------------------------------------
// "AA-BB-CC-DD-EE-FF" or "aa:bb:..." -> "aa:bb:cc:dd:ee:ff".
Expected<std::string> NormalizeMac(std::string_view mac);
// RFC 1123 host name (labels of letters, digits, '-', not starting or ending
// with '-'), stored lower case; at most max_length characters in all.
Expected<std::string> NormalizeHostname(std::string_view name, size_t max_length = 253);
ExpectedVoid ValidateGroup(std::string_view group);
ExpectedVoid ValidateDisk(std::string_view disk);          // /dev/sda, /dev/nvme0n1, /dev/disk/by-id/...
ExpectedVoid ValidateLocale(std::string_view locale);      // ll_CC[.UTF-8][@variant]
ExpectedVoid ValidateKeyboard(std::string_view keyboard);  // fr, us, de, ch-fr ...
ExpectedVoid ValidateTimezone(std::string_view tz);        // Europe/Paris, UTC
ExpectedVoid ValidateName(std::string_view what, std::string_view name);  // asset and file names
ExpectedVoid ValidateCmdline(std::string_view cmdline);    // extra kernel arguments
ExpectedVoid ValidateInterface(std::string_view name);
ExpectedVoid ValidateIpv4(std::string_view what, std::string_view address);

// Windows names for what the machine gets: "fr-FR", "Romance Standard Time",
// disk number from the Linux name (/dev/sda and /dev/nvme0n1 -> 0).
std::string WindowsLocale(std::string_view locale);
Expected<std::string> WindowsTimezone(std::string_view tz);
Expected<int> DiskIndex(std::string_view disk);
// The console keymap a locale implies when none is given (fr_FR -> fr).
std::string DefaultKeyboard(std::string_view locale);

// What an admin records for a machine; Normalize checks every field and fills
// the defaults (keyboard from the locale, timezone UTC, asset = os).
struct HostSpec {
  std::string mac, hostname, group, os, disk, locale, keyboard, timezone, asset, comment;
};
Expected<HostSpec> NormalizeHostSpec(HostSpec spec);

// --- templates ----------------------------------------------------------------
using Variables = std::map<std::string, std::string>;
// Every variable a template may use; any other {{name}} is an error.
const std::vector<std::string>& KnownVariables();
// The value as it appears in a document of this format, or kInvalidArgument
// naming the variable when it cannot be made safe.
Expected<std::string> Escape(std::string_view name, std::string_view value, Format format);
// Replaces {{name}} (spaces inside the braces allowed) by the escaped value.
// Unknown names, names missing from vars and unclosed braces are errors that
// name the line.
Expected<std::string> Render(std::string_view text, const Variables& vars, Format format);
// Renders with sample values: what SetTemplate checks before storing.
ExpectedVoid CheckTemplate(std::string_view text, Format format);
// The shipped default template of an os (compiled in from installer/netboot/).
std::string_view DefaultTemplate(std::string_view os);

// Everything an answer file is made from.
struct AnswerContext {
  HostSpec host;
  std::string token;           // ID.SECRET
  int64_t token_expires_at = 0;
  std::string server;          // HOST:PORT the agent enrolls with
  std::string ca_fingerprint;  // SHA-256 of the parc CA certificate
  std::string boot_url;        // https://BOOT:PORT
  std::string agent_url;       // parc-agent package on the boot server, "" = from the site's mirror
  std::string agent_sha256;
};
Variables AnswerVariables(const AnswerContext& context);
// cloud-init meta-data (instance-id from the MAC, local-hostname).
Expected<std::string> RenderMetaData(const HostSpec& host);

// --- iPXE -----------------------------------------------------------------------
struct BootFile {
  std::string name;  // file name, also the name iPXE gives it (wimboot looks files up by name)
  std::string role;  // kernel, initrd, file
  std::string url;
};
struct IpxeInstall {
  HostSpec host;
  std::vector<BootFile> files;  // of the host's asset
  std::string cmdline;          // asset's extra kernel arguments
  std::string answer_url;       // https://BOOT/answer/MAC/ (directory, with the slash)
};
Expected<std::string> IpxeInstallScript(const IpxeInstall& install);
// For a MAC the server does not know: what to run, then the local disk.
std::string IpxeUnknownScript(const std::string& mac);
// For a known machine that is not armed (installed, or never armed).
std::string IpxeLocalBootScript(const std::string& mac, const std::string& hostname, const std::string& reason);

// --- dnsmasq --------------------------------------------------------------------
struct DnsmasqSpec {
  std::string interface;
  std::string subnet;
  std::string netmask = "255.255.255.0";
  std::string tftp_root = "/srv/parc/tftp";
  std::string chain_url;  // with ${net0/mac}
};
Expected<std::string> DnsmasqConfig(const DnsmasqSpec& spec);
struct TftpFileSpec {
  std::string name, source, purpose;
};
// What the TFTP root needs (Debian's ipxe package).
std::vector<TftpFileSpec> TftpFiles();

}  // namespace parc::netboot
