// Status helpers shared by every library (abseil 20220623 has none).
//
// Why in storage/: kv_storage is the base library. replication/ and server/
// link it (and use these macros); client/ uses none. The top-level layout
// has no common folder, and proto/ holds generated code only, so the bottom
// of the dependency graph is the one place every user already depends on.
// Header-only: including it adds no link dependency.
#ifndef KV_STORAGE_STATUS_MACROS_H_
#define KV_STORAGE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KV_STATUS_CONCAT_INNER_(a, b) a##b
#define KV_STATUS_CONCAT_(a, b) KV_STATUS_CONCAT_INNER_(a, b)

// Returns `expr`'s status from the calling function when it is not OK.
#define KV_RETURN_IF_ERROR(expr)                \
  do {                                          \
    const ::absl::Status kv_status_ = (expr);   \
    if (!kv_status_.ok()) return kv_status_;    \
  } while (0)

// `KV_ASSIGN_OR_RETURN(auto x, MakeX());` declares/assigns `x` from a
// StatusOr, or returns its status when it is not OK.
#define KV_ASSIGN_OR_RETURN(lhs, rexpr) \
  KV_ASSIGN_OR_RETURN_IMPL_(KV_STATUS_CONCAT_(kv_statusor_, __LINE__), lhs, rexpr)

#define KV_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                              \
  if (!statusor.ok()) return statusor.status();         \
  lhs = std::move(statusor).value()

#endif  // KV_STORAGE_STATUS_MACROS_H_
