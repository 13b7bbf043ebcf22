// The network installation part of the parc database: machines to install
// (by MAC) with the values their answer files are made from, the boot files
// they load, and the admins' answer file templates. Behind an interface like
// PolicyStore so that another backend can run the same tests.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "parc/common/error.h"

namespace parc::server {

struct NetbootHostRecord {
  std::string mac, hostname, group, os, disk, locale, keyboard, timezone, asset, comment;
  int64_t created_at = 0;
  std::string created_by;
  int64_t armed_until = 0;
  int64_t answer_fetched_at = 0;
  std::string answer_fetched_by;
  std::string token_id;
  // From the tokens table (read only): the last minted token's fate.
  int64_t token_expires_at = 0;
  int64_t token_used_at = 0;
  std::string token_used_by;
};

struct NetbootAssetFileRecord {
  std::string name, role, sha256;
  uint64_t size = 0;
};

struct NetbootAssetRecord {
  std::string name, cmdline;
  int64_t created_at = 0;
  std::string created_by;
  std::vector<NetbootAssetFileRecord> files;  // in the order they were given
};

struct NetbootTemplateRecord {
  std::string os, text;
  int64_t updated_at = 0;
  std::string updated_by;
};

class NetbootStore {
 public:
  virtual ~NetbootStore() = default;

  // Inserts or replaces the machine of this MAC. kAlreadyExists when another
  // MAC already has the host name.
  virtual ExpectedVoid PutHost(const NetbootHostRecord& host) = 0;
  // By MAC (normalized) or host name; kNotFound.
  virtual Expected<NetbootHostRecord> GetHost(const std::string& mac_or_hostname) = 0;
  virtual Expected<std::vector<NetbootHostRecord>> ListHosts(const std::string& group) = 0;
  virtual ExpectedVoid RemoveHost(const std::string& mac) = 0;
  virtual ExpectedVoid Arm(const std::string& mac, int64_t until) = 0;
  // An answer file with token_id is being served: in one transaction, checks
  // the machine is still armed at `now` (kFailedPrecondition otherwise),
  // disarms it, records the fetch, and expires the previous token minted for
  // it if it was never used, so that at most one token per machine is alive.
  virtual ExpectedVoid RecordAnswer(const std::string& mac, const std::string& token_id, int64_t now,
                                    const std::string& peer) = 0;
  // Ends an unused token at once (one minted for a fetch that was then refused).
  virtual ExpectedVoid ExpireToken(const std::string& token_id, int64_t now) = 0;

  virtual ExpectedVoid PutAsset(const NetbootAssetRecord& asset) = 0;  // replaces one of the same name
  virtual Expected<NetbootAssetRecord> GetAsset(const std::string& name) = 0;
  virtual Expected<std::vector<NetbootAssetRecord>> ListAssets() = 0;
  virtual ExpectedVoid RemoveAsset(const std::string& name) = 0;

  virtual ExpectedVoid SetTemplate(const NetbootTemplateRecord& t) = 0;
  // nullopt: no custom template (the shipped default applies).
  virtual Expected<std::optional<NetbootTemplateRecord>> GetTemplate(const std::string& os) = 0;
  virtual ExpectedVoid RemoveTemplate(const std::string& os) = 0;
};

// A connection of its own to the migrated SQLite parc database.
Expected<std::unique_ptr<NetbootStore>> OpenSqliteNetbootStore(const std::string& path);

}  // namespace parc::server
