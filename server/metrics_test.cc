#include "server/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "server/node_metrics.h"

namespace kv::server {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, RpcMetricsWritesCountsAndCumulativeBuckets) {
  RpcMetrics rpc;
  rpc.Record("/kv.v1.KV/Get", grpc::StatusCode::OK, absl::Microseconds(50));
  rpc.Record("/kv.v1.KV/Get", grpc::StatusCode::OK, absl::Milliseconds(3));
  rpc.Record("/kv.v1.KV/Put", grpc::StatusCode::PERMISSION_DENIED, absl::Seconds(20));
  MetricsWriter w;
  rpc.Write(w);
  const std::string& t = w.text();
  EXPECT_THAT(t, HasSubstr("# TYPE kvd_grpc_server_handled_total counter\n"));
  EXPECT_THAT(t, HasSubstr("kvd_grpc_server_handled_total{grpc_service=\"kv.v1.KV\","
                           "grpc_method=\"Get\",grpc_code=\"OK\"} 2\n"));
  EXPECT_THAT(t, HasSubstr("grpc_method=\"Put\",grpc_code=\"PERMISSION_DENIED\"} 1\n"));
  EXPECT_THAT(t, HasSubstr("# TYPE kvd_grpc_server_handling_seconds histogram\n"));
  // 50 us is in the first bucket; 3 ms from le=0.005 on; 20 s only in +Inf.
  EXPECT_THAT(t, HasSubstr("grpc_method=\"Get\",grpc_code=\"OK\",le=\"0.0001\"} 1\n"));
  EXPECT_THAT(t, HasSubstr("grpc_method=\"Get\",grpc_code=\"OK\",le=\"0.0025\"} 1\n"));
  EXPECT_THAT(t, HasSubstr("grpc_method=\"Get\",grpc_code=\"OK\",le=\"0.005\"} 2\n"));
  EXPECT_THAT(t, HasSubstr("grpc_code=\"PERMISSION_DENIED\",le=\"10\"} 0\n"));
  EXPECT_THAT(t, HasSubstr("grpc_code=\"PERMISSION_DENIED\",le=\"+Inf\"} 1\n"));
  EXPECT_THAT(t, HasSubstr("kvd_grpc_server_handling_seconds_count{grpc_service=\"kv.v1.KV\","
                           "grpc_method=\"Get\",grpc_code=\"OK\"} 2\n"));
}

TEST(MetricsTest, WriterEscapesLabelValues) {
  MetricsWriter w;
  w.Family("x", "gauge", "a\nb");
  w.Sample("x", {{"peer", "a\"b\\c"}}, 1.5);
  EXPECT_EQ(w.text(), "# HELP x a\\nb\n# TYPE x gauge\nx{peer=\"a\\\"b\\\\c\"} 1.5\n");
}

TEST(MetricsTest, ValuesKeepEveryDigitTheyNeed) {
  MetricsWriter w;
  w.Family("t", "gauge", "h");
  w.Sample("t", {}, 1796020123.25);  // A Unix timestamp with a fraction.
  w.Sample("t", {}, 0.1);
  w.Sample("t", {}, 2.5e-7);
  w.Sample("t", {}, 42);
  EXPECT_EQ(w.text(), "# HELP t h\n# TYPE t gauge\nt 1796020123.25\nt 0.1\nt 2.5e-07\nt 42\n");
}

TEST(MetricsTest, PeerSyncAgeIsInfiniteUntilTheFirstExchange) {
  EXPECT_TRUE(std::isinf(PeerSyncAgeSeconds(0, 1'700'000'000'000)));
  EXPECT_GT(PeerSyncAgeSeconds(0, 1'700'000'000'000), 0);
  EXPECT_DOUBLE_EQ(PeerSyncAgeSeconds(1'700'000'000'000, 1'700'000'002'500), 2.5);
  // The wall clock went back: not a negative age.
  EXPECT_DOUBLE_EQ(PeerSyncAgeSeconds(1'700'000'002'500, 1'700'000'000'000), 0);
}

TEST(MetricsTest, RegistryRunsCollectorsAndProcessMetrics) {
  MetricsRegistry registry;
  registry.AddCollector([](MetricsWriter& w) { w.Counter("kvd_test_total", "t", 7); });
  const std::string t = registry.Render();
  EXPECT_THAT(t, HasSubstr("kvd_test_total 7\n"));
  EXPECT_THAT(t, HasSubstr("kvd_process_resident_memory_bytes "));
  EXPECT_THAT(t, HasSubstr("kvd_process_threads "));
}

TEST(MetricsTest, HttpServerRefusesABadAddress) {
  MetricsRegistry registry;
  EXPECT_EQ(MetricsHttpServer::Start("nonsense", &registry).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kv::server
