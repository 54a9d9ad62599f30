// A float buffer aligned to 64 bytes (one cache line, one AVX-512 vector), with
// one owner. Zero-initialised, movable, not copyable (copies are explicit).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace np {

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(int64_t count) { resize_discard(count); }
  ~AlignedBuffer() { std::free(data_); }
  AlignedBuffer(AlignedBuffer&& other) noexcept { swap(other); }
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    AlignedBuffer tmp(std::move(other));
    swap(tmp);
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  // New zeroed contents of `count` elements (old contents are dropped).
  void resize_discard(int64_t count) {
    if (count == size_) {
      zero();
      return;
    }
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
    if (count <= 0) return;
    const size_t bytes = ((static_cast<size_t>(count) * sizeof(T) + 63) / 64) * 64;
    data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!data_) throw std::bad_alloc();
    std::memset(static_cast<void*>(data_), 0, bytes);
    size_ = count;
  }

  // Grows to at least `count` elements, keeping nothing; never shrinks (scratch space).
  void ensure_discard(int64_t count) {
    if (count > size_) resize_discard(count);
  }

  void zero() {
    if (data_) std::memset(static_cast<void*>(data_), 0, static_cast<size_t>(size_) * sizeof(T));
  }

  AlignedBuffer clone() const {
    AlignedBuffer copy(size_);
    if (size_) std::memcpy(static_cast<void*>(copy.data_), data_, static_cast<size_t>(size_) * sizeof(T));
    return copy;
  }

  void swap(AlignedBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }
  T& operator[](int64_t i) { return data_[i]; }
  const T& operator[](int64_t i) const { return data_[i]; }

 private:
  T* data_ = nullptr;
  int64_t size_ = 0;
};

using FloatBuffer = AlignedBuffer<float>;

}  // namespace np
