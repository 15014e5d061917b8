// SPDX-License-Identifier: MIT
// The exported C entry points. Each one guards everything it calls: no exception leaves the shim.
#include "node.h"
#include "shim.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_set>
#include <vector>

using namespace custom_autograd;

namespace {

// The one guard of every export that returns a status (ca_api.h documents the codes):
//   internal_error (libffi, the shim's own invariants)  -> CA_ERR_INTERNAL, its message
//   std::bad_alloc (the shim or libtorch out of memory)  -> CA_ERR_INTERNAL, "<context>: out of memory"
//   any other std::exception (libtorch, LibTorchSharp)   -> CA_ERR_TORCH, its message
//   anything else                                        -> CA_ERR_INTERNAL
// Recording the message never throws (set_last_error falls back to a static text), so nothing escapes.
template <typename F>
int32_t guarded(const char* context, F&& body) noexcept {
    try {
        return body();
    } catch (const internal_error& e) {
        set_last_error(e.what());
        return CA_ERR_INTERNAL;
    } catch (const std::bad_alloc&) {
        set_last_error_static(context, "out of memory");
        return CA_ERR_INTERNAL;
    } catch (const std::exception& e) {
        set_last_error(e.what());
        return CA_ERR_TORCH;
    } catch (...) {
        set_last_error_static(context, "unknown native error");
        return CA_ERR_INTERNAL;
    }
}

int32_t ready() {
    auto& G = g();
    if (!G.initialized.load(std::memory_order_acquire)) {
        set_last_error("CustomAutograd's native shim is not initialised (ca_init was not called or failed)");
        return CA_ERR_NOT_INITIALIZED;
    }
    if (G.shutting_down.load(std::memory_order_relaxed)) {
        set_last_error("the process is shutting down");
        return CA_ERR_SHUTDOWN;
    }
    return CA_OK;
}

// Note [stealable gradients] (node.cpp): switches libtorch's cached-tensor registry on, once. Without all three
// entry points (or if libtorch refuses), gradients are handed over as before and AccumulateGrad copies them.
bool enable_stealable_gradients(const ca_torch_api& api) noexcept {
    if (api.caching_set_cached_tensors_enabled == nullptr || api.caching_add_cached_tensor == nullptr ||
        api.caching_remove_cached_tensor == nullptr)
        return false;
    const char* off = std::getenv("CUSTOMAUTOGRAD_STEAL_GRADIENTS");
    if (off != nullptr && std::strcmp(off, "0") == 0) return false;
    try {
        api.caching_set_cached_tensors_enabled(true);
        return true;
    } catch (...) {
        return false;
    }
}

bool counts_ok(std::initializer_list<std::pair<const void*, int32_t>> arrays) {
    for (const auto& a : arrays)
        if (a.second < 0 || (a.second > 0 && a.first == nullptr)) return false;
    return true;
}

}  // namespace

extern "C" {

CA_EXPORT int32_t ca_abi_version(void) { return CA_ABI_VERSION; }

CA_EXPORT int32_t ca_init(const ca_torch_api* api, ca_backward_callback backward, ca_release_callback release) {
    return guarded("ca_init", [&]() -> int32_t {
        if (api == nullptr || backward == nullptr || release == nullptr) {
            set_last_error("ca_init: the function table and both callbacks are required");
            return CA_ERR_INVALID_ARGUMENT;
        }
        if (api->struct_size != static_cast<int32_t>(sizeof(ca_torch_api))) {
            set_last_error("ca_init: function table size mismatch (managed " + std::to_string(api->struct_size) +
                           " bytes, native " + std::to_string(sizeof(ca_torch_api)) + " bytes)");
            return CA_ERR_INVALID_ARGUMENT;
        }
        // Every entry but the optional keep_graph query must be present.
        const void* required[] = {reinterpret_cast<const void*>(api->THSTorch_get_and_reset_last_err),
                                  reinterpret_cast<const void*>(api->THSTensor_dispose),
                                  reinterpret_cast<const void*>(api->THSAutograd_CSharpNode_ctor),
                                  reinterpret_cast<const void*>(api->THSAutograd_CSharpNode_disposeSharedPtr),
                                  reinterpret_cast<const void*>(api->THSAutograd_CSharpNode_disposeWeakPtr),
                                  reinterpret_cast<const void*>(api->THSAutograd_CSharpNode_setNextEdges),
                                  reinterpret_cast<const void*>(api->THSAutograd_CSharpNode_clearInputMetadata),
                                  reinterpret_cast<const void*>(api->THSAutograd_Function_wrapOutputs),
                                  reinterpret_cast<const void*>(api->THSAutograd_SavedVariable_ctor),
                                  reinterpret_cast<const void*>(api->THSAutograd_SavedVariable_dispose),
                                  reinterpret_cast<const void*>(api->THSAutograd_SavedVariable_unpack),
                                  reinterpret_cast<const void*>(api->THSAutograd_SavedVariable_reset_data),
                                  reinterpret_cast<const void*>(api->THSAutograd_grad),
                                  reinterpret_cast<const void*>(api->THSAutograd_backward)};
        for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); ++i) {
            if (required[i] == nullptr) {
                set_last_error("ca_init: function table entry " + std::to_string(i) + " is null");
                return CA_ERR_INVALID_ARGUMENT;
            }
        }
        auto& G = g();
        static std::mutex init_mutex;
        std::lock_guard<std::mutex> lock(init_mutex);
        if (G.initialized.load(std::memory_order_acquire)) {
            // Compare the function pointers only (not the padding after struct_size).
            const size_t first = offsetof(ca_torch_api, THSTorch_get_and_reset_last_err);
            if (std::memcmp(reinterpret_cast<const char*>(&G.torch) + first, reinterpret_cast<const char*>(api) + first,
                            sizeof(ca_torch_api) - first) != 0 ||
                G.backward != backward || G.release != release) {
                set_last_error("ca_init: already initialised with a different function table");
                return CA_ERR_INVALID_ARGUMENT;
            }
            return CA_OK;
        }
        G.torch = *api;
        G.backward = backward;
        G.release = release;
        G.stealable_gradients = enable_stealable_gradients(G.torch);
        G.initialized.store(true, std::memory_order_release);
        return CA_OK;
    });
}

CA_EXPORT int32_t ca_check_tensor_layout(ca_tensor a, ca_tensor same_as_a, ca_tensor other) {
    return guarded("ca_check_tensor_layout", [&]() -> int32_t { return check_tensor_layout(a, same_as_a, other); });
}

CA_EXPORT void ca_shutdown(void) { g().shutting_down.store(true, std::memory_order_relaxed); }

CA_EXPORT int32_t ca_apply(const char* name, intptr_t state, const ca_tensor* inputs, int32_t n_inputs,
                           int32_t is_executable, const ca_tensor* outputs, int32_t n_outputs,
                           const ca_tensor* non_diff, int32_t n_non_diff, const ca_tensor* dirty, int32_t n_dirty,
                           const ca_tensor* to_save, int32_t n_save, ca_tensor* wrapped, int32_t* node_created) {
    return guarded("ca_apply", [&]() -> int32_t {
        if (int32_t status = ready(); status != CA_OK) return status;
        if (node_created == nullptr || (n_outputs > 0 && wrapped == nullptr) ||
            !counts_ok({{inputs, n_inputs},
                        {outputs, n_outputs},
                        {non_diff, n_non_diff},
                        {dirty, n_dirty},
                        {to_save, n_save}})) {
            set_last_error("ca_apply: invalid array or count");
            return CA_ERR_INVALID_ARGUMENT;
        }
        for (int32_t i = 0; i < n_inputs; ++i)
            if (inputs[i] == nullptr) {
                set_last_error("ca_apply: input " + std::to_string(i) + " is null");
                return CA_ERR_INVALID_ARGUMENT;
            }
        for (int32_t i = 0; i < n_outputs; ++i)
            if (outputs[i] == nullptr) {
                set_last_error("ca_apply: output " + std::to_string(i) + " is null");
                return CA_ERR_INVALID_ARGUMENT;
            }
        // LibTorchSharp dereferences every entry of these lists.
        for (int32_t i = 0; i < n_non_diff; ++i)
            if (non_diff[i] == nullptr) {
                set_last_error("ca_apply: non-differentiable entry " + std::to_string(i) + " is null");
                return CA_ERR_INVALID_ARGUMENT;
            }
        for (int32_t i = 0; i < n_dirty; ++i)
            if (dirty[i] == nullptr) {
                set_last_error("ca_apply: dirty entry " + std::to_string(i) + " is null");
                return CA_ERR_INVALID_ARGUMENT;
            }
        return apply(name, state, inputs, n_inputs, is_executable != 0, outputs, n_outputs, non_diff, n_non_diff, dirty,
                     n_dirty, to_save, n_save, wrapped, node_created);
    });
}

CA_EXPORT const char* ca_intern(const char* text) {
    try {
        static std::mutex mutex;
        static auto* names = new std::unordered_set<std::string>();  // process lifetime by design
        std::lock_guard<std::mutex> lock(mutex);
        return names->insert(text != nullptr ? text : "").first->c_str();
    } catch (...) {
        return nullptr;
    }
}

CA_EXPORT int32_t ca_grad(const ca_tensor* outputs, int32_t n_outputs, const ca_tensor* inputs, int32_t n_inputs,
                          const ca_tensor* grad_outputs, int32_t n_grad_outputs, int32_t retain_graph,
                          int32_t create_graph, int32_t allow_unused, ca_tensor* results) {
    return guarded("ca_grad", [&]() -> int32_t {
        if (int32_t status = ready(); status != CA_OK) return status;
        if ((n_inputs > 0 && results == nullptr) ||
            !counts_ok({{outputs, n_outputs}, {inputs, n_inputs}, {grad_outputs, n_grad_outputs}})) {
            set_last_error("ca_grad: invalid array or count");
            return CA_ERR_INVALID_ARGUMENT;
        }
        auto& G = g();
        flush_retired_handles();
        // LibTorchSharp's THSAutograd_grad has no error guard of its own: whatever libtorch throws
        // (including a failing custom backward) unwinds into this frame and is caught by `guarded`.
        // Its allocator receives the result count and returns a buffer LibTorchSharp fills.
        G.torch.THSAutograd_grad(const_cast<ca_tensor*>(outputs), n_outputs, const_cast<ca_tensor*>(inputs), n_inputs,
                                 const_cast<ca_tensor*>(grad_outputs), n_grad_outputs, retain_graph != 0,
                                 create_graph != 0, allow_unused != 0,
                                 [](size_t length) { return allocate_result_buffer(length); });
        check_torch("grad");
        const ca_tensor* res = result_buffer();
        for (int32_t i = 0; i < n_inputs; ++i) results[i] = res[i];
        return CA_OK;
    });
}

CA_EXPORT int32_t ca_backward(const ca_tensor* tensors, int32_t n_tensors, const ca_tensor* grad_tensors,
                              int32_t n_grad_tensors, int32_t retain_graph, int32_t create_graph,
                              const ca_tensor* inputs, int32_t n_inputs) {
    return guarded("ca_backward", [&]() -> int32_t {
        if (int32_t status = ready(); status != CA_OK) return status;
        if (!counts_ok({{tensors, n_tensors}, {grad_tensors, n_grad_tensors}, {inputs, n_inputs}}) ||
            (n_grad_tensors != 0 && n_grad_tensors != n_tensors)) {
            set_last_error("ca_backward: invalid array or count");
            return CA_ERR_INVALID_ARGUMENT;
        }
        flush_retired_handles();
        g().torch.THSAutograd_backward(const_cast<ca_tensor*>(tensors), n_tensors, const_cast<ca_tensor*>(grad_tensors),
                                       n_grad_tensors, retain_graph != 0, create_graph != 0,
                                       const_cast<ca_tensor*>(inputs), n_inputs);
        check_torch(nullptr);
        return CA_OK;
    });
}

CA_EXPORT void ca_flush_thread(void) {
    try {
        flush_retired_handles();
    } catch (...) {
    }
}

CA_EXPORT void ca_get_stats(ca_stats* stats) {
    if (stats == nullptr) return;
    auto& G = g();
    stats->live_nodes = G.live_nodes.load();
    stats->live_saved = G.live_saved.load();
    stats->live_closures = G.live_closures.load();
    stats->pooled_nodes = G.pooled_nodes.load();
    stats->nodes_created = G.nodes_created.load();
    stats->backward_calls = G.backward_calls.load();
    stats->backward_failures = G.backward_failures.load();
}

}  // extern "C"
