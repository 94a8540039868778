// The one way a node opens a channel to a peer (anti-entropy, gossip,
// fan-out), so that every peer service is reached with the same settings.
#ifndef KV_SERVER_PEER_CHANNEL_H_
#define KV_SERVER_PEER_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>

namespace kv::server {

// A channel to `address` (host:port) accepting and sending messages up to
// `max_message_bytes`. A peer that was down is tried again after 100 ms, then
// at most every `max_reconnect_backoff_ms`, not after gRPC's default backoff
// of up to two minutes. It uses the credentials last given to
// SetPeerChannelCredentials (plaintext before any).
std::shared_ptr<grpc::Channel> NewPeerChannel(const std::string& address,
                                              int max_message_bytes,
                                              int max_reconnect_backoff_ms);

// Sets the credentials of every later NewPeerChannel (null: plaintext) for
// the whole process: there is one node per process. Node::Start calls it
// before any peer channel is made (mutual TLS, server/tls.h). Thread-safe.
void SetPeerChannelCredentials(std::shared_ptr<grpc::ChannelCredentials> credentials);

}  // namespace kv::server

#endif  // KV_SERVER_PEER_CHANNEL_H_
