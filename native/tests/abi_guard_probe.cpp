// SPDX-License-Identifier: MIT
// Compiled (never linked) by the CTest tests native.guard.* (tests/CMakeLists.txt): each build of this file
// checks one side of the compile-time guard in src/engine_callback.h (Note [std::function across the ABI]).
//   CA_PROBE_EXPECT_ROUTE=0|1   compiles only when the route is compiled out / in for this configuration
//   CA_PROBE_WRONG_SIZE         the guard, instantiated with a std::function 8 bytes smaller than libtorch's: must trip
//   CA_PROBE_WRONG_ALIGN        the same with twice the alignment: must trip
#include "engine_callback.h"

namespace ca = custom_autograd;

#if defined(CA_PROBE_WRONG_SIZE)
static_assert(ca::std_function_layout<ca::kLibtorchStdFunctionSize - 8, ca::kLibtorchStdFunctionAlign>::matches, "");
#elif defined(CA_PROBE_WRONG_ALIGN)
static_assert(ca::std_function_layout<ca::kLibtorchStdFunctionSize, 2 * ca::kLibtorchStdFunctionAlign>::matches, "");
#elif defined(CA_PROBE_EXPECT_ROUTE)
static_assert(CA_ENGINE_CALLBACK_ROUTE == CA_PROBE_EXPECT_ROUTE, "the engine-callback route is not as expected");
#else
#error "say what to probe"
#endif
