// SPDX-License-Identifier: MIT
// The compile-time guard of the one call the shim makes with a C++ (not C) calling convention:
// torch::autograd::Engine::queue_callback(std::function<void()>) (Note [std::function across the ABI]).
#pragma once

#include <cstddef>
#include <functional>

// Note [std::function across the ABI]
// The shim calls libtorch's `Engine::queue_callback(std::function<void()>)` through a plain function pointer
// resolved from its mangled name (_ZN5torch8autograd6Engine14queue_callbackESt8functionIFvvEE), as
// `void (*)(void* engine, void* callback)`. That is right only when all of this holds:
//   1. the Itanium C++ ABI: `this` is the first argument, and a by-value parameter of a class type with a
//      non-trivial copy constructor or destructor is passed as a pointer to a temporary that the caller
//      owns and destroys after the call;
//   2. the shim's std::function<void()> is the very type libtorch was compiled with: libtorch 2.10 for Linux
//      is built with GCC against libstdc++ (the `St8function` in the symbol is libstdc++'s std::function;
//      libc++ would mangle it `NSt3__18functionIFvvEEE`), whose std::function<void()> is 32 bytes, 8-aligned
//      on LP64 (_Any_data, manager, invoker) and carries no [abi:cxx11] tag, so _GLIBCXX_USE_CXX11_ABI does
//      not matter.
// So the route exists only where the shim itself is compiled against libstdc++ with the Itanium ABI, and not
// on Windows (libtorch there is built by MSVC: another ABI, another std::function). Elsewhere it is compiled
// out and the shim takes the fallback of Note [retired gradient handles] (release at the thread's next call),
// whatever the function table says. Where it is compiled in, the layout is checked below at compile time.
// CA_ENGINE_CALLBACK_ROUTE=0 forces the fallback (the native tests build such a variant).
#if !defined(CA_ENGINE_CALLBACK_ROUTE)
#if defined(__GLIBCXX__) && defined(__GXX_ABI_VERSION) && !defined(_WIN32)
#define CA_ENGINE_CALLBACK_ROUTE 1
#else
#define CA_ENGINE_CALLBACK_ROUTE 0
#endif
#endif

#if CA_ENGINE_CALLBACK_ROUTE && !(defined(__GLIBCXX__) && defined(__GXX_ABI_VERSION) && !defined(_WIN32))
#error "CA_ENGINE_CALLBACK_ROUTE=1 needs libstdc++ and the Itanium C++ ABI (see Note [std::function across the ABI])"
#endif

namespace custom_autograd {

// libstdc++'s std::function<void()> on LP64, as libtorch 2.10 (x86-64 and aarch64 Linux) was compiled with it.
constexpr std::size_t kLibtorchStdFunctionSize = 32;
constexpr std::size_t kLibtorchStdFunctionAlign = 8;

// Fails to compile when this standard library's std::function<void()> differs from the expected one.
template <std::size_t Size, std::size_t Align>
struct std_function_layout {
    static_assert(sizeof(std::function<void()>) == Size && alignof(std::function<void()>) == Align,
                  "Note [std::function across the ABI]: this standard library's std::function<void()> does not have "
                  "the size and alignment of the one libtorch was built with, so Engine::queue_callback cannot be "
                  "called from here; build the shim against libstdc++ (LP64) or with -DCA_ENGINE_CALLBACK_ROUTE=0");
    static constexpr bool matches = true;
};

#if CA_ENGINE_CALLBACK_ROUTE
static_assert(std_function_layout<kLibtorchStdFunctionSize, kLibtorchStdFunctionAlign>::matches,
              "see Note [std::function across the ABI]");
#endif

}  // namespace custom_autograd
