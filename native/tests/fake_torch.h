// SPDX-License-Identifier: MIT
// A fake libtorch / LibTorchSharp behind a `ca_torch_api`, modelled on LibTorchSharp's THSAutograd.cpp:
//
//   - A tensor handle (ca_tensor) points to a heap `fake::handle`, which refers to a ref-counted
//     `fake::impl` (the at::TensorImpl). THSTensor_dispose deletes the handle; the impl dies with its
//     last handle and then drops its strong reference to its grad_fn.
//   - A node is kept alive by strong references: the construction shared_ptr handle, the impls whose
//     grad_fn it is, and the engine while it runs the node. When the last one goes, the fake calls the
//     node's on_delete (as LibTorchSharp's deleteNode does) and marks the node destroyed.
//   - The last error is a thread-local strdup'd string; every fake function that LibTorchSharp wraps in
//     its CATCH macro clears it on entry, and THSTorch_get_and_reset_last_err hands it out once.
//   - wrapOutputs follows libtorch's _wrap_outputs: an output that is an input (and not dirty) comes back
//     as a new view (a new impl); any other output comes back as the same tensor (a new handle to the
//     same impl), connected to the node unless it is non-differentiable.
//   - Failures are injected through `world` fields.
//   - `run_node` plays libtorch's engine: fresh gradient handles in, apply called through the function
//     pointer the node was constructed with, the returned handles read AFTER apply has returned.
//
// Nothing here is freed at exit on purpose (the shim's thread-local destructors may still call in).
#pragma once

#include "custom_autograd/ca_api.h"

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

namespace fake {

struct node;

struct impl {
    int value = 0;
    int refs = 0;
    node* grad_fn = nullptr;  // strong reference
};

// Laid out like at::Tensor as far as the shim relies on it: the first word is the TensorImpl pointer, so
// two handles to the same tensor have equal first words (Note [same tensor] in node.cpp).
struct handle {
    impl* t = nullptr;
    uint32_t magic = 0;
};

struct node {
    int id = 0;
    ca_ts_apply_fn apply = nullptr;
    ca_ts_delete_fn on_delete = nullptr;
    int strong = 0;          // shared handles + impls whose grad_fn this is + engine references
    int shared_handles = 0;  // live THSAutograd_CSharpNode_ctor shared_ptr handles
    int weak_handles = 0;    // live weak_ptr handles
    int on_delete_calls = 0;
    bool destroyed = false;
    int set_next_edges_calls = 0;
    bool edges_executable = false;
    std::vector<int> edges;  // the values of the tensors given to setNextEdges
    int clear_metadata_calls = 0;
};

struct saved_var {
    uint32_t magic = 0;
    int value = 0;
    impl* held = nullptr;  // strong reference to the saved tensor (null for an output, or after reset)
    bool is_output = false;
    bool reset = false;
    bool disposed = false;
    int unpack_calls = 0;
    int reset_calls = 0;
};

using grad_fn_t = std::function<void(ca_tensor* outputs, int64_t n_outputs, ca_tensor* inputs, int64_t n_inputs,
                                     ca_tensor* grad_outputs, int64_t n_grad_outputs, bool retain_graph,
                                     bool create_graph, bool allow_unused, ca_ts_allocator_fn allocator)>;

using backward_fn_t =
    std::function<void(ca_tensor* tensors, int64_t n_tensors, ca_tensor* grad_tensors, int64_t n_grad_tensors,
                       bool retain_graph, bool create_graph, ca_tensor* inputs, int64_t n_inputs)>;

struct world {
    std::recursive_mutex mu;

    // tensors
    std::unordered_set<handle*> live;
    int64_t handles_created = 0;
    int64_t handles_disposed = 0;
    int64_t live_impls = 0;
    std::vector<std::string> misuse;  // double disposes, use of dead handles, bad node/saved handles...

    // nodes and saved variables (never freed, for inspection)
    std::vector<node*> nodes;
    std::vector<saved_var*> saved;
    int64_t live_saved = 0;

    // every call the shim made, in order ("ctor", "setNextEdges", "clearInputMetadata", "wrapOutputs",
    // "savedCtor", "savedDispose", "unpack", "resetData", "disposeShared", "disposeWeak", "grad")
    std::vector<std::string> log;

    // wrapOutputs
    int wrap_calls = 0;
    bool last_wrap_node_null = false;
    std::vector<int> last_wrap_vars, last_wrap_outputs, last_wrap_non_diff, last_wrap_dirty;

    // failure injection: a non-empty message makes that call fail with it
    std::string fail_ctor, fail_set_next_edges, fail_clear_metadata, fail_wrap, fail_reset_data;
    int fail_saved_ctor_at = -1;  // index among all SavedVariable_ctor calls
    std::string fail_saved_ctor_message;
    int fail_unpack_at = -1;  // index among all unpack calls
    std::string fail_unpack_message;

    // keep_graph
    bool keep_graph = true;
    int keep_graph_calls = 0;

    // THSAutograd_grad
    grad_fn_t grad;
    int grad_calls = 0;

    // THSAutograd_backward (LibTorchSharp wraps it in CATCH: a std::exception becomes the last error)
    backward_fn_t backward;
    int backward_calls = 0;

    // at::caching's cached-tensor registry (Note [stealable gradients] in node.cpp): a registered tensor counts
    // one reference fewer where libtorch decides whether it may take it over (see stealable())
    bool registry_enabled = false;
    int registry_enable_calls = 0;
    std::unordered_set<impl*> registry;
    int64_t registry_adds = 0;
    int64_t registry_removes = 0;

    // the deepest nesting of on_delete calls seen on one thread (recursive graph teardown)
    int max_on_delete_depth = 0;

    // errors
    int64_t errors_set = 0;
    int64_t errors_taken = 0;
    int64_t errors_dropped = 0;  // set and never taken (cleared by the next CATCH'd call)
};

world& w();

// The function table (struct_size set, every entry filled).
ca_torch_api table();

// Sets this thread's last error (strdup'd), as LibTorchSharp's CATCH does.
void set_error(const char* message);
bool error_pending();

// Tensors.
ca_tensor make(int value);     // a fresh handle to a new tensor
ca_tensor share(ca_tensor h);  // a fresh handle to the same tensor
int value_of(ca_tensor h);     // -1 for null, -2 for a dead handle
bool is_live(ca_tensor h);
node* grad_fn_of(ca_tensor h);  // null if none or dead
int64_t live_handles();
bool registered(ca_tensor h);  // whether the tensor is in the cached-tensor registry
// What libtorch's AccumulateGrad decides for a gradient the engine now holds once (plus the handles still alive):
// it takes the tensor as the leaf's .grad when its reference count, less one if registered, is at most 1.
bool stealable(ca_tensor h);
void dispose(ca_tensor h);                     // THSTensor_dispose
void dispose_all(std::vector<ca_tensor>& hs);  // and nulls them

// Nodes.
node* node_of(ca_ts_node_ptr p);  // through the weak handle
node* last_node();
int node_count();

// The engine.
struct outcome {
    bool threw = false;
    bool runtime_error = false;  // the exception was a std::runtime_error
    std::string what;
    std::vector<int> values;  // value of each returned handle at copy time; -1 null, -2 already disposed
    int64_t size = -1;
};
// Runs the node's apply with one fresh gradient per entry (a negative value = undefined gradient).
outcome run_node(node* n, const std::vector<int>& grad_values);
// The same, letting the exception through (as libtorch's engine ultimately does to grad()'s caller).
outcome run_node_rethrow(node* n, const std::vector<int>& grad_values);

}  // namespace fake
