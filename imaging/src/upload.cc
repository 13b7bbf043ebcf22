#include "parc/imaging/upload.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "work.h"

namespace parc::imaging {

Expected<UploadReport> UploadImage(const Manifest& m, const Image& image, const ChunkStore& store,
                                   const UploadHooks& hooks) {
  // Every object once, body first (it is what a deploy fetches first).
  std::vector<ChunkRef> all = m.body_chunks;
  for (const auto& c : image.UniqueChunks()) all.push_back(c);
  std::unordered_set<Digest, DigestHash> seen;
  std::vector<std::string> wanted;
  std::unordered_map<std::string, uint32_t> stored_size;
  for (const auto& c : all)
    if (seen.insert(c.object).second) {
      wanted.push_back(c.object.Hex());
      stored_size[wanted.back()] = c.stored_size;
    }
  UploadReport report;
  report.objects = wanted.size();
  std::vector<std::string> missing;
  for (size_t at = 0; at < wanted.size(); at += kMissingPerCall) {
    std::vector<std::string> ask(wanted.begin() + static_cast<ptrdiff_t>(at),
                                 wanted.begin() + static_cast<ptrdiff_t>(std::min(wanted.size(), at + kMissingPerCall)));
    auto lacking = hooks.missing(ask);
    if (!lacking) return Fail(lacking.error().WithContext("asking the server which chunks it lacks"));
    missing.insert(missing.end(), lacking->begin(), lacking->end());
  }
  report.missing = missing.size();
  for (const auto& d : missing) report.missing_bytes += stored_size[d];

  internal::Ticker ticker(hooks.progress);
  ticker.Phase("upload", report.missing_bytes, report.missing);
  std::vector<std::pair<std::string, std::string>> batch;
  size_t batch_bytes = 0;
  auto flush = [&]() -> ExpectedVoid {
    if (batch.empty()) return {};
    auto n = hooks.put(batch);
    if (!n) return Fail(n.error().WithContext("uploading chunks"));
    report.stored += *n;
    ticker.Add(batch_bytes, batch.size());
    batch.clear();
    batch_bytes = 0;
    if (!ticker.Tick()) return Fail(internal::Ticker::Cancelled());
    return {};
  };
  for (const auto& hex : missing) {
    auto digest = Digest::FromHex(hex);
    if (!digest) return Fail(digest.error().WithContext("the server named an object that is not a digest"));
    if (!seen.contains(*digest)) return Fail(Errc::kInternal, "the server asked for object " + hex + ", not in the image");
    auto data = store.Get(*digest);
    if (!data) return Fail(data.error().WithContext("reading chunk " + hex.substr(0, 16) + " from the local store"));
    batch_bytes += data->size();
    batch.emplace_back(hex, std::move(*data));
    if (batch_bytes >= kPutBatchBytes)
      if (auto r = flush(); !r) return Fail(r.error());
  }
  if (auto r = flush(); !r) return Fail(r.error());
  ticker.Tick(true);
  return report;
}

}  // namespace parc::imaging
