// Per-server connection limits: a thousand connections that never speak, and
// idle clients, neither stop Ping from answering nor stay open for ever
// (--handshake-timeout-ms, --max-connection-idle-ms).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "tests/integration/kvd_process.h"

namespace kv::testing {
namespace {

// Sockets the process holds open.
int SocketCount(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(
           "/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code ec2;
    if (std::filesystem::read_symlink(e.path(), ec2).string().rfind("socket:", 0) == 0) ++n;
  }
  return n;
}

// Waits up to `timeout` for kvd to hold at most `max` sockets.
bool WaitForSockets(pid_t pid, int max, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (SocketCount(pid) <= max) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return SocketCount(pid) <= max;
}

void ExpectPingAnswers(const std::string& address) {
  client::ClientOptions o;
  o.timeout = absl::Seconds(2);
  o.dedicated_connection = true;
  auto c = client::Client::Connect(address, o);
  ASSERT_TRUE(c.ok()) << c.status();
  for (int i = 0; i < 10; ++i) {
    absl::Status s = (*c)->Ping();
    ASSERT_TRUE(s.ok()) << s;
  }
}

TEST(ServerLimitsTest, AThousandSilentConnectionsDoNotStopPingAndAreClosed) {
  TempDir dir;
  KvdProcess kvd(dir.path() + "/node",
                 {"--handshake-timeout-ms", "1000", "--max-connection-idle-ms", "1500"});
  ASSERT_TRUE(kvd.Start().ok()) << kvd.LogTail();
  const int base = SocketCount(kvd.pid());
  const std::string& address = kvd.address();
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  // 1000 connections that never send the HTTP/2 preface (bounded loop).
  std::vector<int> fds;
  for (int i = 0; i < 1000; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      break;
    }
    fds.push_back(fd);
  }
  EXPECT_EQ(fds.size(), 1000u);
  ExpectPingAnswers(address);
  // Closed by the server after the handshake timeout.
  EXPECT_TRUE(WaitForSockets(kvd.pid(), base + 20, absl::Seconds(10)))
      << SocketCount(kvd.pid()) << " sockets, " << base << " at start";
  for (int fd : fds) close(fd);

  // 200 clients that connect, call once and go idle: closed after
  // --max-connection-idle-ms.
  std::vector<std::unique_ptr<client::Client>> idle;
  for (int i = 0; i < 200; ++i) {
    client::ClientOptions o;
    o.timeout = absl::Seconds(5);
    o.dedicated_connection = true;
    auto c = client::Client::Connect(address, o);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->Ping().ok());
    idle.push_back(*std::move(c));
  }
  EXPECT_GE(SocketCount(kvd.pid()), base + 150);
  ExpectPingAnswers(address);
  EXPECT_TRUE(WaitForSockets(kvd.pid(), base + 20, absl::Seconds(10)))
      << SocketCount(kvd.pid()) << " sockets, " << base << " at start";
  // They reconnect when used again.
  for (int i = 0; i < 200; i += 50) EXPECT_TRUE(idle[i]->Ping().ok());
}

}  // namespace
}  // namespace kv::testing
