/* sync_snapshot: an LD_PRELOAD shim that records what a power cut would leave
 * of one directory, for system tests that SIGKILL a process and then cut its
 * data directory back (restore_synced() in sync_snapshot.hpp).
 *
 *   LD_PRELOAD=.../libmeterd_sync_snapshot.so SYNC_SNAPSHOT_DIR=/data meterd ...
 *
 * The model. A file's contents survive a power cut as of its last successful
 * fsync() or fdatasync(): at each one, on a regular file directly inside
 * SYNC_SNAPSHOT_DIR (the path from /proc/self/fd/N), the shim copies the
 * file's whole current contents to SYNC_SNAPSHOT_DIR/.snap/<name> (a temp file
 * renamed over the old snapshot, so a SIGKILL mid-copy leaves the previous
 * one). A file never synced has no snapshot and does not survive. A fsync of
 * SYNC_SNAPSHOT_DIR itself makes its entries durable: the snapshot of a name
 * that is gone is dropped (its unlink is now durable), or moved to the file's
 * new name if this process saw that inode synced under the old one (a rename
 * made durable). Until then a synced file that was unlinked comes back on
 * restore, as it can after a real power cut.
 *
 * What SQLite (meterd's buffer, WAL mode) does, as strace shows on Linux:
 * fdatasync() on the database, the -journal (while the database is created)
 * and the -wal; fdatasync() on the directory after creating the -journal and
 * the -wal; never a sync of the -shm (restore deletes it; SQLite rebuilds it
 * from the -wal). Both calls are wrapped.
 *
 * Limits of the model (a real disk can do worse or better):
 * - A synced file's snapshot is whole; a real disk may also keep part of the
 *   writes made after the sync (torn sectors, reordering). SQLite's own torn
 *   write tests cover that; tests/buffer/power_vfs.cpp does too.
 * - A file created and synced whose directory was never synced is kept,
 *   though a real power cut may lose its name (SQLite syncs the directory
 *   after creating a -journal or -wal, so it never relies on that). A rename
 *   or unlink becomes durable only at a directory fsync, and renames are
 *   followed only within one process.
 * - Not wrapped: sync_file_range() (no durability promise), msync() (the
 *   snapshot is read through read(), which sees mmap writes, but an msync is
 *   not a snapshot point), sync(), syncfs(), O_SYNC/O_DSYNC writes. Nothing in
 *   meterd uses them; a program that does loses those writes in the model.
 * - Only regular files directly inside the directory; subdirectories, and
 *   files opened through another path (a symlink to elsewhere) are ignored.
 * - A snapshot copies the file while other threads of the process might be
 *   writing to it; SQLite syncs under its write lock, so nothing changes
 *   during the copy. Snapshots of one process are serialised by a mutex;
 *   two processes writing one directory are not supported.
 * - If a snapshot cannot be taken (no space), the process aborts with a
 *   message: every later conclusion would be wrong.
 *
 * Linux and glibc only (dlsym(RTLD_NEXT), /proc/self/fd).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define SNAP_SUBDIR ".snap"
#define TMP_PREFIX ".sync_snapshot-tmp." /* in .snap: a copy being written */
#define MAX_TRACKED 64

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static char watched[PATH_MAX]; /* realpath of SYNC_SNAPSHOT_DIR, "" when unset */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Inodes this process snapshotted, by name: a rename made durable by a
 * directory fsync moves the snapshot along. */
static struct {
  char name[NAME_MAX + 1];
  dev_t dev;
  ino_t ino;
} tracked[MAX_TRACKED];

static void die(const char* what, const char* path) {
  char msg[PATH_MAX + 128];
  const int n =
      snprintf(msg, sizeof msg, "sync_snapshot: %s %s: %s\n", what, path, strerror(errno));
  if (n > 0) (void)!write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
  abort();
}

/* snprintf into a PATH_MAX buffer; a path that does not fit is a test setup error. */
static void path_printf(char* out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static void path_printf(char* out, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const int n = vsnprintf(out, PATH_MAX, fmt, ap);
  va_end(ap);
  if (n < 0 || n >= PATH_MAX) {
    errno = ENAMETOOLONG;
    die("path too long:", fmt);
  }
}

static void init(void) {
  /* POSIX's way to turn dlsym's object pointer into a function pointer. */
  *(void**)&real_fsync = dlsym(RTLD_NEXT, "fsync");
  *(void**)&real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  const char* dir = getenv("SYNC_SNAPSHOT_DIR");
  if (!dir || !*dir || !realpath(dir, watched)) {
    watched[0] = '\0';
    return;
  }
  char snap[PATH_MAX];
  path_printf(snap, "%s/" SNAP_SUBDIR, watched);
  if (mkdir(snap, 0755) != 0 && errno != EEXIST) die("mkdir", snap);
}

/* The name of fd's file if it lies directly inside the watched directory
 * (`*is_dir`: fd is that directory), else NULL. */
static const char* watched_name(int fd, char* path, size_t size, int* is_dir) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, size - 1);
  if (n <= 0) return NULL;
  path[n] = '\0';
  const size_t w = strlen(watched);
  *is_dir = strcmp(path, watched) == 0;
  if (*is_dir) return path + w;
  if (strncmp(path, watched, w) != 0 || path[w] != '/') return NULL;
  const char* name = path + w + 1;
  if (strchr(name, '/') || strcmp(name, SNAP_SUBDIR) == 0) return NULL;
  if (strstr(name, " (deleted)")) return NULL; /* unlinked: no name survives */
  return name;
}

static void copy_all(int from, int to, const char* path) {
  char buf[1 << 16];
  off_t off = 0;
  for (;;) {
    const ssize_t n = pread(from, buf, sizeof buf, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("read", path);
    if (n == 0) return;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = write(to, buf + done, (size_t)(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) die("write snapshot of", path);
      done += w;
    }
    off += n;
  }
}

static void track(const char* name, const struct stat* st) {
  int free_slot = -1;
  for (int i = 0; i < MAX_TRACKED; ++i) {
    if (tracked[i].name[0] == '\0') {
      if (free_slot < 0) free_slot = i;
    } else if (strcmp(tracked[i].name, name) == 0) {
      free_slot = i;
      break;
    }
  }
  if (free_slot < 0) return; /* table full: renames of this file are not followed */
  snprintf(tracked[free_slot].name, sizeof tracked[free_slot].name, "%s", name);
  tracked[free_slot].dev = st->st_dev;
  tracked[free_slot].ino = st->st_ino;
}

static void snapshot_file(int fd, const char* path, const char* name) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  char tmp[PATH_MAX], dst[PATH_MAX];
  path_printf(tmp, "%s/" SNAP_SUBDIR "/" TMP_PREFIX "%ld.%s", watched, (long)getpid(), name);
  path_printf(dst, "%s/" SNAP_SUBDIR "/%s", watched, name);
  /* Read through a fresh descriptor of the same open file (fd may be write-only,
   * and its offset is not ours), not through the name, which may have moved. */
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
  const int from = open(self, O_RDONLY | O_CLOEXEC);
  if (from < 0) die("reopen", path);
  const int to = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (to < 0) die("create", tmp);
  copy_all(from, to, path);
  close(from);
  if (close(to) != 0) die("close", tmp);
  if (rename(tmp, dst) != 0) die("rename", tmp);
  track(name, &st);
}

/* The directory's entries are durable now: snapshots of names that are gone
 * are dropped, or follow their inode to its new name. */
static void directory_synced(void) {
  char snap[PATH_MAX];
  path_printf(snap, "%s/" SNAP_SUBDIR, watched);
  DIR* d = opendir(snap);
  if (!d) return;
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
        strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0)
      continue;
    char file[PATH_MAX], old[PATH_MAX];
    path_printf(file, "%s/%s", watched, e->d_name);
    struct stat st;
    if (lstat(file, &st) == 0) continue;
    path_printf(old, "%s/%s", snap, e->d_name);
    const char* moved_to = NULL;
    for (int i = 0; i < MAX_TRACKED && !moved_to; ++i) {
      if (strcmp(tracked[i].name, e->d_name) != 0) continue;
      DIR* w = opendir(watched);
      struct dirent* f;
      while (w && (f = readdir(w)) != NULL) {
        char cand[PATH_MAX];
        path_printf(cand, "%s/%s", watched, f->d_name);
        struct stat cs;
        if (lstat(cand, &cs) == 0 && S_ISREG(cs.st_mode) && cs.st_dev == tracked[i].dev &&
            cs.st_ino == tracked[i].ino) {
          char dst[PATH_MAX];
          path_printf(dst, "%s/%s", snap, f->d_name);
          if (rename(old, dst) != 0) die("rename", old);
          snprintf(tracked[i].name, sizeof tracked[i].name, "%s", f->d_name);
          moved_to = tracked[i].name;
          break;
        }
      }
      if (w) closedir(w);
      if (!moved_to) tracked[i].name[0] = '\0';
    }
    if (!moved_to && unlink(old) != 0 && errno != ENOENT) die("unlink", old);
  }
  closedir(d);
}

static void after_sync(int fd) {
  if (watched[0] == '\0') return;
  char path[PATH_MAX];
  int is_dir = 0;
  const int saved = errno;
  pthread_mutex_lock(&lock);
  const char* name = watched_name(fd, path, sizeof path, &is_dir);
  if (is_dir)
    directory_synced();
  else if (name)
    snapshot_file(fd, path, name);
  pthread_mutex_unlock(&lock);
  errno = saved;
}

int fsync(int fd) {
  pthread_once(&once, init);
  const int r = real_fsync(fd);
  if (r == 0) after_sync(fd);
  return r;
}

int fdatasync(int fd) {
  pthread_once(&once, init);
  const int r = real_fdatasync(fd);
  if (r == 0) after_sync(fd);
  return r;
}
