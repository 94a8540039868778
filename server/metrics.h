// Metrics in the Prometheus text exposition format (version 0.0.4), served
// over HTTP on their own port (--metrics-listen).
//
//   RpcMetrics          per gRPC method and status code: a call count and a
//                       latency histogram, fed by a server interceptor
//                       (MetricsInterceptorFactory) on every gRPC server.
//   MetricsWriter       writes metric families (HELP/TYPE once, then samples).
//   MetricsRegistry     the RPC metrics plus collectors: functions that write
//                       the current value of other counters (anti-entropy,
//                       gossip, fan-out, store, process) at scrape time.
//   MetricsHttpServer   GET /metrics over HTTP (cpp-httplib).
//
// The metric names and their meanings are listed in docs/metrics.md.
//
// Thread safety: all classes are thread-safe unless stated otherwise.
#ifndef KV_SERVER_METRICS_H_
#define KV_SERVER_METRICS_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace httplib {
class Server;
}

namespace kv::server {

// Writes one exposition. Not thread-safe (one scrape uses one writer).
class MetricsWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // Starts a family: `type` is counter, gauge or histogram. Each family name
  // must be started once per exposition.
  void Family(const std::string& name, const std::string& type, const std::string& help);
  // A sample of the current family (`suffix` e.g. "_bucket" for histograms).
  void Sample(const std::string& name, const Labels& labels, double value);

  // A whole single-sample family.
  void Counter(const std::string& name, const std::string& help, double value);
  void Gauge(const std::string& name, const std::string& help, double value);

  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

// Upper bounds (seconds) of the latency histogram buckets (+Inf is implied).
inline constexpr std::array<double, 16> kLatencyBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,     2.5,    5,     10};

// Call counts and latencies per (method, status code).
class RpcMetrics {
 public:
  // `method` is gRPC's full name, "/package.Service/Method".
  void Record(const std::string& method, grpc::StatusCode code, absl::Duration latency);
  // Writes kvd_grpc_server_handled_total and kvd_grpc_server_handling_seconds.
  void Write(MetricsWriter& w) const;

 private:
  struct Series {
    int64_t count = 0;
    double sum_s = 0;
    std::array<int64_t, kLatencyBuckets.size()> buckets{};  // Not cumulative.
  };
  mutable absl::Mutex mu_;
  std::map<std::pair<std::string, int>, Series> series_ ABSL_GUARDED_BY(mu_);
};

// Creates an interceptor per call that records the call in `metrics` when
// its status is sent (or as CANCELLED when the call ends without one).
// `metrics` must outlive the gRPC server.
class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  RpcMetrics* const metrics_;
};

class MetricsRegistry {
 public:
  using Collector = std::function<void(MetricsWriter&)>;

  MetricsRegistry();
  RpcMetrics* rpc() { return &rpc_; }
  // Collectors run at every scrape, in the order added, without any lock of
  // this class held. Add them before the HTTP server starts.
  void AddCollector(Collector collector);
  // The whole exposition: RPC metrics, process metrics, then the collectors.
  std::string Render() const;

 private:
  const absl::Time start_;
  RpcMetrics rpc_;
  mutable absl::Mutex mu_;
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
};

// Serves GET /metrics (text/plain; version=0.0.4) from `registry` on its
// own thread.
class MetricsHttpServer {
 public:
  // Binds `address` ("host:port", port 0 picks a free one) and starts serving.
  // Errors: INVALID_ARGUMENT for an address without a port; UNAVAILABLE when
  // it cannot be bound. `registry` must outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, const MetricsRegistry* registry);
  ~MetricsHttpServer();  // Stop().

  // The bound host:port.
  const std::string& address() const { return address_; }
  // Stops serving and joins the thread. Idempotent.
  void Stop();

 private:
  MetricsHttpServer();
  std::unique_ptr<httplib::Server> http_;
  std::string address_;
  std::thread thread_;
};

}  // namespace kv::server

#endif  // KV_SERVER_METRICS_H_
