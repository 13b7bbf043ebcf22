// ImageService: the image registry (chunks into the content store, signed
// manifests into the parc database), diffs, and image deployments turned into
// per-host jobs for the deployment scheduler.
#pragma once

#include "parc/v1/image.grpc.pb.h"
#include "services.h"

namespace parc::server {

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

 private:
  ServerState& state_;
};

}  // namespace parc::server
