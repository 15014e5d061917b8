/* SPDX-License-Identifier: MIT */
/*
 * The whole C ABI of the CustomAutograd native shim (libCustomAutogradNative).
 *
 * The shim never includes a libtorch header. It reaches libtorch only through the function table
 * `ca_torch_api`, which the managed side fills from LibTorchSharp's exported C functions (and one
 * plain-signature libtorch function) at start-up.
 *
 * Note [ownership across the ABI]
 *   - A `ca_tensor` is LibTorchSharp's handle: a pointer to a heap-allocated at::Tensor.
 *   - Managed -> native is a borrow: the shim copies (or takes new references to) what it keeps
 *     before it returns. The only exception is documented on ca_backward_callback (`owned`).
 *   - Native -> managed is a transfer: every handle the shim hands out is fresh and the receiver
 *     must dispose it (TorchSharp's Tensor does that once it adopts the handle).
 *
 * Every export returns a ca_status, except getters and releasers. On failure the message is
 * stored in a thread-local slot and read with ca_last_error() on the same thread.
 */
#ifndef CUSTOM_AUTOGRAD_CA_API_H
#define CUSTOM_AUTOGRAD_CA_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CA_EXPORT __declspec(dllexport)
#else
#define CA_EXPORT __attribute__((visibility("default")))
#endif

/* Bumped whenever a signature or struct below changes; the managed side refuses a mismatch. */
#define CA_ABI_VERSION 8

typedef enum ca_status {
    CA_OK = 0,
    CA_ERR_INVALID_ARGUMENT = 1, /* a null pointer or negative count where none is allowed */
    CA_ERR_NOT_INITIALIZED = 2,  /* ca_init was not called (or failed) */
    CA_ERR_TORCH = 3,            /* libtorch / LibTorchSharp rejected the operation; message is libtorch's */
    CA_ERR_CALLBACK = 4,         /* a managed callback reported a failure */
    CA_ERR_SHUTDOWN = 5,         /* the process is shutting down; nothing was done */
    CA_ERR_INTERNAL = 6,         /* the shim itself failed: out of memory (std::bad_alloc, also when thrown
                                    inside libtorch), libffi could not make a closure, or an unknown exception */
    CA_ERR_ABI = 7               /* the loaded libtorch breaks an assumption of the shim (ca_check_tensor_layout) */
} ca_status;

/* A LibTorchSharp tensor handle (at::Tensor*). Null means "undefined tensor". */
typedef void* ca_tensor;

/* ---- LibTorchSharp's ABI, declared without its headers ------------------------------------ */

/* LibTorchSharp's `TensorArray` (Utils.h): passed and returned by value. */
typedef struct ca_ts_tensor_array {
    ca_tensor* array;
    int64_t size;
} ca_ts_tensor_array;

/* LibTorchSharp's `CSharpNodePtr`: heap-allocated std::shared_ptr / std::weak_ptr to its node. */
typedef struct ca_ts_node_ptr {
    void* shared_ptr;
    void* weak_ptr;
} ca_ts_node_ptr;

/* LibTorchSharp's `SavedVariable`: a heap-allocated std::shared_ptr<torch::autograd::SavedVariable>. */
typedef void* ca_ts_saved_variable;

typedef ca_ts_tensor_array (*ca_ts_apply_fn)(ca_tensor* grads, int count);
typedef void (*ca_ts_delete_fn)(void);
typedef ca_tensor* (*ca_ts_allocator_fn)(size_t length);

/*
 * The function table the managed side resolves from the loaded libraries and hands to ca_init.
 * Field names follow the exports they are resolved from.
 */
typedef struct ca_torch_api {
    int32_t struct_size; /* sizeof(ca_torch_api), checked by ca_init */
    const char* (*THSTorch_get_and_reset_last_err)(void);
    void (*THSTensor_dispose)(ca_tensor tensor);
    ca_ts_node_ptr (*THSAutograd_CSharpNode_ctor)(ca_ts_apply_fn apply, ca_ts_delete_fn on_delete);
    void (*THSAutograd_CSharpNode_disposeSharedPtr)(ca_ts_node_ptr node);
    void (*THSAutograd_CSharpNode_disposeWeakPtr)(ca_ts_node_ptr node);
    void (*THSAutograd_CSharpNode_setNextEdges)(ca_ts_node_ptr node, ca_ts_tensor_array vars, bool is_executable);
    void (*THSAutograd_CSharpNode_clearInputMetadata)(ca_ts_node_ptr node);
    void (*THSAutograd_Function_wrapOutputs)(ca_ts_tensor_array vars, ca_ts_tensor_array non_diff,
                                             ca_ts_tensor_array dirty, ca_ts_tensor_array outputs, ca_ts_node_ptr node,
                                             ca_ts_allocator_fn allocator);
    ca_ts_saved_variable (*THSAutograd_SavedVariable_ctor)(ca_tensor variable, ca_ts_node_ptr node,
                                                           bool is_inplace_on_view);
    void (*THSAutograd_SavedVariable_dispose)(ca_ts_saved_variable var);
    ca_tensor (*THSAutograd_SavedVariable_unpack)(ca_ts_saved_variable var, ca_ts_node_ptr saved_for);
    void (*THSAutograd_SavedVariable_reset_data)(ca_ts_saved_variable var);
    void (*THSAutograd_grad)(ca_tensor* outputs, int64_t n_outputs, ca_tensor* inputs, int64_t n_inputs,
                             ca_tensor* grad_outputs, int64_t n_grad_outputs, bool retain_graph, bool create_graph,
                             bool allow_unused, ca_ts_allocator_fn allocator);
    /* torch::autograd::get_current_graph_task_keep_graph(); may be null (then saved tensors are
       kept until the node dies, which is always safe). */
    bool (*get_current_graph_task_keep_graph)(void);
    /* torch::autograd::Engine::get_default_engine() and Engine::queue_callback(std::function<void()>), the
       latter called as (engine, pointer to the std::function temporary) per the Itanium C++ ABI; both may be
       null (then gradients handed to the engine are released at the thread's next call only, not also at the
       end of the backward pass; see Note [retired gradient handles]). Ignored by a shim built without libstdc++ or on
       Windows, where that route is compiled out (Note [std::function across the ABI], engine_callback.h). */
    void* (*Engine_get_default_engine)(void);
    void (*Engine_queue_callback)(void* engine, void* std_function_void);
    /* LibTorchSharp's getters, used to pick the batches that are also queued on the pass (large, device or
       graph-carrying (create_graph) gradients), in addition to the per-thread release; may be null (then every
       batch is queued). */
    int64_t (*THSTensor_numel)(ca_tensor tensor);
    int64_t (*THSTensor_element_size)(ca_tensor tensor);
    int (*THSTensor_device_type)(ca_tensor tensor);
    bool (*THSTensor_requires_grad)(ca_tensor tensor);
    /* torch::autograd::backward; LibTorchSharp catches libtorch's errors and stores the message (required). */
    void (*THSAutograd_backward)(ca_tensor* tensors, int64_t n_tensors, ca_tensor* grad_tensors, int64_t n_grad_tensors,
                                 bool retain_graph, bool create_graph, ca_tensor* inputs, int64_t n_inputs);
    /* at::caching::set_cached_tensors_enabled(bool), add_cached_tensor(const at::Tensor&) and
       remove_cached_tensor(const at::Tensor&), exported by libtorch_cpu (a const at::Tensor& is passed as the
       handle, per the Itanium C++ ABI). All three or none (then null): with them, AccumulateGrad can take a
       gradient a Backward returned as a leaf's .grad instead of copying it (Note [stealable gradients]). */
    void (*caching_set_cached_tensors_enabled)(bool enabled);
    void (*caching_add_cached_tensor)(ca_tensor tensor);
    void (*caching_remove_cached_tensor)(ca_tensor tensor);
} ca_torch_api;

/* ---- Managed callbacks, registered once ---------------------------------------------------- */

/*
 * Runs a node's Backward. Called on whatever thread libtorch's engine runs the node on, with the
 * node's lock held.
 *   state      the managed state handle given to ca_apply.
 *   grads      one gradient per forward output; fresh handles owned by the callee (null = undefined).
 *   saved      the unpacked saved tensors, in save order; fresh handles owned by the callee (null = saved null).
 *   results    one slot per edge (per non-null tensor input given to ca_apply); the callee writes a
 *              handle or null (no gradient).
 *   owned      one flag per result: 1 = ownership of that handle passes to the shim (it disposes it
 *              once libtorch has taken the tensor out of the results, even when the callback then
 *              reports a failure), 0 = borrowed: the callee must keep the handle valid until after it
 *              has returned, because libtorch takes the results only then (the managed side keeps such
 *              tensors reachable until its next backward on the thread).
 * Returns CA_OK, or another status after calling ca_set_callback_error with the message.
 * It must never let an exception unwind into native code.
 */
typedef int32_t (*ca_backward_callback)(intptr_t state, ca_tensor* grads, int32_t n_grads, ca_tensor* saved,
                                        int32_t n_saved, ca_tensor* results, uint8_t* owned, int32_t n_results);

/* Releases a node's managed state. Called once, when libtorch destroys the node, on any thread. */
typedef void (*ca_release_callback)(intptr_t state);

/* ---- Exports ------------------------------------------------------------------------------- */

/* The ABI version compiled into the shim (CA_ABI_VERSION). */
CA_EXPORT int32_t ca_abi_version(void);

/* Registers the torch function table and the callbacks. Idempotent for identical arguments. */
CA_EXPORT int32_t ca_init(const ca_torch_api* api, ca_backward_callback backward, ca_release_callback release);

/*
 * Start-up self-check of Note [same tensor] (native/src/node.cpp): the shim recognises two handles to one
 * tensor by the first word of the at::Tensor they point to (its TensorImpl pointer).
 *   a, same_as_a   two distinct handles to one defined tensor (e.g. a contiguous tensor's handle and the fresh
 *                  handle LibTorchSharp's THSTensor_contiguous returns for it); borrowed
 *   other          a handle to another defined tensor; borrowed
 * Returns CA_OK when the first words of a and same_as_a are equal and differ from other's; until a check has
 * passed, ca_apply never recognises an output as the caller's own tensor (every `wrapped` entry is a fresh
 * handle). CA_ERR_ABI when the layout differs (the message says what was found); a failing check leaves an
 * earlier verdict unchanged. CA_ERR_INVALID_ARGUMENT for null or repeated handles. Needs no ca_init.
 */
CA_EXPORT int32_t ca_check_tensor_layout(ca_tensor a, ca_tensor same_as_a, ca_tensor other);

/* From now on callbacks do nothing and release leaks on purpose: the runtime is going away. */
CA_EXPORT void ca_shutdown(void);

/* The message of the last failure on this thread (UTF-8, valid until the next call on this thread). */
CA_EXPORT const char* ca_last_error(void);

/* Used by ca_backward_callback to report why it failed. Copies the UTF-8 text. */
CA_EXPORT void ca_set_callback_error(const char* message);

/*
 * One application of a custom function, after its forward ran:
 *   name            the function's name; must stay valid for the life of the process (see ca_intern).
 *   state           the managed state handle. When *node_created is 1 the node owns it and will pass it
 *                   to the release callback exactly once; otherwise the caller keeps it. The release can
 *                   happen before ca_apply returns (when no output refers to the node): after a successful
 *                   call the caller must not use `state` again.
 *   inputs          the non-null tensor inputs, in order (borrowed). The node gets one edge per entry.
 *   is_executable   1 if grad mode was on and some input requires grad: then a node is created.
 *   outputs         the tensors the forward returned (borrowed, none null).
 *   non_diff/dirty  the outputs marked non-differentiable / the inputs marked dirty (borrowed).
 *   to_save         tensors to save for backward, as libtorch saved variables (borrowed, null allowed).
 *   wrapped         receives one entry per output: a fresh handle to the output as connected to the node, or
 *                   null when that is the very tensor given in outputs[i] (connected in place; the caller keeps
 *                   using its own handle). Outputs that are inputs returned as-is get a fresh handle (a view);
 *                   inputs marked dirty are rebased in place and come back null. Null entries appear only once
 *                   ca_check_tensor_layout has passed; before, every entry is a fresh handle.
 */
CA_EXPORT int32_t ca_apply(const char* name, intptr_t state, const ca_tensor* inputs, int32_t n_inputs,
                           int32_t is_executable, const ca_tensor* outputs, int32_t n_outputs,
                           const ca_tensor* non_diff, int32_t n_non_diff, const ca_tensor* dirty, int32_t n_dirty,
                           const ca_tensor* to_save, int32_t n_save, ca_tensor* wrapped, int32_t* node_created);

/* Returns a process-lifetime copy of a UTF-8 string; equal strings give the same pointer. */
CA_EXPORT const char* ca_intern(const char* text);

/*
 * torch.autograd.grad with every libtorch error caught. `results` receives n_inputs fresh handles
 * (null where an input is unused and allow_unused is set).
 */
CA_EXPORT int32_t ca_grad(const ca_tensor* outputs, int32_t n_outputs, const ca_tensor* inputs, int32_t n_inputs,
                          const ca_tensor* grad_outputs, int32_t n_grad_outputs, int32_t retain_graph,
                          int32_t create_graph, int32_t allow_unused, ca_tensor* results);

/*
 * torch.autograd.backward: accumulates into the .grad of the leaves (or of `inputs`, when n_inputs > 0).
 * grad_tensors has one entry per tensor, or n_grad_tensors is 0 (then every tensor must be a scalar).
 */
CA_EXPORT int32_t ca_backward(const ca_tensor* tensors, int32_t n_tensors, const ca_tensor* grad_tensors,
                              int32_t n_grad_tensors, int32_t retain_graph, int32_t create_graph,
                              const ca_tensor* inputs, int32_t n_inputs);

/* Disposes gradient handles that libtorch has already copied (normally done lazily on each thread). */
CA_EXPORT void ca_flush_thread(void);

typedef struct ca_stats {
    int64_t live_nodes;        /* nodes created and not yet destroyed by libtorch */
    int64_t live_saved;        /* saved variables not yet disposed */
    int64_t live_closures;     /* libffi closures allocated (in use or pooled) */
    int64_t pooled_nodes;      /* node records waiting in the reuse pool */
    int64_t nodes_created;     /* total since start */
    int64_t backward_calls;    /* total since start */
    int64_t backward_failures; /* total since start */
} ca_stats;

/* Fills the counters. */
CA_EXPORT void ca_get_stats(ca_stats* stats);

#ifdef __cplusplus
}
#endif

#endif /* CUSTOM_AUTOGRAD_CA_API_H */
