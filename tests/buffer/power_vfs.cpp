#include "tests/buffer/power_vfs.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

namespace meterd::buffer::test {

namespace {

constexpr std::int64_t sector = 512;

// The unsynced layer of one file, shared by every handle on it and kept across closes: a close
// syncs nothing.
struct Layer {
  std::map<std::int64_t, std::vector<char>> sectors;  // index -> content as last written
  std::optional<std::int64_t> size;                   // logical size; nullopt: the file's own
  std::optional<std::int64_t> trunc_floor;            // lowest truncation since the last sync
  bool empty() const { return sectors.empty() && !size && !trunc_floor; }
};

struct Global {
  sqlite3_vfs vfs{};
  sqlite3_vfs* real = nullptr;
  std::map<std::string, Layer> layers;
  std::uint64_t mutations = 0;
  std::uint64_t syncs = 0;
  std::uint64_t main_reads = 0;
  std::uint64_t armed_at = 0;  // 0: not armed
  bool dead = false;
};

Global& g() {
  static Global global;
  return global;
}

struct File {
  sqlite3_file base;
  sqlite3_file* real;  // allocated right after this struct
  std::string path;    // "" for files without a name (temp): passed through unlayered
  bool main_db;
};

File* as_file(sqlite3_file* f) { return reinterpret_cast<File*>(f); }

// Counts a mutating call; false when the power is (now) off.
bool power_on() {
  Global& gl = g();
  ++gl.mutations;
  if (gl.armed_at != 0 && gl.mutations >= gl.armed_at) gl.dead = true;
  return !gl.dead;
}

std::int64_t real_size(sqlite3_file* real) {
  sqlite3_int64 n = 0;
  if (real->pMethods->xFileSize(real, &n) != SQLITE_OK) return 0;
  return n;
}

std::int64_t logical_size(const Layer& l, sqlite3_file* real) {
  return l.size ? *l.size : real_size(real);
}

// Bytes [off, off + n) as the layer shows them: the file, zeros at and past a pending
// truncation, then the pending sectors.
void read_layered(const Layer& l, sqlite3_file* real, char* out, std::int64_t n, std::int64_t off) {
  std::memset(out, 0, static_cast<std::size_t>(n));
  const std::int64_t file_end = std::min(real_size(real), l.trunc_floor.value_or(INT64_MAX));
  if (off < file_end) {
    const std::int64_t m = std::min(n, file_end - off);
    real->pMethods->xRead(real, out, static_cast<int>(m), off);  // short reads zero-fill
  }
  for (auto it = l.sectors.lower_bound(off / sector);
       it != l.sectors.end() && it->first * sector < off + n; ++it) {
    const std::int64_t s0 = it->first * sector;
    const std::int64_t a = std::max(off, s0), b = std::min(off + n, s0 + sector);
    std::memcpy(out + (a - off), it->second.data() + (a - s0), static_cast<std::size_t>(b - a));
  }
}

// Writes the kept part of a layer to the file: through `real` while SQLite has it open (a
// second descriptor would drop its POSIX locks when closed), else through the path.
void apply(Layer& l, sqlite3_file* real, const std::string& path, std::mt19937* tear) {
  auto keep = [&]() { return tear == nullptr || (*tear)() % 2 == 0; };
  int fd = -1;
  if (real == nullptr) {
    fd = ::open(path.c_str(), O_RDWR);
    if (fd < 0) {
      l = Layer{};
      return;
    }
  }
  auto truncate = [&](std::int64_t n) {
    if (real) {
      real->pMethods->xTruncate(real, n);
    } else if (::ftruncate(fd, n) != 0) {
      std::abort();
    }
  };
  auto write = [&](const char* p, std::int64_t n, std::int64_t off) {
    if (real) {
      real->pMethods->xWrite(real, p, static_cast<int>(n), off);
    } else if (::pwrite(fd, p, static_cast<std::size_t>(n), off) != n) {
      std::abort();
    }
  };
  const std::int64_t size = l.size.value_or(INT64_MAX);
  if (l.trunc_floor && keep()) truncate(*l.trunc_floor);
  for (const auto& [index, data] : l.sectors) {
    const std::int64_t off = index * sector;
    if (off >= size || !keep()) continue;
    write(data.data(), std::min(sector, size - off), off);
  }
  if (tear == nullptr && l.size) truncate(*l.size);
  if (fd >= 0) ::close(fd);
  l = Layer{};
}

Layer* layer(File* f) { return f->path.empty() ? nullptr : &g().layers[f->path]; }

int x_close(sqlite3_file* f) {
  File* p = as_file(f);
  const int rc = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
  p->path.~basic_string();
  return rc;
}

int x_read(sqlite3_file* f, void* out, int n, sqlite3_int64 off) {
  File* p = as_file(f);
  if (p->main_db) ++g().main_reads;
  Layer* l = layer(p);
  if (l == nullptr) return p->real->pMethods->xRead(p->real, out, n, off);
  read_layered(*l, p->real, static_cast<char*>(out), n, off);
  return off + n <= logical_size(*l, p->real) ? SQLITE_OK : SQLITE_IOERR_SHORT_READ;
}

int x_write(sqlite3_file* f, const void* in, int n, sqlite3_int64 off) {
  File* p = as_file(f);
  if (!power_on()) return SQLITE_IOERR_WRITE;
  Layer* l = layer(p);
  if (l == nullptr) return p->real->pMethods->xWrite(p->real, in, n, off);
  const char* src = static_cast<const char*>(in);
  for (std::int64_t s = off / sector; s * sector < off + n; ++s) {
    auto it = l->sectors.find(s);
    if (it == l->sectors.end()) {
      std::vector<char> base(sector);
      read_layered(*l, p->real, base.data(), sector, s * sector);
      it = l->sectors.emplace(s, std::move(base)).first;
    }
    const std::int64_t a = std::max<std::int64_t>(off, s * sector);
    const std::int64_t b = std::min<std::int64_t>(off + n, (s + 1) * sector);
    std::memcpy(it->second.data() + (a - s * sector), src + (a - off),
                static_cast<std::size_t>(b - a));
  }
  l->size = std::max<std::int64_t>(logical_size(*l, p->real), off + n);
  return SQLITE_OK;
}

int x_truncate(sqlite3_file* f, sqlite3_int64 n) {
  File* p = as_file(f);
  if (!power_on()) return SQLITE_IOERR_TRUNCATE;
  Layer* l = layer(p);
  if (l == nullptr) return p->real->pMethods->xTruncate(p->real, n);
  const std::int64_t before = logical_size(*l, p->real);
  if (n >= before) {
    l->size = n;
    return SQLITE_OK;
  }
  l->trunc_floor = std::min<std::int64_t>(l->trunc_floor.value_or(real_size(p->real)), n);
  l->size = n;
  l->sectors.erase(l->sectors.lower_bound((n + sector - 1) / sector), l->sectors.end());
  if (auto it = l->sectors.find(n / sector); it != l->sectors.end()) {
    std::fill(it->second.begin() + (n % sector), it->second.end(), 0);
  } else if (n % sector != 0 && n < real_size(p->real)) {
    // The sector that now ends the file: its tail reads as zeros once the file grows again.
    std::vector<char> base(sector);
    read_layered(*l, p->real, base.data(), sector, (n / sector) * sector);
    l->sectors.emplace(n / sector, std::move(base));
  }
  return SQLITE_OK;
}

int x_sync(sqlite3_file* f, int) {
  File* p = as_file(f);
  if (!power_on()) return SQLITE_IOERR_FSYNC;
  ++g().syncs;
  if (Layer* l = layer(p)) apply(*l, p->real, p->path, nullptr);
  return SQLITE_OK;  // the real file is the durable layer: no fsync needed to model it
}

int x_file_size(sqlite3_file* f, sqlite3_int64* out) {
  File* p = as_file(f);
  Layer* l = layer(p);
  *out = l ? logical_size(*l, p->real) : real_size(p->real);
  return SQLITE_OK;
}

int x_lock(sqlite3_file* f, int e) {
  return as_file(f)->real->pMethods->xLock(as_file(f)->real, e);
}
int x_unlock(sqlite3_file* f, int e) {
  return as_file(f)->real->pMethods->xUnlock(as_file(f)->real, e);
}
int x_check_reserved(sqlite3_file* f, int* out) {
  return as_file(f)->real->pMethods->xCheckReservedLock(as_file(f)->real, out);
}
int x_file_control(sqlite3_file* f, int op, void* arg) {
  // Size hints and chunked growth would write behind the layer: refuse them.
  if (op == SQLITE_FCNTL_SIZE_HINT || op == SQLITE_FCNTL_CHUNK_SIZE) return SQLITE_NOTFOUND;
  return as_file(f)->real->pMethods->xFileControl(as_file(f)->real, op, arg);
}
int x_sector_size(sqlite3_file* f) {
  return as_file(f)->real->pMethods->xSectorSize(as_file(f)->real);
}
int x_device_characteristics(sqlite3_file* f) {
  return as_file(f)->real->pMethods->xDeviceCharacteristics(as_file(f)->real);
}
int x_shm_map(sqlite3_file* f, int pg, int sz, int extend, void volatile** pp) {
  return as_file(f)->real->pMethods->xShmMap(as_file(f)->real, pg, sz, extend, pp);
}
int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return as_file(f)->real->pMethods->xShmLock(as_file(f)->real, offset, n, flags);
}
void x_shm_barrier(sqlite3_file* f) { as_file(f)->real->pMethods->xShmBarrier(as_file(f)->real); }
int x_shm_unmap(sqlite3_file* f, int del) {
  return as_file(f)->real->pMethods->xShmUnmap(as_file(f)->real, del);
}
int x_fetch(sqlite3_file*, sqlite3_int64, int, void** pp) {
  *pp = nullptr;  // no memory mapping: every read goes through the layer
  return SQLITE_OK;
}
int x_unfetch(sqlite3_file*, sqlite3_int64, void*) { return SQLITE_OK; }

const sqlite3_io_methods io_methods = {
    3,
    x_close,
    x_read,
    x_write,
    x_truncate,
    x_sync,
    x_file_size,
    x_lock,
    x_unlock,
    x_check_reserved,
    x_file_control,
    x_sector_size,
    x_device_characteristics,
    x_shm_map,
    x_shm_lock,
    x_shm_barrier,
    x_shm_unmap,
    x_fetch,
    x_unfetch,
};

int v_open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  sqlite3_vfs* real = g().real;
  File* p = as_file(f);
  p->base.pMethods = nullptr;
  p->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(p) + sizeof(File));
  const int rc = real->xOpen(real, name, p->real, flags, out_flags);
  if (rc != SQLITE_OK) return rc;
  new (&p->path) std::string();
  const bool layered =
      name != nullptr &&
      (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL)) != 0;
  if (layered) p->path = name;
  p->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
  p->base.pMethods = &io_methods;
  (void)vfs;
  return SQLITE_OK;
}

int v_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  if (!power_on()) return SQLITE_IOERR_DELETE;
  g().layers.erase(name);
  return g().real->xDelete(g().real, name, sync_dir);
}
int v_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g().real->xAccess(g().real, name, flags, out);
}
int v_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g().real->xFullPathname(g().real, name, n, out);
}
void* v_dl_open(sqlite3_vfs*, const char* name) { return g().real->xDlOpen(g().real, name); }
void v_dl_error(sqlite3_vfs*, int n, char* msg) { g().real->xDlError(g().real, n, msg); }
void (*v_dl_sym(sqlite3_vfs*, void* h, const char* sym))(void) {
  return g().real->xDlSym(g().real, h, sym);
}
void v_dl_close(sqlite3_vfs*, void* h) { g().real->xDlClose(g().real, h); }
int v_randomness(sqlite3_vfs*, int n, char* out) { return g().real->xRandomness(g().real, n, out); }
int v_sleep(sqlite3_vfs*, int us) { return g().real->xSleep(g().real, us); }
int v_current_time(sqlite3_vfs*, double* out) { return g().real->xCurrentTime(g().real, out); }
int v_get_last_error(sqlite3_vfs*, int n, char* out) {
  return g().real->xGetLastError(g().real, n, out);
}
int v_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return g().real->xCurrentTimeInt64(g().real, out);
}

}  // namespace

PowerVfs& PowerVfs::instance() {
  static PowerVfs* self = [] {
    Global& gl = g();
    gl.real = sqlite3_vfs_find(nullptr);
    sqlite3_vfs& v = gl.vfs;
    v.iVersion = 2;
    v.szOsFile = static_cast<int>(sizeof(File)) + gl.real->szOsFile;
    v.mxPathname = gl.real->mxPathname;
    v.zName = "meterd-powercut";
    v.xOpen = v_open;
    v.xDelete = v_delete;
    v.xAccess = v_access;
    v.xFullPathname = v_full_pathname;
    v.xDlOpen = v_dl_open;
    v.xDlError = v_dl_error;
    v.xDlSym = v_dl_sym;
    v.xDlClose = v_dl_close;
    v.xRandomness = v_randomness;
    v.xSleep = v_sleep;
    v.xCurrentTime = v_current_time;
    v.xGetLastError = v_get_last_error;
    v.xCurrentTimeInt64 = v_current_time_int64;
    if (sqlite3_vfs_register(&v, 0) != SQLITE_OK) std::abort();
    return new PowerVfs();
  }();
  return *self;
}

const char* PowerVfs::name() const noexcept { return g().vfs.zName; }
std::uint64_t PowerVfs::mutations() const noexcept { return g().mutations; }
std::uint64_t PowerVfs::syncs() const noexcept { return g().syncs; }
std::uint64_t PowerVfs::main_db_reads() const noexcept { return g().main_reads; }
bool PowerVfs::pending() const noexcept {
  return std::any_of(g().layers.begin(), g().layers.end(),
                     [](const auto& kv) { return !kv.second.empty(); });
}
std::string PowerVfs::describe() const {
  std::string out;
  for (const auto& [path, l] : g().layers) {
    if (l.empty()) continue;
    out += path + ": " + std::to_string(l.sectors.size()) + " sectors";
    if (!l.sectors.empty()) {
      out += " [" + std::to_string(l.sectors.begin()->first * sector) + ", " +
             std::to_string((l.sectors.rbegin()->first + 1) * sector) + ")";
    }
    if (l.size) out += ", size " + std::to_string(*l.size);
    if (l.trunc_floor) out += ", truncated to " + std::to_string(*l.trunc_floor);
    out += "\n";
  }
  return out;
}

void PowerVfs::arm(std::uint64_t at) noexcept { g().armed_at = at; }
void PowerVfs::cut_now() noexcept { g().dead = true; }
bool PowerVfs::dead() const noexcept { return g().dead; }

void PowerVfs::restore_power(std::mt19937& rng, bool tear) {
  Global& gl = g();
  for (auto& [path, l] : gl.layers) {
    if (tear) {
      apply(l, nullptr, path, &rng);
    } else {
      l = Layer{};
    }
  }
  gl.layers.clear();
  gl.dead = false;
  gl.armed_at = 0;
}

}  // namespace meterd::buffer::test
