// ImageService: the image registry (chunks into the content store, signed
// manifests into the parc database), diffs, and image deployments turned into
// per-host jobs for the deployment scheduler.
#pragma once

#include <mutex>

#include "parc/v1/image.grpc.pb.h"
#include "services.h"

namespace parc::server {

// Deployments that capture an image are named "capture:NAME".
inline constexpr std::string_view kCapturePrefix = "capture:";

// Object uploads, accepted from admins (ImageService) and from an agent
// capturing a master (AgentService); the caller has authorized the peer.
// Every object is checked against its digest before it is kept.
grpc::Status FindMissingObjects(ServerState& state, const v1::MissingObjectsRequest& request,
                                v1::MissingObjectsResponse* response);
grpc::Status StoreObjects(ServerState& state, grpc::ServerReader<v1::PutObjectRequest>* reader,
                          v1::PutObjectsResponse* response);

class ImageServiceImpl final : public v1::ImageService::Service {
 public:
  explicit ImageServiceImpl(ServerState& state) : state_(state) {}
  grpc::Status MissingObjects(grpc::ServerContext*, const v1::MissingObjectsRequest*,
                              v1::MissingObjectsResponse*) override;
  grpc::Status PutObjects(grpc::ServerContext*, grpc::ServerReader<v1::PutObjectRequest>*,
                          v1::PutObjectsResponse*) override;
  grpc::Status RegisterImage(grpc::ServerContext*, const v1::RegisterImageRequest*, v1::ImageInfo*) override;
  grpc::Status ListImages(grpc::ServerContext*, const v1::ListImagesRequest*, v1::ListImagesResponse*) override;
  grpc::Status GetImage(grpc::ServerContext*, const v1::GetImageRequest*, v1::ImageInfo*) override;
  grpc::Status DiffImages(grpc::ServerContext*, const v1::DiffImagesRequest*, v1::ImageDiffInfo*) override;
  grpc::Status DeployImage(grpc::ServerContext*, const v1::DeployImageRequest*, v1::DeploymentInfo*) override;
  grpc::Status CaptureImage(grpc::ServerContext*, const v1::CaptureImageRequest*, v1::DeploymentInfo*) override;
  grpc::Status RemoveImage(grpc::ServerContext*, const v1::RemoveImageRequest*, v1::RemoveImageResponse*) override;
  grpc::Status CollectObjects(grpc::ServerContext*, const v1::CollectObjectsRequest*, v1::CollectObjectsResponse*) override;

 private:
  ServerState& state_;
  // Registering and removing take turns: a removal decides which objects no
  // other image uses, a registration checks that every object it needs is
  // there; interleaved, an image could be registered with objects being deleted.
  std::mutex registry_mu_;
};

}  // namespace parc::server
