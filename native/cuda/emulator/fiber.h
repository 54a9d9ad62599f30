// Fibers for the CUDA emulator: each emulated GPU thread runs on a stack of
// its own and gives the CPU back at a barrier or shuffle (emulator.cpp).
//
// On x86-64 a switch is a few instructions (callee-saved registers, the SSE
// and x87 control words, the stack pointer); glibc's swapcontext would also
// make a system call per switch to save the signal mask, which made the
// emulated test suite spend most of its time in the kernel. Elsewhere
// ucontext is used.
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
};

// Prepares `fiber` to run entry() on [stack, stack + bytes) at its next
// switch_to. entry must never return: it ends by switching away for good.
void prepare_fiber(Fiber& fiber, char* stack, std::size_t bytes, void (*entry)());

// Saves the running context into `from` and continues `to`.
void switch_fiber(Fiber& from, Fiber& to);

}  // namespace np::cuda::emulator
