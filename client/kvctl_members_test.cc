#include "client/kvctl_members.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kv::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

kv::v1::Member* Add(kv::v1::MembersResponse* r, std::string name, uint64_t id,
                    std::string status, std::string root, int64_t keys) {
  kv::v1::Member* m = r->add_members();
  m->set_name(std::move(name));
  m->set_node_id(id);
  m->set_status(std::move(status));
  m->set_root_digest(std::move(root));
  m->set_key_count(keys);
  m->set_client_address("127.0.0.1:7071");
  return m;
}

const std::string kRootA(32, 'a');
const std::string kRootB(32, 'b');

TEST(ResolveMemberTest, NameFirstThenHexThenDecimal) {
  kv::v1::MembersResponse r;
  Add(&r, "node1", 0x1234, "alive", kRootA, 1);
  Add(&r, "42", 7, "down", kRootA, 1);
  EXPECT_EQ(*ResolveMember("node1", r), 0x1234u);
  EXPECT_EQ(*ResolveMember("42", r), 7u);  // A name wins over a number.
  EXPECT_EQ(*ResolveMember("00000000000012ab", r), 0x12abu);
  EXPECT_EQ(*ResolveMember("0xff", r), 0xffu);
  EXPECT_EQ(*ResolveMember("18446744073709551615", r), ~uint64_t{0});
  EXPECT_EQ(ResolveMember("nobody", r).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveMember("-5", r).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveMember("0x", r).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResolveMemberTest, AmbiguousName) {
  kv::v1::MembersResponse r;
  Add(&r, "kvd", 1, "alive", kRootA, 1);
  Add(&r, "kvd", 2, "alive", kRootA, 1);
  EXPECT_EQ(ResolveMember("kvd", r).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(JudgeClusterTest, ConvergedWhenLiveRootsAgree) {
  kv::v1::MembersResponse r;
  Add(&r, "n1", 1, "alive", kRootA, 5)->set_is_self(true);
  Add(&r, "n2", 2, "alive", kRootA, 5);
  Add(&r, "n3", 3, "left", kRootB, 4);  // Left members do not count.
  const ClusterVerdict v = JudgeCluster(r);
  EXPECT_TRUE(v.converged);
  EXPECT_EQ(v.live, 2);
  EXPECT_EQ(v.root_digest, kRootA);
  EXPECT_EQ(v.key_count, 5);
  EXPECT_THAT(FormatClusterText(r, v), HasSubstr("converged: 2 live members"));
  EXPECT_THAT(FormatClusterJson(r, v), HasSubstr("\"converged\":true"));
}

TEST(JudgeClusterTest, NamesTheMinorityAndTheDown) {
  kv::v1::MembersResponse r;
  Add(&r, "n1", 1, "alive", kRootB, 4)->set_is_self(true);
  Add(&r, "n2", 2, "alive", kRootA, 5);
  Add(&r, "n3", 3, "suspect", kRootA, 5);
  Add(&r, "n4", 4, "down", kRootA, 5);
  const ClusterVerdict v = JudgeCluster(r);
  EXPECT_FALSE(v.converged);
  EXPECT_EQ(v.root_digest, kRootA);
  EXPECT_THAT(v.differ, ElementsAre("n1"));
  EXPECT_THAT(v.suspect, ElementsAre("n3"));
  EXPECT_THAT(v.down, ElementsAre("n4"));
  const std::string text = FormatClusterText(r, v);
  EXPECT_THAT(text, HasSubstr("not converged: n1 differ"));
  EXPECT_THAT(text, HasSubstr("down: n4"));
  EXPECT_THAT(FormatClusterJson(r, v), HasSubstr("\"down\":[\"n4\"]"));
}

TEST(JudgeClusterTest, TieGoesToTheNodeAsked) {
  kv::v1::MembersResponse r;
  Add(&r, "n1", 1, "alive", kRootB, 4)->set_is_self(true);
  Add(&r, "n2", 2, "alive", kRootA, 5);
  const ClusterVerdict v = JudgeCluster(r);
  EXPECT_EQ(v.root_digest, kRootB);
  EXPECT_THAT(v.differ, ElementsAre("n2"));
  EXPECT_THAT(v.down, IsEmpty());
}

TEST(FormatMembersTableTest, OneLinePerMember) {
  kv::v1::MembersResponse r;
  kv::v1::Member* self = Add(&r, "n1", 0xabc, "alive", kRootA, 5);
  self->set_is_self(true);
  kv::v1::Member* other = Add(&r, "n2", 2, "down", kRootB, 3);
  other->set_phi(9.25);
  other->set_heartbeat_age_ms(4200);
  other->set_clock_offset_known(true);
  other->set_clock_offset_ms(-7200000);
  other->set_clock_skewed(true);
  other->set_build_version("0123456789ab-dirty");
  r.set_down_events(1);
  const std::string t = FormatMembersTable(r);
  EXPECT_THAT(t, HasSubstr(" VERSION "));
  EXPECT_THAT(t, HasSubstr(" 0123456789ab-dirty "));
  EXPECT_THAT(t, HasSubstr("n1*"));
  EXPECT_THAT(t, HasSubstr("0000000000000abc"));
  EXPECT_THAT(t, HasSubstr("4.2s"));
  EXPECT_THAT(t, HasSubstr("9.2"));
  EXPECT_THAT(t, HasSubstr("bbbbbbbb "));
  EXPECT_THAT(t, HasSubstr("-7200000ms (skewed)"));
  EXPECT_THAT(t, HasSubstr("2 members"));
}

}  // namespace
}  // namespace kv::client
