#include "server/peer_channel.h"

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace kv::server {
namespace {

absl::Mutex g_mu(absl::kConstInit);
std::shared_ptr<grpc::ChannelCredentials>* g_credentials ABSL_GUARDED_BY(g_mu) = nullptr;

std::shared_ptr<grpc::ChannelCredentials> Credentials() {
  absl::MutexLock lock(&g_mu);
  if (g_credentials != nullptr && *g_credentials != nullptr) return *g_credentials;
  return grpc::InsecureChannelCredentials();
}

}  // namespace

std::shared_ptr<grpc::Channel> NewPeerChannel(const std::string& address,
                                              int max_message_bytes,
                                              int max_reconnect_backoff_ms) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_reconnect_backoff_ms);
  return grpc::CreateCustomChannel(address, Credentials(), args);
}

void SetPeerChannelCredentials(std::shared_ptr<grpc::ChannelCredentials> credentials) {
  absl::MutexLock lock(&g_mu);
  // Never freed: channels may be made until the process exits.
  if (g_credentials == nullptr) {
    g_credentials = new std::shared_ptr<grpc::ChannelCredentials>();
  }
  *g_credentials = std::move(credentials);
}

}  // namespace kv::server
