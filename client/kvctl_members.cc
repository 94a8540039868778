#include "client/kvctl_members.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/kvctl_util.h"

namespace kv::client {
namespace {

bool IsLive(const kv::v1::Member& m) {
  return m.status() == "alive" || m.status() == "suspect";
}

std::string Address(const kv::v1::Member& m) {
  return m.client_address().empty() ? m.peer_address() : m.client_address();
}

// Names and addresses come from flags and gossip: any bytes.
std::string Quote(absl::string_view s) {
  return IsValidUtf8(s) ? JsonQuote(s) : JsonQuote(TextEscape(s));
}

std::string JsonList(const std::vector<std::string>& names) {
  std::vector<std::string> quoted;
  for (const std::string& n : names) quoted.push_back(Quote(n));
  return absl::StrCat("[", absl::StrJoin(quoted, ","), "]");
}

std::string FormatAge(int64_t ms) {
  if (ms < 10'000) return absl::StrFormat("%.1fs", ms / 1000.0);
  if (ms < 3'600'000) return absl::StrFormat("%ds", ms / 1000);
  return absl::StrFormat("%.1fh", ms / 3'600'000.0);
}

}  // namespace

std::string NodeIdHex(uint64_t node_id) { return absl::StrFormat("%016x", node_id); }

absl::StatusOr<uint64_t> ResolveMember(absl::string_view ref,
                                       const kv::v1::MembersResponse& members) {
  int named = 0;
  uint64_t id = 0;
  for (const kv::v1::Member& m : members.members()) {
    if (m.name() == ref) {
      ++named;
      id = m.node_id();
    }
  }
  if (named > 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        named, " members are named ", ref, "; name the node by its id instead"));
  }
  if (named == 1) return id;
  absl::string_view digits = ref;
  const bool hex_prefix =
      absl::StartsWith(digits, "0x") || absl::StartsWith(digits, "0X");
  if (hex_prefix) digits.remove_prefix(2);
  if (hex_prefix || digits.size() == 16) {
    if (absl::SimpleHexAtoi(digits, &id) && !digits.empty() &&
        absl::ascii_isxdigit(digits[0])) {
      return id;
    }
  } else if (absl::SimpleAtoi(digits, &id) && !digits.empty() &&
             absl::ascii_isdigit(digits[0])) {
    return id;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "no member is named ", ref,
      " and it is not a node id (16 hex digits, 0x..., or decimal)"));
}

std::string FormatMembersTable(const kv::v1::MembersResponse& members) {
  std::string out = absl::StrFormat(
      "%-12s %-16s %-21s %-8s %-13s %8s %6s %-8s %9s %-18s %s\n", "NAME", "NODE ID",
      "ADDRESS", "STATUS", "GENERATION", "HB AGE", "PHI", "ROOT", "KEYS", "VERSION",
      "CLOCK OFFSET");
  for (const kv::v1::Member& m : members.members()) {
    std::string offset = "-";
    if (m.is_self()) {
      offset = "0";
    } else if (m.clock_offset_known()) {
      offset = absl::StrFormat("%+dms%s", m.clock_offset_ms(),
                               m.clock_skewed() ? " (skewed)" : "");
    }
    const bool removed = m.status() == "removed";
    // Age and phi mean something only while the failure detector watches.
    const bool watched =
        !m.is_self() && (m.status() == "alive" || m.status() == "suspect" ||
                         m.status() == "down");
    absl::StrAppendFormat(
        &out, "%-12s %-16s %-21s %-8s %-13s %8s %6s %-8s %9d %-18s %s\n",
        absl::StrCat(m.name(), m.is_self() ? "*" : ""), NodeIdHex(m.node_id()),
        Address(m), m.status(),
        removed ? std::string("-") : absl::StrCat(m.generation()),
        watched ? FormatAge(m.heartbeat_age_ms()) : std::string("-"),
        watched ? absl::StrFormat("%.1f", m.phi()) : std::string("-"),
        m.root_digest().substr(0, 8), m.key_count(),
        m.build_version().empty() ? std::string("-") : m.build_version(), offset);
  }
  absl::StrAppend(&out, members.members_size(), " members (* = the node asked); ",
                  members.down_events(), " down events, ",
                  members.clock_skew_events(), " clock skew warnings since it started\n");
  return out;
}

ClusterVerdict JudgeCluster(const kv::v1::MembersResponse& members) {
  ClusterVerdict v;
  // Live members by root; the reference is the largest group (ties: the
  // group of the node asked, then the smallest root).
  std::map<std::string, std::vector<const kv::v1::Member*>> by_root;
  std::string self_root;
  for (const kv::v1::Member& m : members.members()) {
    if (m.status() == "suspect") v.suspect.push_back(m.name());
    if (m.status() == "down") v.down.push_back(m.name());
    if (!IsLive(m)) continue;
    ++v.live;
    by_root[m.root_digest()].push_back(&m);
    if (m.is_self()) self_root = m.root_digest();
  }
  const std::vector<const kv::v1::Member*>* best = nullptr;
  for (const auto& [root, group] : by_root) {
    if (best == nullptr || group.size() > best->size() ||
        (group.size() == best->size() && root == self_root)) {
      best = &group;
      v.root_digest = root;
      v.key_count = group.front()->key_count();
    }
  }
  for (const kv::v1::Member& m : members.members()) {
    if (IsLive(m) && m.root_digest() != v.root_digest) v.differ.push_back(m.name());
  }
  v.converged = v.live > 0 && v.differ.empty() && v.suspect.empty() && v.down.empty();
  return v;
}

std::string FormatClusterText(const kv::v1::MembersResponse& members,
                              const ClusterVerdict& v) {
  std::string out = absl::StrFormat("%-12s %-21s %-8s %-32s %9s\n", "NAME", "ADDRESS",
                                    "STATUS", "ROOT", "KEYS");
  for (const kv::v1::Member& m : members.members()) {
    if (!IsLive(m)) continue;
    absl::StrAppendFormat(&out, "%-12s %-21s %-8s %-32s %9d\n", m.name(), Address(m),
                          m.status(), m.root_digest(), m.key_count());
  }
  if (v.converged) {
    absl::StrAppend(&out, "converged: ", v.live, " live members, root ", v.root_digest,
                    ", ", v.key_count, " keys\n");
    return out;
  }
  std::vector<std::string> why;
  if (v.live == 0) why.push_back("no live member");
  if (!v.differ.empty()) {
    why.push_back(absl::StrCat(absl::StrJoin(v.differ, ", "), " differ from root ",
                               v.root_digest.substr(0, 8), " (", v.key_count,
                               " keys)"));
  }
  if (!v.suspect.empty()) {
    why.push_back(absl::StrCat("suspect: ", absl::StrJoin(v.suspect, ", ")));
  }
  if (!v.down.empty()) why.push_back(absl::StrCat("down: ", absl::StrJoin(v.down, ", ")));
  absl::StrAppend(&out, "not converged: ", absl::StrJoin(why, "; "), "\n");
  return out;
}

std::string FormatClusterJson(const kv::v1::MembersResponse& members,
                              const ClusterVerdict& v) {
  std::vector<std::string> live;
  for (const kv::v1::Member& m : members.members()) {
    if (!IsLive(m)) continue;
    live.push_back(absl::StrCat(
        "{\"name\":", Quote(m.name()), ",\"node_id\":\"", NodeIdHex(m.node_id()),
        "\",\"address\":", Quote(Address(m)), ",\"status\":", JsonQuote(m.status()),
        ",\"root_digest\":", JsonQuote(m.root_digest()), ",\"key_count\":", m.key_count(),
        "}"));
  }
  return absl::StrCat("{\"converged\":", v.converged ? "true" : "false",
                      ",\"root_digest\":", JsonQuote(v.root_digest),
                      ",\"key_count\":", v.key_count, ",\"members\":[",
                      absl::StrJoin(live, ","), "],\"differ\":", JsonList(v.differ),
                      ",\"suspect\":", JsonList(v.suspect),
                      ",\"down\":", JsonList(v.down), "}\n");
}

}  // namespace kv::client
