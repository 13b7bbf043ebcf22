#include "deploy_common.h"

#include <cstring>

#include "parc/common/timeutil.h"

namespace parc::imaging::internal {

Expected<Image> OpenSignedImage(std::string_view manifest_json, std::string_view signature, ImageKind kind, ChunkStore& cache,
                                ChunkFetcher* fetcher, const DeployOptions& options) {
  auto m = VerifyManifest(manifest_json, signature, options.trusted, options.now ? options.now : NowUnix());
  if (!m) return Fail(m.error());
  if (m->kind != kind)
    return Fail(Errc::kInvalidArgument, "image " + m->name + " " + m->version + " is a " + std::string(KindName(m->kind)) +
                                            " image, not a " + std::string(KindName(kind)) + " image");
  return LoadImage(*m, cache, fetcher, options.limits);
}

bool IsDeploymentSibling(std::string_view name) {
  if (name.size() < 2 || name.front() != '.') return false;
  for (auto suffix : {kStagingSuffix, kPreviousSuffix, kJournalSuffix, kTrashSuffix})
    if (name.size() > suffix.size() + 1 && name.ends_with(suffix)) return true;
  return false;
}

bool AllZero(std::string_view data) {
  static const char kZeros[4096] = {};
  while (data.size() >= sizeof kZeros) {
    if (std::memcmp(data.data(), kZeros, sizeof kZeros) != 0) return false;
    data.remove_prefix(sizeof kZeros);
  }
  return std::memcmp(data.data(), kZeros, data.size()) == 0;
}

}  // namespace parc::imaging::internal
