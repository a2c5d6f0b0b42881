// Shared weight regions: packed weights in an anonymous shared-memory file (memfd on Linux), so
// every worker thread and worker process maps the same pages, and the memory goes back to the
// system as soon as the last mapping and descriptor close (not when a garbage collector runs).
#pragma once
#include <napi.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace maas::binding {

// A read-only mapping of a region, owned by one model handle: released by Reset() or the
// destructor. Handles in different threads of one process that open the same region (the same
// file, whatever the descriptor) share one mapping, counted: the weights appear once in the
// process's resident set, not once per worker thread.
class RegionMapping {
 public:
  RegionMapping() = default;
  RegionMapping(const RegionMapping&) = delete;
  RegionMapping& operator=(const RegionMapping&) = delete;
  ~RegionMapping() { Reset(); }

  // Maps `bytes` bytes of region descriptor `fd` read-only; false (errno set) when it cannot.
  bool Map(int fd, size_t bytes);
  void Reset();
  const void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  // The mapped file's identity: the key of the process-wide mapping this handle shares.
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// The bytes of a writable region view (createRegion's `view`, an opaque External); false when
// `value` is not a live one.
bool RegionViewBytes(const Napi::Value& value, uint8_t** data, size_t* size);

void RegisterSharedRegions(Napi::Env env, Napi::Object exports);

}  // namespace maas::binding
