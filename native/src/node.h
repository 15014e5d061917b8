// SPDX-License-Identifier: MIT
// The per-node record and the application of a custom function (see node.cpp).
#pragma once

#include "shim.h"

#include <mutex>
#include <vector>

namespace custom_autograd {

// Everything the shim keeps for one graph node. Records are pooled (Note [node record pool]).
struct node_record {
    void* apply_closure = nullptr;    // ffi_closure*, kept opaque here
    void* apply_code = nullptr;       // the function pointer LibTorchSharp calls as the node's apply
    void* release_closure = nullptr;  // ffi_closure*
    void* release_code = nullptr;     // ... and as its on-delete

    const char* name = nullptr;             // interned (ca_intern), for error messages
    intptr_t managed = 0;                   // the managed state handle; 0 until the application succeeded
    ca_ts_node_ptr node{nullptr, nullptr};  // only weak_ptr is kept once ca_apply returns
    size_t n_edges = 0;                     // gradients backward must return
    std::vector<ca_ts_saved_variable> saved;
    // Serialises backward calls of this node (several threads may backpropagate through one
    // retained graph); recursive so that a backward re-entering its own node cannot deadlock.
    std::recursive_mutex mutex;
};

// See ca_check_tensor_layout: returns a status and sets the error message.
int32_t check_tensor_layout(ca_tensor a, ca_tensor same_as_a, ca_tensor other);

// See ca_apply. Throws on failure (the export turns that into a status and message).
int32_t apply(const char* name, intptr_t state, const ca_tensor* inputs, int32_t n_inputs, bool is_executable,
              const ca_tensor* outputs, int32_t n_outputs, const ca_tensor* non_diff, int32_t n_non_diff,
              const ca_tensor* dirty, int32_t n_dirty, const ca_tensor* to_save, int32_t n_save, ca_tensor* wrapped,
              int32_t* node_created);

}  // namespace custom_autograd
