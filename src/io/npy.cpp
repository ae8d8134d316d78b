#include "io/npy.h"

#include <cstring>
#include <fstream>
#include <regex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "util/atomic_output.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace mlar {

void write_npy(const std::filesystem::path& path, const Tensor& t, bool force) {
  std::string shape = t.shape.size() == 1 ? fmt::format("({},)", t.shape[0]) : fmt::format("({})", fmt::join(t.shape, ", "));
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", shape);
  // magic(6) + version(2) + header length(2) + header + '\n', padded to a multiple of 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  AtomicFile out(path, force);
  {
    std::ofstream f(out.tmp_path(), std::ios::binary);
    if (!f) fail("{}: cannot open for writing", out.tmp_path().string());
    const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
    f.write(magic, 8);
    uint16_t len = static_cast<uint16_t>(header.size());
    f.write(reinterpret_cast<const char*>(&len), 2);
    f << header;
    f.write(reinterpret_cast<const char*>(t.ptr()), static_cast<std::streamsize>(t.data.size() * sizeof(float)));
    if (!f) fail("{}: write failed", path.string());
  }
  out.commit();
}

Tensor read_npy(const std::string& path) {
  MappedFile f(path);
  const uint8_t* p = f.data();
  if (f.size() < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) fail("{}: not a .npy file", path);
  if (p[6] != 1) fail("{}: .npy format version {} is not supported (only 1.0)", path, p[6]);
  uint16_t len;
  std::memcpy(&len, p + 8, 2);
  if (10 + static_cast<size_t>(len) > f.size()) fail("{}: truncated .npy header", path);
  std::string header(reinterpret_cast<const char*>(p + 10), len);
  if (header.find("'descr': '<f4'") == std::string::npos) fail("{}: only little-endian float32 (<f4) is supported", path);
  if (header.find("'fortran_order': False") == std::string::npos) fail("{}: Fortran order is not supported", path);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'shape': \\(([0-9, ]*)\\)"))) fail("{}: no shape in .npy header", path);
  Shape shape;
  std::string dims = m[1].str();
  for (const auto& tok : std::vector<std::string>{[&] {
         std::vector<std::string> v;
         size_t s = 0;
         while (s < dims.size()) {
           size_t e = dims.find(',', s);
           if (e == std::string::npos) e = dims.size();
           std::string d = dims.substr(s, e - s);
           d.erase(0, d.find_first_not_of(' '));
           if (!d.empty()) v.push_back(d);
           s = e + 1;
         }
         return v;
       }()})
    shape.push_back(std::stoll(tok));
  const size_t data = 10 + len;
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * sizeof(float);
  if (f.size() - data != bytes) fail("{}: {} data bytes, shape {} needs {}", path, f.size() - data, shape_str(shape), bytes);
  Tensor t(shape);
  std::memcpy(t.ptr(), p + data, bytes);
  return t;
}

}  // namespace mlar
