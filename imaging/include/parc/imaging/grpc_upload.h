// UploadHooks over gRPC, for the callers that have it (parcctl through
// ImageService, an agent capturing a master through AgentService: both
// services have MissingObjects and PutObjects with the same messages). Header
// only: the imaging library itself stays free of gRPC (upload.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "parc/imaging/upload.h"
#include "parc/v1/objects.pb.h"

namespace parc::imaging {

// Sets hooks.missing and hooks.put to call `stub`, which must outlive the
// upload. prepare(ctx, put) readies each call's context (a deadline);
// failed(status, put) words a failed call's status as the caller's error.
template <class Stub>
void SetGrpcUploadHooks(UploadHooks& hooks, Stub& stub, std::function<void(grpc::ClientContext&, bool put)> prepare,
                        std::function<Error(const grpc::Status&, bool put)> failed) {
  hooks.missing = [&stub, prepare, failed](const std::vector<std::string>& ask) -> Expected<std::vector<std::string>> {
    v1::MissingObjectsRequest req;
    for (const auto& d : ask) req.add_sha256(d);
    v1::MissingObjectsResponse resp;
    grpc::ClientContext ctx;
    prepare(ctx, false);
    if (auto st = stub.MissingObjects(&ctx, req, &resp); !st.ok()) return Fail(failed(st, false));
    return std::vector<std::string>(resp.missing().begin(), resp.missing().end());
  };
  hooks.put = [&stub, prepare, failed](std::vector<std::pair<std::string, std::string>>& batch) -> Expected<uint64_t> {
    grpc::ClientContext ctx;
    prepare(ctx, true);
    v1::PutObjectsResponse resp;
    auto writer = stub.PutObjects(&ctx, &resp);
    for (auto& [digest, data] : batch) {
      v1::PutObjectRequest msg;
      msg.set_sha256(digest);
      msg.set_data(std::move(data));
      if (!writer->Write(msg)) break;  // the status says why
    }
    writer->WritesDone();
    if (auto st = writer->Finish(); !st.ok()) return Fail(failed(st, true));
    return resp.stored();
  };
}

}  // namespace parc::imaging
