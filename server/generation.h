// The gossip generation of a node: its start epoch, persisted.
//
// A restart must gossip a higher generation than the run before it, or the
// other members take its new state for a stale copy and mark the running
// node down. The wall clock alone does not promise that (it can step back),
// so the last generation is kept in <data_dir>/GENERATION and the next one
// is max(now_ms, last + 1).
#ifndef KV_SERVER_GENERATION_H_
#define KV_SERVER_GENERATION_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace kv::server {

// Returns the generation for this start and persists it durably (written to
// a temporary file, fsynced, renamed over GENERATION, directory fsynced)
// before returning. `data_dir` must exist.
// Errors: DATA_LOSS when GENERATION exists but does not hold a number;
// INTERNAL for I/O errors (the message names the file).
absl::StatusOr<uint64_t> NextGeneration(const std::string& data_dir, int64_t now_ms);

}  // namespace kv::server

#endif  // KV_SERVER_GENERATION_H_
