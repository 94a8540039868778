#include "client/kvctl_endpoints.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/kvctl_output.h"

namespace kv::client {
namespace {

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string HealthName(grpc::health::v1::HealthCheckResponse::ServingStatus s) {
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(s);
}

}  // namespace

std::vector<std::string> ParseEndpoints(absl::string_view list) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (!part.empty()) out.emplace_back(part);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Client>> ConnectFirst(
    const std::vector<std::string>& endpoints, const ClientOptions& options,
    absl::Duration probe_timeout) {
  if (endpoints.empty()) return absl::InvalidArgumentError("no endpoints given");
  ClientOptions probe = options;
  probe.timeout = std::min(options.timeout, probe_timeout);
  std::vector<std::string> failures;
  for (const std::string& endpoint : endpoints) {
    auto c = Client::Connect(endpoint, probe);
    if (!c.ok()) return c.status();
    absl::Status s = (*c)->Ping();
    if (s.ok()) return Client::Connect(endpoint, options);
    failures.push_back(absl::StrCat(endpoint, ": ", absl::StatusCodeToString(s.code())));
  }
  return absl::UnavailableError(
      absl::StrCat("no endpoint answered (", absl::StrJoin(failures, ", "), ")"));
}

std::vector<EndpointReport> ReportAll(const std::vector<std::string>& endpoints,
                                      const ClientOptions& options, bool stats) {
  std::vector<EndpointReport> reports;
  for (const std::string& endpoint : endpoints) {
    EndpointReport r;
    r.endpoint = endpoint;
    auto c = Client::Connect(endpoint, options);
    if (!c.ok()) {
      r.status = c.status();
      reports.push_back(std::move(r));
      continue;
    }
    auto health = (*c)->Health();
    if (!health.ok()) {
      r.status = health.status();
    } else {
      r.health = HealthName(*health);
      if (stats) {
        auto st = (*c)->Stats();
        if (!st.ok()) {
          r.status = st.status();
        } else {
          r.node_name = st->node_name();
          r.node_id = st->node_id();
          r.key_count = st->key_count();
          r.root_digest = st->root_digest();
        }
      }
    }
    reports.push_back(std::move(r));
  }
  return reports;
}

std::string FormatReportTable(const std::vector<EndpointReport>& reports, bool stats) {
  std::vector<std::string> header = {"ENDPOINT", "STATUS"};
  if (stats) header.insert(header.end(), {"NAME", "NODE ID", "KEYS", "ROOT"});
  Table table(std::move(header));
  table.AlignRight(4);  // KEYS.
  for (const EndpointReport& r : reports) {
    if (!r.status.ok()) {
      table.AddRow({r.endpoint, absl::StrCat(absl::StatusCodeToString(r.status.code()), ": ",
                                             r.status.message())});
    } else if (stats) {
      table.AddRow({r.endpoint, r.health, r.node_name, absl::StrFormat("%016x", r.node_id),
                    absl::StrCat(r.key_count), r.root_digest});
    } else {
      table.AddRow({r.endpoint, r.health});
    }
  }
  return table.Render();
}

std::string FormatReportJson(const std::vector<EndpointReport>& reports, bool stats) {
  std::string out;
  for (const EndpointReport& r : reports) {
    absl::StrAppend(&out, "{\"endpoint\":", JsonString(r.endpoint),
                    ",\"ok\":", r.status.ok() ? "true" : "false",
                    ",\"health\":", JsonString(r.health));
    if (!r.status.ok()) {
      absl::StrAppend(&out, ",\"error\":",
                      JsonString(absl::StrCat(absl::StatusCodeToString(r.status.code()), ": ",
                                              r.status.message())));
    } else if (stats) {
      absl::StrAppend(&out, ",\"node_name\":", JsonString(r.node_name), ",\"node_id\":\"",
                      absl::StrFormat("%016x", r.node_id), "\",\"key_count\":", r.key_count,
                      ",\"root_digest\":", JsonString(r.root_digest));
    }
    out += "}\n";
  }
  return out;
}

bool AllServing(const std::vector<EndpointReport>& reports) {
  return std::all_of(reports.begin(), reports.end(), [](const EndpointReport& r) {
    return r.status.ok() && r.health == "SERVING";
  });
}

}  // namespace kv::client
