// The two gRPC services. Enrollment and admin calls are synchronous (they run
// on gRPC's sync thread pool and may touch the database); Connect is a callback
// reactor so that thousands of idle sessions cost no threads.
#pragma once

#include <atomic>
#include <mutex>

#include "auth.h"
#include "config.h"
#include "parc/common/pki.h"
#include "parc/server/storage.h"
#include "parc/v1/admin.grpc.pb.h"
#include "parc/v1/agent.grpc.pb.h"
#include "content_store.h"
#include "parc/server/deploy_store.h"
#include "parc/v1/deploy.grpc.pb.h"
#include "parc/server/policy_store.h"
#include "parc/v1/policy.grpc.pb.h"
#include "parc/server/netboot_store.h"
#include "parc/v1/netboot.grpc.pb.h"
#include "scheduler.h"
#include "session.h"

namespace parc::server {

class PolicyScheduler;
class NetbootCore;
class ImageStore;

struct ServerState {
  const ServerConfig* config = nullptr;
  Storage* storage = nullptr;
  const pki::CertificateAuthority* ca = nullptr;
  SessionRegistry registry;
  RevocationList revoked;
  std::atomic<uint64_t> reports_stored{0};
  DeployStore* deploy = nullptr;
  ContentStore* content = nullptr;
  Scheduler* scheduler = nullptr;
  PolicyStore* policies = nullptr;
  PolicyScheduler* policy_scheduler = nullptr;
  ImageStore* images = nullptr;  // image_service.cc
  // Changes to the content store and to what names its objects take turns:
  // upload commits, package and policy registrations, package and image
  // removals, gc. So a commit or a registration never lands between a
  // removal (or gc) deciding an object is unused and deleting its file.
  // Taken after ImageServiceImpl's registry lock when both are held.
  std::mutex content_mu;

  // The admin behind an admin API call (client certificate of the parc-admin kind, not revoked).
  Expected<PeerIdentity> Admin(grpc::ServerContext* context) const;
  // Appends to the audit log; a failure is logged, never fatal to the call.
  void Audit(const PeerIdentity& who, const std::string& action, const std::string& target,
             const std::string& detail) const;
  // The active hosts (not revoked, not superseded) of group:NAME / host:HOST
  // targets, each once, resolved now (deployments of packages and of images).
  Expected<std::vector<HostRecord>> ResolveTargets(const google::protobuf::RepeatedPtrField<std::string>& targets) const;
};

// Connect and GetContent use the callback API (no thread per stream);
// GetContent is raw (ByteBuffer) so that file bytes are sent without a copy.
class AgentServiceImpl final
    : public v1::AgentService::WithRawCallbackMethod_GetContent<
          v1::AgentService::WithCallbackMethod_Connect<v1::AgentService::Service>> {
 public:
  explicit AgentServiceImpl(ServerState& state) : state_(state) {}
  grpc::Status Enroll(grpc::ServerContext* context, const v1::EnrollRequest* request,
                      v1::EnrollResponse* response) override;
  grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>* Connect(grpc::CallbackServerContext* context) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* GetContent(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request) override;
  grpc::Status GetObjects(grpc::ServerContext* context, const v1::GetObjectsRequest* request,
                          grpc::ServerWriter<v1::ObjectData>* writer) override;
  grpc::Status MissingObjects(grpc::ServerContext* context, const v1::MissingObjectsRequest* request,
                              v1::MissingObjectsResponse* response) override;
  grpc::Status PutObjects(grpc::ServerContext* context, grpc::ServerReader<v1::PutObjectRequest>* reader,
                          v1::PutObjectsResponse* response) override;

 private:
  // The calling agent, if it has an image capture job in progress.
  Expected<PeerIdentity> CapturingAgent(const grpc::ServerContext& context);
  ServerState& state_;
};

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  explicit AdminServiceImpl(ServerState& state) : state_(state) {}
  grpc::Status CreateToken(grpc::ServerContext*, const v1::CreateTokenRequest*, v1::CreateTokenResponse*) override;
  grpc::Status ListHosts(grpc::ServerContext*, const v1::ListHostsRequest*, v1::ListHostsResponse*) override;
  grpc::Status GetHost(grpc::ServerContext*, const v1::GetHostRequest*, v1::HostDetail*) override;
  grpc::Status RevokeHost(grpc::ServerContext*, const v1::RevokeHostRequest*, v1::HostDetail*) override;
  grpc::Status GetInventory(grpc::ServerContext*, const v1::GetInventoryRequest*, v1::GetInventoryResponse*) override;
  grpc::Status ExportInventory(grpc::ServerContext*, const v1::ExportInventoryRequest*,
                               grpc::ServerWriter<v1::InventoryRow>*) override;
  grpc::Status GetHistory(grpc::ServerContext*, const v1::GetHistoryRequest*, v1::GetHistoryResponse*) override;
  grpc::Status CreateGroup(grpc::ServerContext*, const v1::GroupRequest*, v1::GroupInfo*) override;
  grpc::Status ListGroups(grpc::ServerContext*, const v1::ListGroupsRequest*, v1::ListGroupsResponse*) override;
  grpc::Status AddToGroup(grpc::ServerContext*, const v1::GroupMembershipRequest*, v1::GroupInfo*) override;
  grpc::Status RemoveFromGroup(grpc::ServerContext*, const v1::GroupMembershipRequest*, v1::GroupInfo*) override;
  grpc::Status ListDuplicates(grpc::ServerContext*, const v1::ListDuplicatesRequest*,
                              v1::ListDuplicatesResponse*) override;
  grpc::Status CollectInventory(grpc::ServerContext*, const v1::CollectInventoryRequest*,
                                v1::CollectInventoryResponse*) override;
  grpc::Status ListAudit(grpc::ServerContext*, const v1::ListAuditRequest*, v1::ListAuditResponse*) override;

 private:
  void FillSummary(const HostRecord& host, v1::HostSummary* out);
  ServerState& state_;
};

class DeployServiceImpl final : public v1::DeployService::Service {
 public:
  explicit DeployServiceImpl(ServerState& state) : state_(state) {}
  grpc::Status AddPublisherKey(grpc::ServerContext*, const v1::AddPublisherKeyRequest*, v1::PublisherKey*) override;
  grpc::Status ListPublisherKeys(grpc::ServerContext*, const v1::ListPublisherKeysRequest*,
                                 v1::ListPublisherKeysResponse*) override;
  grpc::Status StatContent(grpc::ServerContext*, const v1::StatContentRequest*, v1::StatContentResponse*) override;
  grpc::Status PutContent(grpc::ServerContext*, grpc::ServerReader<v1::PutContentRequest>*,
                          v1::StatContentResponse*) override;
  grpc::Status RegisterPackage(grpc::ServerContext*, const v1::RegisterPackageRequest*, v1::PackageInfo*) override;
  grpc::Status ListPackages(grpc::ServerContext*, const v1::ListPackagesRequest*, v1::ListPackagesResponse*) override;
  grpc::Status RemovePackage(grpc::ServerContext*, const v1::RemovePackageRequest*, v1::RemovePackageResponse*) override;
  grpc::Status CreateDeployment(grpc::ServerContext*, const v1::CreateDeploymentRequest*, v1::DeploymentInfo*) override;
  grpc::Status GetDeployment(grpc::ServerContext*, const v1::GetDeploymentRequest*, v1::DeploymentInfo*) override;
  grpc::Status WatchDeployment(grpc::ServerContext*, const v1::GetDeploymentRequest*,
                               grpc::ServerWriter<v1::DeploymentInfo>*) override;
  grpc::Status ListDeployments(grpc::ServerContext*, const v1::ListDeploymentsRequest*,
                               v1::ListDeploymentsResponse*) override;
  grpc::Status ControlDeployment(grpc::ServerContext*, const v1::ControlDeploymentRequest*, v1::DeploymentInfo*) override;
  grpc::Status ListRollbackPoints(grpc::ServerContext*, const v1::ListRollbackPointsRequest*,
                                  v1::ListRollbackPointsResponse*) override;
  grpc::Status Rollback(grpc::ServerContext*, const v1::RollbackRequest*, v1::JobInfo*) override;

 private:
  Expected<v1::DeploymentInfo> Describe(const std::string& ref, bool with_jobs);
  void PushTrustedKeys();
  ServerState& state_;
};

class PolicyServiceImpl final : public v1::PolicyService::Service {
 public:
  explicit PolicyServiceImpl(ServerState& state) : state_(state) {}
  grpc::Status RegisterPolicy(grpc::ServerContext*, const v1::RegisterPolicyRequest*, v1::PolicyInfo*) override;
  grpc::Status ListPolicies(grpc::ServerContext*, const v1::ListPoliciesRequest*, v1::ListPoliciesResponse*) override;
  grpc::Status GetPolicy(grpc::ServerContext*, const v1::GetPolicyRequest*, v1::PolicyInfo*) override;
  grpc::Status AssignPolicy(grpc::ServerContext*, const v1::AssignPolicyRequest*, v1::AssignmentInfo*) override;
  grpc::Status Unassign(grpc::ServerContext*, const v1::UnassignRequest*, v1::AssignmentInfo*) override;
  grpc::Status ListAssignments(grpc::ServerContext*, const v1::ListAssignmentsRequest*,
                               v1::ListAssignmentsResponse*) override;
  grpc::Status RunAssignment(grpc::ServerContext*, const v1::RunAssignmentRequest*, v1::RunAssignmentResponse*) override;
  grpc::Status GetCompliance(grpc::ServerContext*, const v1::ComplianceRequest*, v1::ComplianceResponse*) override;

 private:
  // The assignment with its group's host counts.
  Expected<v1::AssignmentInfo> Describe(const AssignmentRecord& a);
  ServerState& state_;
};

// Network installation (netboot_service.cc): the boot server's machines,
// boot files and templates; the boot server itself is netboot_http.cc.
class NetbootServiceImpl final : public v1::NetbootService::Service {
 public:
  NetbootServiceImpl(ServerState& state, NetbootCore& core) : state_(state), core_(core) {}
  grpc::Status AddHost(grpc::ServerContext*, const v1::NetbootHost*, v1::NetbootHost*) override;
  grpc::Status ListHosts(grpc::ServerContext*, const v1::ListNetbootHostsRequest*, v1::ListNetbootHostsResponse*) override;
  grpc::Status GetHost(grpc::ServerContext*, const v1::GetNetbootHostRequest*, v1::NetbootHost*) override;
  grpc::Status RemoveHost(grpc::ServerContext*, const v1::GetNetbootHostRequest*, v1::NetbootHost*) override;
  grpc::Status ArmHost(grpc::ServerContext*, const v1::ArmNetbootHostRequest*, v1::NetbootHost*) override;
  grpc::Status PreviewAnswer(grpc::ServerContext*, const v1::PreviewAnswerRequest*, v1::PreviewAnswerResponse*) override;
  grpc::Status AddAsset(grpc::ServerContext*, const v1::NetbootAsset*, v1::NetbootAsset*) override;
  grpc::Status ListAssets(grpc::ServerContext*, const v1::ListNetbootAssetsRequest*, v1::ListNetbootAssetsResponse*) override;
  grpc::Status RemoveAsset(grpc::ServerContext*, const v1::RemoveNetbootAssetRequest*, v1::NetbootAsset*) override;
  grpc::Status GetDnsmasqConfig(grpc::ServerContext*, const v1::DnsmasqConfigRequest*, v1::DnsmasqConfigResponse*) override;
  grpc::Status SetTemplate(grpc::ServerContext*, const v1::NetbootTemplate*, v1::NetbootTemplate*) override;
  grpc::Status GetTemplate(grpc::ServerContext*, const v1::GetNetbootTemplateRequest*, v1::NetbootTemplate*) override;
  grpc::Status ResetTemplate(grpc::ServerContext*, const v1::GetNetbootTemplateRequest*, v1::NetbootTemplate*) override;

 private:
  v1::NetbootHost Describe(const NetbootHostRecord& host);
  static void FillAsset(const NetbootAssetRecord& asset, v1::NetbootAsset* out);
  grpc::Status GetTemplate(grpc::ServerContext*, const v1::GetNetbootTemplateRequest*, v1::NetbootTemplate* response,
                           const std::string& os);
  ServerState& state_;
  NetbootCore& core_;
};

}  // namespace parc::server
