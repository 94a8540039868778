#include "server/metrics.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace kv::server {
namespace {

std::string FormatValue(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  // The shortest form that reads back as the same double: StrCat keeps only
  // 6 significant digits, which turned a Unix timestamp into 1.79602e+09
  // (thousands of seconds off) and blurred histogram sums.
  std::string text;
  for (int precision = 15; precision <= 17; ++precision) {
    text = absl::StrFormat("%.*g", precision, v);
    double back = 0;
    if (absl::SimpleAtod(text, &back) && back == v) break;
  }
  return text;
}

std::string EscapeLabel(const std::string& v) {
  return absl::StrReplaceAll(v, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

std::string EscapeHelp(const std::string& v) {
  return absl::StrReplaceAll(v, {{"\\", "\\\\"}, {"\n", "\\n"}});
}

// "/kv.v1.KV/Get" -> {"kv.v1.KV", "Get"}.
std::pair<std::string, std::string> SplitMethod(const std::string& full) {
  const size_t slash = full.rfind('/');
  if (slash == std::string::npos || slash == 0) return {"", full};
  return {full.substr(1, slash - 1), full.substr(slash + 1)};
}

const char* CodeName(int code) {
  static constexpr const char* kNames[] = {
      "OK",           "CANCELLED",         "UNKNOWN",          "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",    "ALREADY_EXISTS",   "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",  "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",         "UNAVAILABLE",      "DATA_LOSS",
      "UNAUTHENTICATED"};
  if (code < 0 || code > 16) return "UNKNOWN";
  return kNames[code];
}

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(RpcMetrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(absl::Now()) {}
  ~MetricsInterceptor() override {
    // The call ended without a status sent by the server (the client
    // cancelled or went away).
    if (!recorded_) {
      metrics_->Record(method_, grpc::StatusCode::CANCELLED, absl::Now() - start_);
    }
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->Record(method_, methods->GetSendStatus().error_code(),
                       absl::Now() - start_);
      recorded_ = true;
    }
    methods->Proceed();
  }

 private:
  RpcMetrics* const metrics_;
  const std::string method_;
  const absl::Time start_;
  bool recorded_ = false;  // Interception points of one call do not overlap.
};

// Process metrics from /proc/self/status: (resident bytes, threads).
std::pair<double, double> ReadProcStatus() {
  std::ifstream in("/proc/self/status");
  std::string line;
  double rss = 0, threads = 0;
  while (std::getline(in, line)) {
    int64_t v = 0;
    if (line.rfind("VmRSS:", 0) == 0) {
      std::string num = line.substr(6);
      num = num.substr(0, num.find("kB"));
      if (absl::SimpleAtoi(num, &v)) rss = static_cast<double>(v) * 1024;
    } else if (line.rfind("Threads:", 0) == 0) {
      if (absl::SimpleAtoi(line.substr(8), &v)) threads = static_cast<double>(v);
    }
  }
  return {rss, threads};
}

}  // namespace

void MetricsWriter::Family(const std::string& name, const std::string& type,
                           const std::string& help) {
  absl::StrAppend(&out_, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ",
                  type, "\n");
}

void MetricsWriter::Sample(const std::string& name, const Labels& labels, double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      absl::StrAppend(&out_, i ? "," : "", labels[i].first, "=\"",
                      EscapeLabel(labels[i].second), "\"");
    }
    out_ += '}';
  }
  absl::StrAppend(&out_, " ", FormatValue(value), "\n");
}

void MetricsWriter::Counter(const std::string& name, const std::string& help,
                            double value) {
  Family(name, "counter", help);
  Sample(name, {}, value);
}

void MetricsWriter::Gauge(const std::string& name, const std::string& help, double value) {
  Family(name, "gauge", help);
  Sample(name, {}, value);
}

void RpcMetrics::Record(const std::string& method, grpc::StatusCode code,
                        absl::Duration latency) {
  const double s = absl::ToDoubleSeconds(latency);
  size_t b = 0;
  while (b < kLatencyBuckets.size() && s > kLatencyBuckets[b]) ++b;
  absl::MutexLock lock(&mu_);
  Series& series = series_[{method, static_cast<int>(code)}];
  ++series.count;
  series.sum_s += s;
  if (b < kLatencyBuckets.size()) ++series.buckets[b];
}

void RpcMetrics::Write(MetricsWriter& w) const {
  std::map<std::pair<std::string, int>, Series> copy;
  {
    absl::MutexLock lock(&mu_);
    copy = series_;
  }
  w.Family("kvd_grpc_server_handled_total", "counter",
           "gRPC calls completed on this node, by method and status code");
  for (const auto& [key, series] : copy) {
    auto [service, method] = SplitMethod(key.first);
    w.Sample("kvd_grpc_server_handled_total",
             {{"grpc_service", service}, {"grpc_method", method},
              {"grpc_code", CodeName(key.second)}},
             static_cast<double>(series.count));
  }
  w.Family("kvd_grpc_server_handling_seconds", "histogram",
           "Time from a call's start to its status, by method and status code");
  for (const auto& [key, series] : copy) {
    auto [service, method] = SplitMethod(key.first);
    MetricsWriter::Labels labels = {{"grpc_service", service},
                                    {"grpc_method", method},
                                    {"grpc_code", CodeName(key.second)}};
    int64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
      cumulative += series.buckets[i];
      MetricsWriter::Labels l = labels;
      l.emplace_back("le", FormatValue(kLatencyBuckets[i]));
      w.Sample("kvd_grpc_server_handling_seconds_bucket", l,
               static_cast<double>(cumulative));
    }
    MetricsWriter::Labels inf = labels;
    inf.emplace_back("le", "+Inf");
    w.Sample("kvd_grpc_server_handling_seconds_bucket", inf,
             static_cast<double>(series.count));
    w.Sample("kvd_grpc_server_handling_seconds_sum", labels, series.sum_s);
    w.Sample("kvd_grpc_server_handling_seconds_count", labels,
             static_cast<double>(series.count));
  }
}

grpc::experimental::Interceptor* MetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new MetricsInterceptor(metrics_, info->method());
}

MetricsRegistry::MetricsRegistry() : start_(absl::Now()) {}

void MetricsRegistry::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string MetricsRegistry::Render() const {
  MetricsWriter w;
  rpc_.Write(w);
  const auto [rss, threads] = ReadProcStatus();
  w.Gauge("kvd_process_resident_memory_bytes", "Resident set size of the kvd process", rss);
  w.Gauge("kvd_process_threads", "Threads of the kvd process", threads);
  w.Gauge("kvd_process_uptime_seconds", "Seconds since this node started",
          absl::ToDoubleSeconds(absl::Now() - start_));
  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    collectors = collectors_;
  }
  for (const Collector& c : collectors) c(w);
  return w.text();
}

MetricsHttpServer::MetricsHttpServer() : http_(std::make_unique<httplib::Server>()) {}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, const MetricsRegistry* registry) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address must be host:port, got '", address, "'"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->http_->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  bool bound;
  if (port == 0) {
    port = server->http_->bind_to_any_port(host);
    bound = port > 0;
  } else {
    bound = server->http_->bind_to_port(host, port);
  }
  if (!bound) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, " (--metrics-listen: in use or invalid?)"));
  }
  server->address_ = absl::StrCat(address.substr(0, colon), ":", port);
  server->thread_ = std::thread([s = server.get()] { s->http_->listen_after_bind(); });
  spdlog::info("metrics: serving http://{}/metrics", server->address_);
  return server;
}

void MetricsHttpServer::Stop() {
  if (!thread_.joinable()) return;
  // stop() does nothing before listen_after_bind runs: wait for it (bounded).
  for (int i = 0; i < 5000 && !http_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  http_->stop();
  thread_.join();
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

}  // namespace kv::server
