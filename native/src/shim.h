// SPDX-License-Identifier: MIT
// Internal declarations shared by the shim's translation units.
#pragma once

#include "custom_autograd/ca_api.h"

#include <atomic>
#include <stdexcept>
#include <string>

namespace custom_autograd {

// The function table and callbacks given to ca_init. Written once, before any node exists, and
// read without locks afterwards (ca_init refuses to change them later).
struct globals {
    ca_torch_api torch{};
    ca_backward_callback backward = nullptr;
    ca_release_callback release = nullptr;
    std::atomic<bool> initialized{false};
    // Whether libtorch's cached-tensor registry is switched on for us (Note [stealable gradients] in node.cpp).
    // Written by ca_init before `initialized` is released.
    bool stealable_gradients = false;
    std::atomic<bool> shutting_down{false};
    // Set by the first passing ca_check_tensor_layout (Note [same tensor] in node.cpp); until then no wrapped
    // output is recognised as the caller's own tensor, which is always correct, only a handle more per output.
    std::atomic<bool> tensor_layout_verified{false};

    std::atomic<int64_t> live_nodes{0};
    std::atomic<int64_t> live_saved{0};
    std::atomic<int64_t> live_closures{0};
    std::atomic<int64_t> pooled_nodes{0};
    std::atomic<int64_t> nodes_created{0};
    std::atomic<int64_t> backward_calls{0};
    std::atomic<int64_t> backward_failures{0};
};

globals& g();

// A failure of the shim itself rather than of libtorch (libffi could not make a closure, an invariant of the
// shim broke): the exports report it as CA_ERR_INTERNAL, as they do std::bad_alloc. Every other std::exception
// that reaches an export comes from libtorch or LibTorchSharp and is reported as CA_ERR_TORCH.
struct internal_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Thread-local error slot behind ca_last_error. Never throws: when the message cannot be copied (out of
// memory), ca_last_error reports that instead.
void set_last_error(const char* message) noexcept;
void set_last_error(const std::string& message) noexcept;
// Records "<context>: <message>" without allocating (for out-of-memory reports); both must be literals.
void set_last_error_static(const char* context, const char* message) noexcept;

// Thread-local message written by the managed backward callback.
std::string take_callback_error();

// Throws std::runtime_error with LibTorchSharp's pending error, if any, prefixed by `context`.
void check_torch(const char* context);

// Clears (and frees) LibTorchSharp's pending error, if any, where a failure changes nothing.
void discard_torch_error() noexcept;

// A thread-local buffer that LibTorchSharp's allocator callbacks write into.
ca_tensor* allocate_result_buffer(size_t length);
ca_tensor* result_buffer();

// Disposes the gradient handles this thread handed to libtorch in its previous node apply.
void flush_retired_handles();

}  // namespace custom_autograd
