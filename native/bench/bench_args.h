// Command-line pieces shared by the native benches and the Eigen peer
// (bench/peers/eigen_spmm.cpp), which all take comma-separated lists.
#pragma once

#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

namespace np_bench {

// "a,b,,c" -> {"a", "b", "c"} (empty items dropped).
inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// "1,32,128" -> {1, 32, 128} as T (integers or floating point).
template <typename T>
std::vector<T> numbers(const std::string& list) {
  std::vector<T> out;
  for (const auto& item : split(list, ','))
    out.push_back(static_cast<T>(std::is_integral<T>::value ? std::atoll(item.c_str()) : std::atof(item.c_str())));
  return out;
}

}  // namespace np_bench
