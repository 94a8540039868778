#include "server/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace kv::server {
namespace {

using ::testing::HasSubstr;

TEST(TokenAuthenticatorTest, ParsesTokensAndChecksRoles) {
  auto auth = TokenAuthenticator::Parse(
      "# comment\n\nr-token read\n  w-token\treadwrite  \nadm admin\n");
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ((*auth)->size(), 3u);
  const std::string r = "Bearer r-token", w = "Bearer w-token", a = "Bearer adm";
  EXPECT_TRUE((*auth)->Check(&r, Role::kRead, "Get").ok());
  EXPECT_EQ((*auth)->Check(&r, Role::kReadWrite, "Put").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_THAT((*auth)->Check(&r, Role::kReadWrite, "Put").message(),
              HasSubstr("a read token may not call Put (it needs readwrite)"));
  EXPECT_TRUE((*auth)->Check(&w, Role::kReadWrite, "Put").ok());
  EXPECT_EQ((*auth)->Check(&w, Role::kAdmin, "Stats").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE((*auth)->Check(&a, Role::kAdmin, "Stats").ok());
  EXPECT_TRUE((*auth)->Check(&a, Role::kRead, "Get").ok());
}

TEST(TokenAuthenticatorTest, MissingOrUnknownTokenIsUnauthenticated) {
  auto auth = TokenAuthenticator::Parse("t read\n");
  ASSERT_TRUE(auth.ok());
  const std::string wrong = "Bearer x", no_scheme = "t", empty = "Bearer ";
  EXPECT_EQ((*auth)->Check(nullptr, Role::kRead, "Get").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Check(&wrong, Role::kRead, "Get").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Check(&no_scheme, Role::kRead, "Get").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Check(&empty, Role::kRead, "Get").code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(TokenAuthenticatorTest, RefusesMalformedFiles) {
  EXPECT_THAT(TokenAuthenticator::Parse("t superuser\n").status().message(),
              HasSubstr("line 1: role must be read, readwrite or admin"));
  EXPECT_THAT(TokenAuthenticator::Parse("a read\nb\n").status().message(),
              HasSubstr("line 2: expected `TOKEN ROLE`"));
  EXPECT_THAT(TokenAuthenticator::Parse("a read\na admin\n").status().message(),
              HasSubstr("line 2: the token is listed twice"));
  EXPECT_EQ(TokenAuthenticator::Parse("# nothing\n").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TokenAuthenticator::FromFile("/nonexistent/tokens").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace kv::server
