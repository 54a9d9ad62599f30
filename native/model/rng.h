// The model's random number generator: xoshiro256** seeded through splitmix64.
// Small, fast, and its whole state is four words, so a checkpoint can store it
// and resume bit-exactly (std::mt19937 would work too, but its distributions
// are implementation-defined across standard libraries).
#pragma once

#include <cmath>
#include <cstdint>

namespace np {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    for (auto& word : s_) word = splitmix64(seed);
    has_spare_normal_ = false;
  }

  uint64_t next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 24 random bits (exact in float).
  float uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }

  // Uniform integer in [0, n) without modulo bias (Lemire's method).
  uint64_t below(uint64_t n) {
    unsigned __int128 m = static_cast<unsigned __int128>(next_u64()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next_u64()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  // Standard normal (Box-Muller, both values used).
  float normal() {
    if (has_spare_normal_) {
      has_spare_normal_ = false;
      return spare_normal_;
    }
    double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double theta = 6.283185307179586 * u2;
    spare_normal_ = static_cast<float>(r * std::sin(theta));
    has_spare_normal_ = true;
    return static_cast<float>(r * std::cos(theta));
  }

  // An independent stream for one piece of work (e.g. one thread's dropout
  // rows), derived without disturbing this generator's sequence order.
  Rng fork(uint64_t stream) const {
    Rng child(0);
    uint64_t mix = s_[0] ^ rotl(s_[1], 13) ^ rotl(s_[2], 29) ^ rotl(s_[3], 47) ^ (stream * 0x9E3779B97F4A7C15ull);
    for (auto& word : child.s_) word = splitmix64(mix);
    return child;
  }

  // For checkpoints: the four words plus the cached second normal value.
  const uint64_t* state() const { return s_; }
  bool has_spare_normal() const { return has_spare_normal_; }
  float spare_normal() const { return spare_normal_; }
  void set_state(const uint64_t state[4], bool has_spare = false, float spare = 0.0f) {
    for (int i = 0; i < 4; ++i) s_[i] = state[i];
    has_spare_normal_ = has_spare;
    spare_normal_ = spare;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  uint64_t s_[4];
  bool has_spare_normal_ = false;
  float spare_normal_ = 0.0f;
};

}  // namespace np
