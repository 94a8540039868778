#include "storage/memory_engine.h"

#include "storage/record.h"

namespace kv::storage {
namespace {

class MemoryIterator final : public Iterator {
 public:
  using Map = std::map<std::string, std::string, std::less<>>;
  explicit MemoryIterator(std::shared_ptr<const Map> map)
      : map_(std::move(map)), it_(map_->end()) {}

  void Seek(absl::string_view target) override { it_ = map_->lower_bound(target); }
  void SeekToFirst() override { it_ = map_->begin(); }
  bool Valid() const override { return it_ != map_->end(); }
  void Next() override { ++it_; }
  absl::string_view key() const override { return it_->first; }
  absl::string_view value() const override { return it_->second; }
  absl::Status status() const override { return absl::OkStatus(); }

 private:
  const std::shared_ptr<const Map> map_;
  Map::const_iterator it_;
};

}  // namespace

MemoryEngine::MemoryEngine() {
  for (auto& c : columns_) c = std::make_shared<Map>();
}

absl::StatusOr<std::optional<std::string>> MemoryEngine::Get(
    Column column, absl::string_view key) {
  absl::MutexLock lock(&mu_);
  const Map& map = *columns_[static_cast<int>(column)];
  auto it = map.find(key);
  if (it == map.end()) return std::nullopt;
  return it->second;
}

absl::Status MemoryEngine::Write(const WriteBatch& batch) {
  absl::MutexLock lock(&mu_);
  if (!fail_writes_.ok()) return fail_writes_;
  for (const WriteBatch::Op& op : batch.ops()) {
    std::shared_ptr<Map>& map = columns_[static_cast<int>(op.column)];
    if (map.use_count() > 1) map = std::make_shared<Map>(*map);  // COW.
    switch (op.kind) {
      case WriteBatch::OpKind::kPut:
        (*map)[op.key] = op.value;
        break;
      case WriteBatch::OpKind::kDelete:
        map->erase(op.key);
        break;
      case WriteBatch::OpKind::kMerge: {
        std::string& v = (*map)[op.key];
        v = MergeLeafValues(v, op.value);
        break;
      }
    }
  }
  return absl::OkStatus();
}

std::unique_ptr<Iterator> MemoryEngine::NewIterator(Column column) {
  absl::MutexLock lock(&mu_);
  return std::make_unique<MemoryIterator>(columns_[static_cast<int>(column)]);
}

void MemoryEngine::FailWrites(absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_writes_ = std::move(status);
}

}  // namespace kv::storage
