// fiber.h: the context switch.
#include "fiber.h"

#include <cstdint>

namespace np::cuda::emulator {

#if defined(__x86_64__)

// np_emulator_switch(void** save_sp, void* next_sp): pushes the System V
// callee-saved registers and the MXCSR / x87 control words, stores the stack
// pointer in *save_sp, loads next_sp and pops the same from there.
extern "C" void np_emulator_switch(void** save_sp, void* next_sp);
asm(R"(
  .pushsection .text
  .globl np_emulator_switch
  .hidden np_emulator_switch
  .type np_emulator_switch, @function
np_emulator_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size np_emulator_switch, .-np_emulator_switch
  .popsection
)");

void prepare_fiber(Fiber& fiber, char* stack, std::size_t bytes, void (*entry)()) {
  // The frame np_emulator_switch pops, top down: a zero return address for
  // entry (so entry starts with the stack aligned as after a call), entry
  // itself (ret jumps there), six zeroed registers, and the control words.
  auto top = reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t{15};
  auto* slot = reinterpret_cast<uint64_t*>(top);
  *--slot = 0;
  *--slot = reinterpret_cast<uint64_t>(entry);
  for (int i = 0; i < 6; ++i) *--slot = 0;
  uint32_t mxcsr = 0;
  uint16_t fpu_cw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpu_cw));
  *--slot = static_cast<uint64_t>(mxcsr) | static_cast<uint64_t>(fpu_cw) << 32;
  fiber.sp = slot;
}

void switch_fiber(Fiber& from, Fiber& to) { np_emulator_switch(&from.sp, to.sp); }

#else

void prepare_fiber(Fiber& fiber, char* stack, std::size_t bytes, void (*entry)()) {
  getcontext(&fiber.context);
  fiber.context.uc_stack.ss_sp = stack;
  fiber.context.uc_stack.ss_size = bytes;
  fiber.context.uc_link = nullptr;  // entry never returns
  makecontext(&fiber.context, entry, 0);
}

void switch_fiber(Fiber& from, Fiber& to) { swapcontext(&from.context, &to.context); }

#endif

}  // namespace np::cuda::emulator
