// KvService::Drain, what kvd's shutdown does first: later writes fail with
// UNAVAILABLE, and a write under way is answered before the server stops
// (gRPC's Shutdown cancels what still runs at its deadline).
#include "server/kv_service.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "storage/fault_engine.h"
#include "storage/memory_engine.h"

namespace kv::server {
namespace {

TEST(KvServiceDrainTest, RefusesNewWritesAndAnswersTheOneUnderWay) {
  auto fault = std::make_unique<storage::FaultEngine>(
      std::make_unique<storage::MemoryEngine>());
  storage::FaultEngine* engine = fault.get();
  storage::StoreOptions so;
  so.committer_thread = true;  // As in kvd: writes are answered from it.
  auto store = storage::Store::Open(std::move(fault), so);
  ASSERT_TRUE(store.ok()) << store.status();
  KvService kv(store->get(), Limits{});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&kv);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = kv::v1::KV::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));

  // The first write stops in the engine until released.
  absl::Notification entered, release;
  engine->SetWriteHook([&](const storage::WriteBatch&) {
    if (!entered.HasBeenNotified()) {
      entered.Notify();
      release.WaitForNotificationWithTimeout(absl::Seconds(20));
    }
  });
  grpc::Status first_status;
  std::thread first([&] {
    kv::v1::PutRequest req;
    req.set_key("under-way");
    req.set_value("v");
    kv::v1::PutResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    first_status = stub->Put(&ctx, req, &resp);
  });
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(absl::Seconds(20)));

  // Draining starts; the write under way is not answered yet.
  EXPECT_EQ(kv.Drain(absl::ZeroDuration()), 1);
  {
    kv::v1::PutRequest req;
    req.set_key("late");
    req.set_value("v");
    kv::v1::PutResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status s = stub->Put(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_NE(s.error_message().find("shutting down"), std::string::npos)
        << s.error_message();
  }
  // Reads go on.
  {
    kv::v1::GetRequest req;
    req.set_key("late");
    kv::v1::GetResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    EXPECT_TRUE(stub->Get(&ctx, req, &resp).ok());
    EXPECT_FALSE(resp.found());  // The refused write was not applied.
  }

  // Drain returns once the write under way is answered; a server shutdown
  // with no grace at all then cuts nothing.
  std::thread releaser([&] {
    absl::SleepFor(absl::Milliseconds(200));
    release.Notify();
  });
  EXPECT_EQ(kv.Drain(absl::Seconds(20)), 0);
  server->Shutdown(std::chrono::system_clock::now());
  server->Wait();
  first.join();
  releaser.join();
  EXPECT_TRUE(first_status.ok()) << first_status.error_code() << " "
                                 << first_status.error_message();
  auto stored = (*store)->Get("under-way");
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE(stored->has_value());
}

}  // namespace
}  // namespace kv::server
