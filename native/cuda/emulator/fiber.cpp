// fiber.h: the context switch.
#include "fiber.h"

#include <cstdint>
#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace np::cuda::emulator {

namespace {

// The fiber a switch leaves and the one it enters: a fiber's first start
// reads its entry from here, and tells ASan where it came from.
thread_local Fiber* t_leaving = nullptr;
thread_local Fiber* t_entering = nullptr;

// Before a switch: ASan is told the stack about to run. A fiber that will
// never run again passes no place to keep its fake stack, which frees it.
void announce_switch(Fiber* from, const Fiber& to) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(from ? &from->fake_stack : nullptr, to.stack, to.bytes);
#else
  (void)from;
  (void)to;
#endif
}

// After a switch, on the stack now running (`self`), coming from t_leaving:
// ASan learns the stack it left (a thread's own stack is known only this way).
void finish_switch(Fiber* self) {
#if defined(__SANITIZE_ADDRESS__)
  const void* bottom = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(self ? self->fake_stack : nullptr, &bottom, &size);
  if (t_leaving && !t_leaving->stack) {
    t_leaving->stack = bottom;
    t_leaving->bytes = size;
  }
#else
  (void)self;
#endif
}

// Where every fiber starts.
[[noreturn]] void fiber_start() {
  Fiber* self = t_entering;
  finish_switch(nullptr);
  self->entry();
  std::abort();  // entry ends with exit_fiber
}

}  // namespace

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
  fiber.entry = entry;
  fiber.stack = stack;
  fiber.bytes = bytes;
  fiber.fake_stack = nullptr;
  // The frame np_emulator_switch pops, top down: a zero return address for
  // fiber_start (so it starts with the stack aligned as after a call),
  // fiber_start itself (ret jumps there), six zeroed registers, and the
  // control words.
  auto top = reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t{15};
  auto* slot = reinterpret_cast<uint64_t*>(top);
  *--slot = 0;
  *--slot = reinterpret_cast<uint64_t>(&fiber_start);
  for (int i = 0; i < 6; ++i) *--slot = 0;
  uint32_t mxcsr = 0;
  uint16_t fpu_cw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpu_cw));
  *--slot = static_cast<uint64_t>(mxcsr) | static_cast<uint64_t>(fpu_cw) << 32;
  fiber.sp = slot;
}

namespace {
void jump(Fiber& from, Fiber& to) { np_emulator_switch(&from.sp, to.sp); }
}  // namespace

#else

void prepare_fiber(Fiber& fiber, char* stack, std::size_t bytes, void (*entry)()) {
  fiber.entry = entry;
  fiber.stack = stack;
  fiber.bytes = bytes;
  fiber.fake_stack = nullptr;
  getcontext(&fiber.context);
  fiber.context.uc_stack.ss_sp = stack;
  fiber.context.uc_stack.ss_size = bytes;
  fiber.context.uc_link = nullptr;  // fiber_start never returns
  makecontext(&fiber.context, &fiber_start, 0);
}

namespace {
void jump(Fiber& from, Fiber& to) { swapcontext(&from.context, &to.context); }
}  // namespace

#endif

void switch_fiber(Fiber& from, Fiber& to) {
  announce_switch(&from, to);
  t_leaving = &from;
  t_entering = &to;
  jump(from, to);
  finish_switch(&from);  // back on `from`'s stack
}

void abandon_fiber(Fiber& fiber) {
#if defined(__SANITIZE_ADDRESS__)
  if (fiber.stack) __asan_unpoison_memory_region(fiber.stack, fiber.bytes);
#else
  (void)fiber;
#endif
}

void exit_fiber(Fiber& from, Fiber& to) {
  announce_switch(nullptr, to);
  t_leaving = &from;
  t_entering = &to;
  jump(from, to);
  std::abort();  // never resumed
}

}  // namespace np::cuda::emulator
