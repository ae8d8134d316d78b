// Outputs that appear whole or not at all: written under a temporary name in the
// same directory, renamed onto the final name by commit(). An uncommitted output
// is removed by the destructor, so an error or exception leaves nothing behind.
#pragma once
#include <filesystem>
#include <string>

namespace mlar {

// Refuses (mlar::Error) when `path` exists and !force.
void check_output_free(const std::filesystem::path& path, bool force);

// A single output file.
class AtomicFile {
 public:
  AtomicFile(std::filesystem::path final_path, bool force);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  const std::filesystem::path& tmp_path() const { return tmp_; }
  const std::filesystem::path& final_path() const { return final_; }
  void commit();  // fsync'd by the writer; rename(tmp, final)

 private:
  std::filesystem::path final_, tmp_;
  bool force_, done_ = false;
};

// A whole output directory: files are written under tmp_path(), then the
// directory is renamed onto the final name (replacing it only with force).
class AtomicDir {
 public:
  AtomicDir(std::filesystem::path final_path, bool force);
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;
  const std::filesystem::path& tmp_path() const { return tmp_; }
  const std::filesystem::path& final_path() const { return final_; }
  void commit();

 private:
  std::filesystem::path final_, tmp_;
  bool force_, done_ = false;
};

// Writes `text` to `path` (plain write, for files inside an AtomicDir).
void write_text_file(const std::filesystem::path& path, const std::string& text);

}  // namespace mlar
