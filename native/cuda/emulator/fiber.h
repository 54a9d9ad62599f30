// Fibers for the CUDA emulator: each emulated GPU thread runs on a stack of
// its own and gives the CPU back at a barrier or shuffle (scheduler.cpp).
//
// On x86-64 a switch is a few instructions (callee-saved registers, the SSE
// and x87 control words, the stack pointer); glibc's swapcontext would also
// make a system call per switch to save the signal mask, which made the
// emulated test suite spend most of its time in the kernel. Elsewhere
// ucontext is used. Under AddressSanitizer every switch is announced to it
// (__sanitizer_start/finish_switch_fiber), so it knows which stack is live.
#pragma once

#include <cstddef>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace np::cuda::emulator {

struct Fiber {
#if defined(__x86_64__)
  void* sp = nullptr;  // the saved stack pointer while switched out
#else
  ucontext_t context;
#endif
  void (*entry)() = nullptr;
  // The stack's bounds (for AddressSanitizer; a thread's own stack is learnt
  // at its first switch) and ASan's fake stack while switched out.
  const void* stack = nullptr;
  std::size_t bytes = 0;
  void* fake_stack = nullptr;
};

// Prepares `fiber` to run entry() on [stack, stack + bytes) at its next
// switch_fiber. entry must never return: it ends with exit_fiber.
void prepare_fiber(Fiber& fiber, char* stack, std::size_t bytes, void (*entry)());

// Saves the running context into `from` and continues `to`.
void switch_fiber(Fiber& from, Fiber& to);

// The same, for a fiber that has finished and will never be resumed.
[[noreturn]] void exit_fiber(Fiber& from, Fiber& to);

// A fiber left suspended for good (its launch failed): under AddressSanitizer
// the redzones of its unfinished frames are cleared, so its stack can be reused.
void abandon_fiber(Fiber& fiber);

}  // namespace np::cuda::emulator
