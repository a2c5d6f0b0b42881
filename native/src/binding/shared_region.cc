// Shared weight regions (see shared_region.h). The load thread packs straight into a region's
// writable view, releases the view and seals the region; worker threads map it read-only by
// descriptor and worker processes reopen it through /proc/<pid>/fd/<fd>. The serving process
// keeps the descriptor until the version is unloaded.
#include "shared_region.h"

#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "addon.h"
#include "args.h"
#include "typed.h"

namespace maas::binding {

namespace {

// Regions are process-wide (a descriptor belongs to the process, not to the thread that made it),
// so their bookkeeping is too: the one place in the addon with process-wide mutable state.
std::mutex g_mutex;
// Regions created but not yet claimed by the serving thread, with the tag of the load that made
// them: a load stopped mid-way (its thread ended) leaves its region here, and
// closeUnclaimedRegions(tag) closes it without touching another load's.
std::unordered_map<int, double> g_unclaimed;

// A writable view handed to JavaScript as an opaque External (not an ArrayBuffer: Node 20 makes
// no external buffer above 4 GiB, and a billion-parameter fp32 model packs to 4.8 GB): unmapped by
// releaseRegionView() or, failing that, by the External's finalizer. JavaScript passes it back
// to the pack functions, which find it here.
struct WritableView {
  void* data;
  size_t size;
  bool mapped;
};
// The live views: a pointer from JavaScript is trusted only once found here.
std::unordered_set<WritableView*> g_views;

constexpr size_t kMaxRegionBytes = size_t{1} << 40;  // 1 TiB: far above any dense model

[[noreturn]] void ThrowErrno(Napi::Env env, const char* what, int error) {
  ThrowCoded(env, error == ENOMEM || error == ENOSPC ? "MAAS_ERR_NATIVE_OUT_OF_MEMORY" : "MAAS_ERR_NATIVE_INTERNAL",
             std::string(what) + ": " + std::strerror(error));
}

int CreateAnonymousFile() {
#ifdef __linux__
  return memfd_create("maas-weights", MFD_CLOEXEC | MFD_ALLOW_SEALING);
#else
  // Elsewhere a POSIX shared-memory object, unlinked at once: only this process's descriptor names it.
  std::random_device random;
  const std::string name = "/maas-" + std::to_string(getpid()) + "-" + std::to_string(random());
  const int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd >= 0) shm_unlink(name.c_str());
  return fd;
#endif
}

void FinalizeView(Napi::Env, WritableView* view) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (view->mapped) {
    munmap(view->data, view->size);
    g_views.erase(view);
  }
  delete view;
}

// The live view a JavaScript value names (under g_mutex), or nullptr.
WritableView* LiveView(const Napi::Value& v) {
  if (!v.IsExternal()) return nullptr;
  auto* view = v.As<Napi::External<WritableView>>().Data();
  return g_views.count(view) != 0 ? view : nullptr;
}

// Sizes and maps a new region's file writable and registers it unclaimed under `tag`; the
// descriptor is closed on failure. Returns { fd, view: ArrayBuffer }.
Napi::Value MapNewRegion(Napi::Env env, int fd, size_t bytes, double tag, const char* fn) {
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int error = errno;
    close(fd);
    ThrowErrno(env, (std::string(fn) + ": cannot size the region's file").c_str(), error);
  }
  void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) {
    const int error = errno;
    close(fd);
    ThrowErrno(env, (std::string(fn) + ": cannot map the region's file").c_str(), error);
  }
  auto* view = new WritableView{data, bytes, true};
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_unclaimed[fd] = tag;
    g_views.insert(view);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("view", Napi::External<WritableView>::New(env, view, FinalizeView));
  return out;
}

size_t ArgRegionBytes(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  const size_t bytes = ArgSize(info, index, "bytes");
  if (bytes == 0 || bytes > kMaxRegionBytes) {
    ThrowCoded(info.Env(), "MAAS_ERR_ARG_RANGE", std::string(fn) + ": expected 1 byte to 1 TiB for bytes", true);
  }
  return bytes;
}

double ArgTag(const Napi::CallbackInfo& info, size_t index) {
  return info.Length() > index && info[index].IsNumber() ? info[index].As<Napi::Number>().DoubleValue() : 0;
}

std::string ArgPath(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsString()) {
    ThrowCoded(info.Env(), "MAAS_ERR_ARG_TYPE", "expected a path", true);
  }
  return info[index].As<Napi::String>();
}

// createRegion(bytes, tag = 0) -> { fd, view: ArrayBuffer }: a new anonymous region of `bytes`
// zero bytes, its view writable, unclaimed under `tag`.
Napi::Value CreateRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t bytes = ArgRegionBytes(info, 0, "createRegion");
  const int fd = CreateAnonymousFile();
  if (fd < 0) ThrowErrno(env, "createRegion: cannot create a shared-memory file", errno);
  return MapNewRegion(env, fd, bytes, ArgTag(info, 1), "createRegion");
}

// createFileRegion(path, bytes, tag = 0) -> { fd, view }: a region backed by a new file at `path`
// (created exclusively, mode 0600, never through a symbolic link), so other processes can map
// the packed weights from the page cache by opening that file.
Napi::Value CreateFileRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = ArgPath(info, 0);
  const size_t bytes = ArgRegionBytes(info, 1, "createFileRegion");
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) ThrowErrno(env, ("createFileRegion: cannot create " + path).c_str(), errno);
  return MapNewRegion(env, fd, bytes, ArgTag(info, 2), "createFileRegion");
}

// releaseRegionView(view): unmaps a view from createRegion now; the handle names nothing after.
Napi::Value ReleaseRegionView(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::lock_guard<std::mutex> lock(g_mutex);
  WritableView* view = LiveView(info[0]);
  if (view == nullptr) ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "releaseRegionView: not a live region view", true);
  munmap(view->data, view->size);
  view->mapped = false;
  g_views.erase(view);
  return env.Undefined();
}

// dropRegionPages(view): takes a writable view's pages out of this process's resident set; the
// bytes stay in the region's file (page cache, written back as usual) and come back on access.
Napi::Value DropRegionPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::lock_guard<std::mutex> lock(g_mutex);
  WritableView* view = LiveView(info[0]);
  if (view == nullptr) ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "dropRegionPages: not a live region view", true);
  if (madvise(view->data, view->size, MADV_DONTNEED) != 0) ThrowErrno(env, "dropRegionPages", errno);
  return env.Undefined();
}

int ArgDescriptor(const Napi::CallbackInfo& info, size_t index) {
  const size_t fd = ArgSize(info, index, "fd");
  if (fd > 1u << 30) ThrowCoded(info.Env(), "MAAS_ERR_ARG_RANGE", "expected a file descriptor for fd", true);
  return static_cast<int>(fd);
}

// sealRegion(fd): the region's size and bytes can no longer change (Linux; elsewhere a no-op).
Napi::Value SealRegion(const Napi::CallbackInfo& info) {
  const int fd = ArgDescriptor(info, 0);
#ifdef __linux__
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    ThrowErrno(info.Env(), "sealRegion", errno);
  }
#endif
  return info.Env().Undefined();
}

// syncRegion(fd): the region's file reaches the disk (before it is renamed into a cache).
Napi::Value SyncRegion(const Napi::CallbackInfo& info) {
  const int fd = ArgDescriptor(info, 0);
  if (fdatasync(fd) != 0) ThrowErrno(info.Env(), "syncRegion", errno);
  return info.Env().Undefined();
}

// claimRegion(fd): the serving thread owns the region now (closeUnclaimedRegions leaves it).
Napi::Value ClaimRegion(const Napi::CallbackInfo& info) {
  const int fd = ArgDescriptor(info, 0);
  std::lock_guard<std::mutex> lock(g_mutex);
  return Napi::Boolean::New(info.Env(), g_unclaimed.erase(fd) == 1);
}

// closeUnclaimedRegions(tag) -> count: closes the regions of a load that never handed them over.
Napi::Value CloseUnclaimedRegions(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowCoded(info.Env(), "MAAS_ERR_ARG_TYPE", "expected a tag", true);
  const double tag = info[0].As<Napi::Number>().DoubleValue();
  std::lock_guard<std::mutex> lock(g_mutex);
  size_t count = 0;
  for (auto it = g_unclaimed.begin(); it != g_unclaimed.end();) {
    if (it->second == tag) {
      close(it->first);
      it = g_unclaimed.erase(it);
      ++count;
    } else {
      ++it;
    }
  }
  return Napi::Number::New(info.Env(), static_cast<double>(count));
}

// openRegion(path) -> fd: a read-only descriptor of a region another process shares by path.
Napi::Value OpenRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = ArgPath(info, 0);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, ("openRegion: cannot open " + path).c_str(), errno);
  return Napi::Number::New(env, fd);
}

// openCachedRegion(path, tag = 0) -> { fd, byteLength }: a read-only descriptor of a packed file
// in a cache, unclaimed under `tag`. The addon trusts packed bytes beyond their header checks, so
// the file must be what this user wrote: a regular file (not reached through a symbolic link)
// owned by this process's effective user and writable by no one else.
Napi::Value OpenCachedRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = ArgPath(info, 0);
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, ("openCachedRegion: cannot open " + path).c_str(), errno);
  struct stat st;
  const char* problem = nullptr;
  if (fstat(fd, &st) != 0) {
    problem = "cannot stat it";
  } else if (!S_ISREG(st.st_mode)) {
    problem = "it is not a regular file";
  } else if (st.st_uid != geteuid()) {
    problem = "it is owned by another user";
  } else if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    problem = "other users may write it";
  } else if (st.st_size <= 0 || static_cast<uint64_t>(st.st_size) > kMaxRegionBytes) {
    problem = "its size is out of range";
  }
  if (problem) {
    close(fd);
    ThrowCoded(env, "MAAS_ERR_PACKED_CACHE_UNSAFE", "openCachedRegion: refusing " + path + ": " + problem);
  }
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_unclaimed[fd] = ArgTag(info, 1);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("byteLength", Napi::Number::New(env, static_cast<double>(st.st_size)));
  return out;
}

// closeRegion(fd)
Napi::Value CloseRegion(const Napi::CallbackInfo& info) {
  const int fd = ArgDescriptor(info, 0);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_unclaimed.erase(fd);
  }
  if (close(fd) != 0) ThrowErrno(info.Env(), "closeRegion", errno);
  return info.Env().Undefined();
}

// releaseFreeMemory() -> boolean: hands the allocator's free pages back to the system. A load
// thread's large transient buffers end in glibc's per-thread arenas, which outlive the thread
// and are not trimmed on their own; without this the process keeps them resident. The pooled
// predict outputs go too.
Napi::Value ReleaseFreeMemory(const Napi::CallbackInfo& info) {
  DrainOutputPool();
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace

namespace {

// The process's read-only mappings of regions, by file identity and length, with their users.
struct MappedRegion {
  void* data;
  size_t refs;
};
std::map<std::tuple<dev_t, ino_t, size_t>, MappedRegion> g_mapped;

}  // namespace

bool RegionMapping::Map(int fd, size_t bytes) {
  Reset();
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  // A region shorter than its record would fault on the first read past its end.
  if (bytes == 0 || static_cast<uint64_t>(st.st_size) < bytes) {
    errno = EINVAL;
    return false;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_mapped.find(std::make_tuple(st.st_dev, st.st_ino, bytes));
  if (it == g_mapped.end()) {
    void* data = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (data == MAP_FAILED) return false;
    it = g_mapped.emplace(std::make_tuple(st.st_dev, st.st_ino, bytes), MappedRegion{data, 0}).first;
  }
  ++it->second.refs;
  data_ = it->second.data;
  size_ = bytes;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  return true;
}

void RegionMapping::Reset() {
  if (data_ != nullptr) {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_mapped.find(std::make_tuple(dev_, ino_, size_));
    if (it != g_mapped.end() && --it->second.refs == 0) {
      munmap(it->second.data, size_);
      g_mapped.erase(it);
    }
  }
  data_ = nullptr;
  size_ = 0;
}

bool RegionViewBytes(const Napi::Value& value, uint8_t** data, size_t* size) {
  std::lock_guard<std::mutex> lock(g_mutex);
  WritableView* view = LiveView(value);
  if (view == nullptr) return false;
  *data = static_cast<uint8_t*>(view->data);
  *size = view->size;
  return true;
}

void RegisterSharedRegions(Napi::Env env, Napi::Object exports) {
  exports.Set("createRegion", Napi::Function::New(env, CreateRegion, "createRegion"));
  exports.Set("createFileRegion", Napi::Function::New(env, CreateFileRegion, "createFileRegion"));
  exports.Set("syncRegion", Napi::Function::New(env, SyncRegion, "syncRegion"));
  exports.Set("dropRegionPages", Napi::Function::New(env, DropRegionPages, "dropRegionPages"));
  exports.Set("openCachedRegion", Napi::Function::New(env, OpenCachedRegion, "openCachedRegion"));
  exports.Set("releaseRegionView", Napi::Function::New(env, ReleaseRegionView, "releaseRegionView"));
  exports.Set("sealRegion", Napi::Function::New(env, SealRegion, "sealRegion"));
  exports.Set("claimRegion", Napi::Function::New(env, ClaimRegion, "claimRegion"));
  exports.Set("closeUnclaimedRegions", Napi::Function::New(env, CloseUnclaimedRegions, "closeUnclaimedRegions"));
  exports.Set("openRegion", Napi::Function::New(env, OpenRegion, "openRegion"));
  exports.Set("closeRegion", Napi::Function::New(env, CloseRegion, "closeRegion"));
  exports.Set("releaseFreeMemory", Napi::Function::New(env, ReleaseFreeMemory, "releaseFreeMemory"));
}

}  // namespace maas::binding
