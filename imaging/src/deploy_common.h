// Pieces shared by the tree and block deployments.
#pragma once

#include <atomic>
#include <string>
#include <string_view>

#include "parc/imaging/deploy.h"
#include "work.h"

namespace parc::imaging::internal {

// Signature, kind, then the body (cache first, else the fetcher).
Expected<Image> OpenSignedImage(std::string_view manifest_json, std::string_view signature, ImageKind kind, ChunkStore& cache,
                                ChunkFetcher* fetcher, const DeployOptions& options);

bool AllZero(std::string_view data);

// What a tree deployment to <parent>/<name> keeps next to it in <parent>:
// .<name><suffix>. The new tree being written, the previous tree (the
// rollback point), the journal, what is being removed.
inline constexpr std::string_view kStagingSuffix = ".parc-new", kPreviousSuffix = ".parc-previous",
                                  kJournalSuffix = ".parc-deploy.json", kTrashSuffix = ".parc-trash";
// A name of that form: a capture leaves it out (a tree deployed inside the
// captured one would otherwise bring its rollback point into the image).
bool IsDeploymentSibling(std::string_view name);

// Counts what really crosses the wire: every byte handed to the sink,
// partial attempts included, and every call that completed.
class CountingFetcher final : public ChunkFetcher {
 public:
  explicit CountingFetcher(ChunkFetcher& inner) : inner_(inner) {}
  ExpectedVoid Fetch(const ChunkRef& ref, uint64_t offset,
                     const std::function<ExpectedVoid(std::string_view)>& sink) override {
    auto r = inner_.Fetch(ref, offset, [&](std::string_view piece) {
      bytes.fetch_add(piece.size());
      return sink(piece);
    });
    if (r) chunks.fetch_add(1);
    return r;
  }
  ExpectedVoid FetchMany(const std::vector<ChunkRef>& refs,
                         const std::function<ExpectedVoid(size_t, std::string_view)>& sink) override {
    return inner_.FetchMany(refs, [&](size_t i, std::string_view data) {
      bytes.fetch_add(data.size());
      chunks.fetch_add(1);
      return sink(i, data);
    });
  }
  std::atomic<uint64_t> chunks{0}, bytes{0};

 private:
  ChunkFetcher& inner_;
};

}  // namespace parc::imaging::internal
