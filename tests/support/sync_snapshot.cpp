#include "tests/support/sync_snapshot.hpp"

namespace fs = std::filesystem;

namespace meterd::testing {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

void join(std::string& out, const char* label, const std::vector<std::string>& names) {
  if (names.empty()) return;
  out += out.empty() ? "" : "; ";
  out += label;
  for (const auto& n : names) out += " " + n;
}

}  // namespace

std::string RestoreReport::describe() const {
  std::string out;
  join(out, "restored", restored);
  join(out, "recreated", recreated);
  join(out, "removed", removed);
  return out.empty() ? "nothing to restore" : out;
}

RestoreReport restore_synced(const fs::path& dir) {
  RestoreReport report;
  const fs::path snap = dir / ".snap";
  std::vector<fs::path> files;  // listed first: the loop below changes the directory
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());  // not .snap, nor subdirectories
  for (const auto& file : files) {
    const std::string name = file.filename().string();
    const fs::path saved = snap / name;
    if (!ends_with(name, "-shm") && fs::is_regular_file(saved)) {
      fs::copy_file(saved, file, fs::copy_options::overwrite_existing);
      report.restored.push_back(name);
    } else {
      fs::remove(file);
      report.removed.push_back(name);
    }
  }
  if (fs::is_directory(snap)) {
    for (const auto& e : fs::directory_iterator(snap)) {
      const std::string name = e.path().filename().string();
      if (!e.is_regular_file() || name.rfind(".sync_snapshot-tmp.", 0) == 0 ||
          ends_with(name, "-shm"))
        continue;  // a copy the killed process was writing; -shm never comes back
      if (fs::exists(dir / name)) continue;
      fs::copy_file(e.path(), dir / name);
      report.recreated.push_back(name);
    }
  }
  return report;
}

fs::path sync_snapshot_library() {
#ifdef METERD_SYNC_SNAPSHOT_LIB
  return METERD_SYNC_SNAPSHOT_LIB;
#else
  return {};
#endif
}

std::vector<std::string> under_sync_snapshot(const fs::path& dir, const std::string& program,
                                             const std::vector<std::string>& args) {
  std::vector<std::string> out = {"LD_PRELOAD=" + sync_snapshot_library().string(),
                                  "SYNC_SNAPSHOT_DIR=" + dir.string(), program};
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

}  // namespace meterd::testing
