// Tunables of records and of the Merkle tree, defined once for every layer
// (the model is LevelDB's db/dbformat.h `config` namespace): kvd's flags,
// StoreOptions, the server's Limits and the peer protocol's limits all take
// their defaults and bounds from here. Each value says why it is what it is.
//
// Thread safety: constants.
#ifndef KV_STORAGE_CONFIG_H_
#define KV_STORAGE_CONFIG_H_

#include <cstddef>
#include <cstdint>

namespace kv::storage::config {

// Largest key accepted by default (kvd --max-key-bytes). Keys are stored twice
// (data and hash-index columns) and sent in anti-entropy Diffs, so they should
// stay small; 4 KiB holds any path-like key.
inline constexpr size_t kDefaultMaxKeyBytes = 4096;

// Largest value accepted by default (kvd --max-value-bytes). A put at the
// limits stays well under gRPC's usual 4 MiB message size, and a record at the
// limits is about one peer exchange message (1 MiB), so repair of a large
// value costs one message, not a stream of them.
inline constexpr size_t kDefaultMaxValueBytes = size_t{1} << 20;

// Merkle leaves by default: 2^16 (kvd --leaf-depth). The in-memory tree is
// then 2^17 nodes of 24 bytes (3 MiB), and at a million keys a leaf holds
// about 15, so one differing key costs an exchange few entries.
inline constexpr uint32_t kDefaultLeafDepth = 16;

// Deepest Merkle tree accepted (StoreOptions, kvd --leaf-depth, stored
// metadata): at 24 the in-memory tree is 2^25 nodes of 24 bytes (768 MiB),
// the most a node should spend on it. Leaf indexes are u32 (the leaf key).
inline constexpr uint32_t kMaxLeafDepth = 24;

}  // namespace kv::storage::config

#endif  // KV_STORAGE_CONFIG_H_
