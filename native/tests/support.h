// SPDX-License-Identifier: MIT
// What the tests share: the fake "managed" callbacks and helpers around ca_init / ca_apply.
#pragma once

#include "custom_autograd/ca_api.h"
#include "fake_torch.h"
#include "harness.h"

#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace support {

struct backward_call {
    intptr_t state = 0;
    std::vector<int> grads;  // values (-1 = null)
    std::vector<int> saved;  // values (-1 = null)
    std::vector<fake::node*> saved_grad_fn;
    int32_t n_results = 0;
    std::thread::id thread;
};

using backward_fn = std::function<int32_t(intptr_t state, ca_tensor* grads, int32_t n_grads, ca_tensor* saved,
                                          int32_t n_saved, ca_tensor* results, uint8_t* owned, int32_t n_results)>;

// Stands in for the managed side.
struct managed_side {
    std::mutex mu;
    std::vector<backward_call> calls;
    std::vector<intptr_t> released;
    std::vector<std::thread::id> release_threads;
    backward_fn behaviour;  // empty: default_backward
};

managed_side& managed();

// The callbacks given to ca_init: they record the call, then run `behaviour`.
int32_t backward_cb(intptr_t state, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved,
                    ca_tensor* results, uint8_t* owned, int32_t n_results);
void release_cb(intptr_t state);

// What TorchSharp's dispose scope does with the handles the callee owns.
void dispose_inputs(ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved);

// Disposes grads and saved, then answers result i with a fresh owned handle of value 100 + i.
int32_t default_backward(intptr_t state, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved,
                         ca_tensor* results, uint8_t* owned, int32_t n_results);

// The function table every test initialises with (a process-lifetime object).
ca_torch_api& table();

// ca_init with table() and the callbacks, then check_layout(); REQUIREs success.
void init();

// ca_check_tensor_layout with fake handles, as the managed start-up does; REQUIREs success.
void check_layout();

struct applied {
    int32_t status = -1;
    int32_t created = -1;
    std::vector<ca_tensor> wrapped;
    std::string error;
};

applied apply(const char* name, intptr_t state, const std::vector<ca_tensor>& inputs, bool executable,
              const std::vector<ca_tensor>& outputs, const std::vector<ca_tensor>& non_diff = {},
              const std::vector<ca_tensor>& dirty = {}, const std::vector<ca_tensor>& to_save = {});

ca_stats stats();

// Puts a fake Engine::get_default_engine / Engine::queue_callback into table() (call before init()). The fake
// moves each std::function it receives out of the caller's temporary, as libtorch's does under the Itanium ABI
// (Note [std::function across the ABI]), into queued_callbacks(); a test plays the engine by running or
// clearing them.
void use_final_callbacks();
std::vector<std::function<void()>>& queued_callbacks();

// Makes the next `count` allocations through operator new on this thread throw std::bad_alloc (a negative
// count: every allocation until fail_allocations(0)). The test binary replaces the global operator new, which
// the shim's calls reach too.
void fail_allocations(int count);

std::vector<intptr_t> released();
std::vector<backward_call> calls();

// No double dispose, no use of a dead handle, no bad node or saved-variable handle.
void check_no_misuse();
// Everything gone: no live tensor handle, saved variable or node (fake and shim counters), no misuse.
void check_clean();

}  // namespace support
