// SPDX-License-Identifier: MIT
// The fake libtorch / LibTorchSharp (see fake_torch.h).
#include "fake_torch.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace fake {

namespace {

constexpr uint32_t kHandleMagic = 0x7e45a11u;
constexpr uint32_t kSharedMagic = 0x5a4ed00u;
constexpr uint32_t kWeakMagic = 0x3eac000u;
constexpr uint32_t kSavedMagic = 0x5a7ed00u;

struct shared_h {
    uint32_t magic = kSharedMagic;
    node* n = nullptr;
};
struct weak_h {
    uint32_t magic = kWeakMagic;
    node* n = nullptr;
};

std::unordered_set<shared_h*>& live_shared() {
    static auto* s = new std::unordered_set<shared_h*>();
    return *s;
}
std::unordered_set<weak_h*>& live_weak() {
    static auto* s = new std::unordered_set<weak_h*>();
    return *s;
}

using lock_t = std::unique_lock<std::recursive_mutex>;

// Dead handles are kept (reachable) rather than freed; see dispose.
std::vector<handle*>& graveyard() {
    static auto* s = new std::vector<handle*>();
    return *s;
}
std::vector<void*>& node_graveyard() {
    static auto* s = new std::vector<void*>();
    return *s;
}

thread_local char* t_err = nullptr;
int g_saved_ctor_calls = 0;
int g_unpack_calls = 0;

void misuse(const std::string& what) { w().misuse.push_back(what); }

// LibTorchSharp's CATCH macro starts with `torch_last_err = 0`.
void catch_begin() {
    if (t_err != nullptr) {
        std::free(t_err);
        t_err = nullptr;
        std::lock_guard<std::recursive_mutex> lock(w().mu);
        ++w().errors_dropped;
    }
}

void log(const char* what) {
    std::lock_guard<std::recursive_mutex> lock(w().mu);
    w().log.emplace_back(what);
}

// Drops one strong reference; the last one runs on_delete (LibTorchSharp's deleteNode) outside the lock.
void drop_strong(node* n) {
    bool dies = false;
    {
        lock_t lock(w().mu);
        if (n->strong <= 0) {
            misuse("strong reference dropped on a dead node");
            return;
        }
        if (--n->strong == 0) {
            dies = true;
            ++n->on_delete_calls;
        }
    }
    if (dies) {
        static thread_local int depth = 0;
        ++depth;
        {
            lock_t lock(w().mu);
            if (depth > w().max_on_delete_depth) w().max_on_delete_depth = depth;
        }
        n->on_delete();
        --depth;
        lock_t lock(w().mu);
        n->destroyed = true;
    }
}

// Under the lock. Returns the grad_fn whose strong reference the caller must drop (outside the lock).
node* unref_impl(impl* t) {
    if (--t->refs > 0) return nullptr;
    node* n = t->grad_fn;
    --w().live_impls;
    delete t;
    return n;
}

handle* live_handle(ca_tensor h, const char* context) {
    auto* hh = static_cast<handle*>(h);
    if (h == nullptr || w().live.count(hh) == 0) {
        misuse(std::string(context) + ": dead or unknown tensor handle");
        return nullptr;
    }
    return hh;
}

ca_tensor new_handle(impl* t) {
    auto* h = new handle();
    h->magic = kHandleMagic;
    h->t = t;
    ++t->refs;
    w().live.insert(h);
    ++w().handles_created;
    return h;
}

node* weak_node(ca_ts_node_ptr p, const char* context) {
    if (p.weak_ptr == nullptr) return nullptr;
    auto* wh = static_cast<weak_h*>(p.weak_ptr);
    if (live_weak().count(wh) == 0) {
        misuse(std::string(context) + ": disposed or unknown weak_ptr handle");
        return nullptr;
    }
    return wh->n->strong > 0 ? wh->n : nullptr;  // weak_ptr::lock()
}

// ---- the table ------------------------------------------------------------------------------

const char* f_get_and_reset_last_err() {
    char* e = t_err;
    t_err = nullptr;
    if (e != nullptr) {
        std::lock_guard<std::recursive_mutex> lock(w().mu);
        ++w().errors_taken;
    }
    return e;
}

void f_tensor_dispose(ca_tensor t) {
    if (t == nullptr) return;  // `delete nullptr`
    dispose(t);
}

ca_ts_node_ptr f_node_ctor(ca_ts_apply_fn apply, ca_ts_delete_fn on_delete) {
    catch_begin();
    log("ctor");
    lock_t lock(w().mu);
    if (!w().fail_ctor.empty()) {
        set_error(w().fail_ctor.c_str());
        return ca_ts_node_ptr{nullptr, nullptr};
    }
    auto* n = new node();
    n->id = static_cast<int>(w().nodes.size()) + 1;
    n->apply = apply;
    n->on_delete = on_delete;
    n->strong = 1;
    n->shared_handles = 1;
    n->weak_handles = 1;
    w().nodes.push_back(n);
    auto* sh = new shared_h();
    sh->n = n;
    auto* wh = new weak_h();
    wh->n = n;
    live_shared().insert(sh);
    live_weak().insert(wh);
    return ca_ts_node_ptr{sh, wh};
}

void f_node_dispose_shared(ca_ts_node_ptr p) {
    catch_begin();
    log("disposeShared");
    node* n = nullptr;
    {
        lock_t lock(w().mu);
        auto* sh = static_cast<shared_h*>(p.shared_ptr);
        if (sh == nullptr) return;  // `delete nullptr`
        if (live_shared().erase(sh) == 0) {
            misuse("disposeSharedPtr: disposed or unknown shared_ptr handle");
            return;
        }
        n = sh->n;
        --n->shared_handles;
        sh->magic = 0;  // not freed: a later handle must not get its address (see dispose)
        node_graveyard().push_back(sh);
    }
    drop_strong(n);
}

void f_node_dispose_weak(ca_ts_node_ptr p) {
    catch_begin();
    log("disposeWeak");
    lock_t lock(w().mu);
    auto* wh = static_cast<weak_h*>(p.weak_ptr);
    if (wh == nullptr) return;
    if (live_weak().erase(wh) == 0) {
        misuse("disposeWeakPtr: disposed or unknown weak_ptr handle");
        return;
    }
    --wh->n->weak_handles;
    wh->magic = 0;  // not freed, as above
    node_graveyard().push_back(wh);
}

void f_set_next_edges(ca_ts_node_ptr p, ca_ts_tensor_array vars, bool is_executable) {
    catch_begin();
    log("setNextEdges");
    lock_t lock(w().mu);
    node* n = weak_node(p, "setNextEdges");
    if (n == nullptr) {
        misuse("setNextEdges on a null or dead node");
        return;
    }
    if (!w().fail_set_next_edges.empty()) {
        set_error(w().fail_set_next_edges.c_str());
        return;
    }
    ++n->set_next_edges_calls;
    n->edges_executable = is_executable;
    n->edges.clear();
    for (int64_t i = 0; i < vars.size; ++i) n->edges.push_back(value_of(vars.array[i]));
}

void f_clear_input_metadata(ca_ts_node_ptr p) {
    catch_begin();
    log("clearInputMetadata");
    lock_t lock(w().mu);
    node* n = weak_node(p, "clearInputMetadata");
    if (n == nullptr) {
        misuse("clearInputMetadata on a null or dead node");
        return;
    }
    if (!w().fail_clear_metadata.empty()) {
        set_error(w().fail_clear_metadata.c_str());
        return;
    }
    ++n->clear_metadata_calls;
}

std::vector<int> values(ca_ts_tensor_array a) {
    std::vector<int> v;
    for (int64_t i = 0; i < a.size; ++i) v.push_back(value_of(a.array[i]));
    return v;
}

void f_wrap_outputs(ca_ts_tensor_array vars, ca_ts_tensor_array non_diff, ca_ts_tensor_array dirty,
                    ca_ts_tensor_array outputs, ca_ts_node_ptr p, ca_ts_allocator_fn allocator) {
    catch_begin();
    log("wrapOutputs");
    std::vector<node*> to_drop;
    {
        lock_t lock(w().mu);
        auto& W = w();
        ++W.wrap_calls;
        W.last_wrap_node_null = p.shared_ptr == nullptr && p.weak_ptr == nullptr;
        W.last_wrap_vars = values(vars);
        W.last_wrap_outputs = values(outputs);
        W.last_wrap_non_diff = values(non_diff);
        W.last_wrap_dirty = values(dirty);
        if (!W.fail_wrap.empty()) {
            set_error(W.fail_wrap.c_str());
            return;
        }
        node* n = weak_node(p, "wrapOutputs");
        std::unordered_set<impl*> in, nd, out, dirt;
        for (int64_t i = 0; i < vars.size; ++i)
            if (handle* h = live_handle(vars.array[i], "wrapOutputs vars")) in.insert(h->t);
        for (int64_t i = 0; i < non_diff.size; ++i)
            if (handle* h = live_handle(non_diff.array[i], "wrapOutputs non_diff")) nd.insert(h->t);
        for (int64_t i = 0; i < outputs.size; ++i)
            if (handle* h = live_handle(outputs.array[i], "wrapOutputs outputs")) out.insert(h->t);
        for (int64_t i = 0; i < dirty.size; ++i) {
            handle* h = live_handle(dirty.array[i], "wrapOutputs dirty");
            if (h == nullptr) continue;
            if (out.count(h->t) == 0) {
                set_error(
                    "Some elements marked as dirty during the forward method were not returned as output. "
                    "The inputs that are modified inplace must all be outputs of the Function.");
                return;
            }
            dirt.insert(h->t);
        }
        ca_tensor* result = allocator(static_cast<size_t>(outputs.size));
        for (int64_t i = 0; i < outputs.size; ++i) {
            handle* h = live_handle(outputs.array[i], "wrapOutputs outputs");
            if (h == nullptr) {
                result[i] = nullptr;
                continue;
            }
            impl* t = h->t;
            const bool is_input = in.count(t) != 0;
            const bool is_modified = dirt.count(t) != 0;
            const bool differentiable = n != nullptr && nd.count(t) == 0;
            if (is_input && !is_modified) {
                // _view_as_self_with_no_grad: a new tensor (view) ...
                auto* view = new impl();
                view->value = t->value;
                ++W.live_impls;
                if (differentiable) {  // ... connected to the node
                    view->grad_fn = n;
                    ++n->strong;
                }
                result[i] = new_handle(view);
                continue;
            }
            if (differentiable && t->grad_fn != n) {  // set_gradient_edge / rebase_history, in place
                if (t->grad_fn != nullptr) to_drop.push_back(t->grad_fn);
                t->grad_fn = n;
                ++n->strong;
            }
            result[i] = new_handle(t);
        }
    }
    for (node* n : to_drop) drop_strong(n);
}

ca_ts_saved_variable f_saved_ctor(ca_tensor variable, ca_ts_node_ptr p, bool is_inplace_on_view) {
    (void)is_inplace_on_view;
    catch_begin();
    log("savedCtor");
    lock_t lock(w().mu);
    const int index = g_saved_ctor_calls++;
    if (index == w().fail_saved_ctor_at) {
        set_error(w().fail_saved_ctor_message.c_str());
        return nullptr;
    }
    handle* h = live_handle(variable, "SavedVariable_ctor");
    if (h == nullptr) return nullptr;
    node* n = weak_node(p, "SavedVariable_ctor");
    auto* sv = new saved_var();
    sv->magic = kSavedMagic;
    sv->value = h->t->value;
    sv->is_output = n != nullptr && h->t->grad_fn == n;
    if (!sv->is_output) {
        sv->held = h->t;
        ++h->t->refs;
    }
    w().saved.push_back(sv);
    ++w().live_saved;
    return sv;
}

saved_var* live_saved_var(ca_ts_saved_variable v, const char* context) {
    auto* sv = static_cast<saved_var*>(v);
    for (auto* s : w().saved)
        if (s == sv && !s->disposed) return sv;
    misuse(std::string(context) + ": disposed or unknown saved variable");
    return nullptr;
}

void f_saved_dispose(ca_ts_saved_variable v) {
    catch_begin();
    log("savedDispose");
    node* drop = nullptr;
    {
        lock_t lock(w().mu);
        saved_var* sv = live_saved_var(v, "SavedVariable_dispose");
        if (sv == nullptr) return;
        sv->disposed = true;
        --w().live_saved;
        if (sv->held != nullptr) {
            drop = unref_impl(sv->held);
            sv->held = nullptr;
        }
    }
    if (drop != nullptr) drop_strong(drop);
}

ca_tensor f_saved_unpack(ca_ts_saved_variable v, ca_ts_node_ptr saved_for) {
    catch_begin();
    log("unpack");
    lock_t lock(w().mu);
    const int index = g_unpack_calls++;
    saved_var* sv = live_saved_var(v, "SavedVariable_unpack");
    if (sv == nullptr) return nullptr;
    ++sv->unpack_calls;
    if (index == w().fail_unpack_at) {
        set_error(w().fail_unpack_message.c_str());
        return nullptr;
    }
    if (sv->reset) {
        set_error(
            "Trying to backward through the graph a second time (or directly access saved tensors after "
            "they have already been freed). Saved intermediate values of the graph are freed when you call "
            ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
            "graph a second time or if you need to access saved tensors after calling backward.");
        return nullptr;
    }
    if (sv->is_output) {
        // libtorch rebuilds the output with saved_for as its grad_fn.
        auto* t = new impl();
        t->value = sv->value;
        ++w().live_impls;
        if (node* n = weak_node(saved_for, "SavedVariable_unpack")) {
            t->grad_fn = n;
            ++n->strong;
        }
        return new_handle(t);
    }
    return new_handle(sv->held);
}

void f_saved_reset_data(ca_ts_saved_variable v) {
    catch_begin();
    log("resetData");
    node* drop = nullptr;
    {
        lock_t lock(w().mu);
        saved_var* sv = live_saved_var(v, "SavedVariable_reset_data");
        if (sv == nullptr) return;
        ++sv->reset_calls;
        if (!w().fail_reset_data.empty()) {
            set_error(w().fail_reset_data.c_str());
            return;
        }
        sv->reset = true;
        if (sv->held != nullptr) {
            drop = unref_impl(sv->held);
            sv->held = nullptr;
        }
    }
    if (drop != nullptr) drop_strong(drop);
}

void f_grad(ca_tensor* outputs, int64_t n_outputs, ca_tensor* inputs, int64_t n_inputs, ca_tensor* grad_outputs,
            int64_t n_grad_outputs, bool retain_graph, bool create_graph, bool allow_unused,
            ca_ts_allocator_fn allocator) {
    // No CATCH in LibTorchSharp's THSAutograd_grad: whatever libtorch throws unwinds into the caller.
    log("grad");
    grad_fn_t fn;
    {
        lock_t lock(w().mu);
        ++w().grad_calls;
        fn = w().grad;
    }
    if (!fn) throw std::runtime_error("fake THSAutograd_grad: no behaviour configured");
    fn(outputs, n_outputs, inputs, n_inputs, grad_outputs, n_grad_outputs, retain_graph, create_graph, allow_unused,
       allocator);
}

void f_backward(ca_tensor* tensors, int64_t n_tensors, ca_tensor* grad_tensors, int64_t n_grad_tensors,
                bool retain_graph, bool create_graph, ca_tensor* inputs, int64_t n_inputs) {
    // LibTorchSharp's THSAutograd_backward is wrapped in CATCH: the exception becomes the last error.
    catch_begin();
    log("backward");
    backward_fn_t fn;
    {
        lock_t lock(w().mu);
        ++w().backward_calls;
        fn = w().backward;
    }
    try {
        if (!fn) throw std::runtime_error("fake THSAutograd_backward: no behaviour configured");
        fn(tensors, n_tensors, grad_tensors, n_grad_tensors, retain_graph, create_graph, inputs, n_inputs);
    } catch (const std::exception& e) {
        t_err = strdup(e.what());
        lock_t lock(w().mu);
        ++w().errors_set;
    }
}

// at::caching (CachedTensorUtils.cpp): add and remove assert that the registry is enabled (TORCH_INTERNAL_ASSERT
// throws c10::Error, a std::exception).
void f_set_cached_tensors_enabled(bool enabled) {
    lock_t lock(w().mu);
    ++w().registry_enable_calls;
    w().registry_enabled = enabled;
}

void f_add_cached_tensor(ca_tensor h) {
    lock_t lock(w().mu);
    if (!w().registry_enabled) throw std::runtime_error("fake at::caching: the registry is disabled");
    handle* hh = live_handle(h, "add_cached_tensor");
    if (hh == nullptr) return;
    ++w().registry_adds;
    w().registry.insert(hh->t);
}

void f_remove_cached_tensor(ca_tensor h) {
    lock_t lock(w().mu);
    if (!w().registry_enabled) throw std::runtime_error("fake at::caching: the registry is disabled");
    handle* hh = live_handle(h, "remove_cached_tensor");
    if (hh == nullptr) return;
    ++w().registry_removes;
    w().registry.erase(hh->t);
}

bool f_keep_graph() {
    lock_t lock(w().mu);
    ++w().keep_graph_calls;
    return w().keep_graph;
}

outcome run_impl(node* n, const std::vector<int>& grad_values, bool rethrow) {
    {
        lock_t lock(w().mu);
        if (n->strong <= 0) misuse("the engine ran a destroyed node");
        ++n->strong;  // the engine's reference while the node runs
    }
    struct engine_ref {
        node* n;
        ~engine_ref() { drop_strong(n); }
    } ref{n};

    // CSharpNode::apply: fresh handles (ResultTensor), owned by the callee.
    std::vector<ca_tensor> grads;
    for (int v : grad_values) grads.push_back(v < 0 ? nullptr : make(v));

    outcome o;
    try {
        ca_ts_tensor_array r = n->apply(grads.data(), static_cast<int>(grads.size()));
        // ... and only now, after apply returned, reads the tensors out of the returned array.
        o.size = r.size;
        for (int64_t i = 0; i < r.size; ++i) o.values.push_back(r.array[i] == nullptr ? -1 : value_of(r.array[i]));
    } catch (const std::runtime_error& e) {
        o.threw = true;
        o.runtime_error = true;
        o.what = e.what();
        if (rethrow) throw;
    } catch (const std::exception& e) {
        o.threw = true;
        o.what = e.what();
        if (rethrow) throw;
    } catch (...) {
        o.threw = true;
        o.what = "(non-standard exception)";
        if (rethrow) throw;
    }
    return o;
}

}  // namespace

world& w() {
    static auto* instance = new world();
    return *instance;
}

ca_torch_api table() {
    ca_torch_api api;
    std::memset(&api, 0, sizeof(api));
    api.struct_size = static_cast<int32_t>(sizeof(ca_torch_api));
    api.THSTorch_get_and_reset_last_err = f_get_and_reset_last_err;
    api.THSTensor_dispose = f_tensor_dispose;
    api.THSAutograd_CSharpNode_ctor = f_node_ctor;
    api.THSAutograd_CSharpNode_disposeSharedPtr = f_node_dispose_shared;
    api.THSAutograd_CSharpNode_disposeWeakPtr = f_node_dispose_weak;
    api.THSAutograd_CSharpNode_setNextEdges = f_set_next_edges;
    api.THSAutograd_CSharpNode_clearInputMetadata = f_clear_input_metadata;
    api.THSAutograd_Function_wrapOutputs = f_wrap_outputs;
    api.THSAutograd_SavedVariable_ctor = f_saved_ctor;
    api.THSAutograd_SavedVariable_dispose = f_saved_dispose;
    api.THSAutograd_SavedVariable_unpack = f_saved_unpack;
    api.THSAutograd_SavedVariable_reset_data = f_saved_reset_data;
    api.THSAutograd_grad = f_grad;
    api.THSAutograd_backward = f_backward;
    api.get_current_graph_task_keep_graph = f_keep_graph;
    api.caching_set_cached_tensors_enabled = f_set_cached_tensors_enabled;
    api.caching_add_cached_tensor = f_add_cached_tensor;
    api.caching_remove_cached_tensor = f_remove_cached_tensor;
    return api;
}

void set_error(const char* message) {
    catch_begin();
    t_err = strdup(message);
    std::lock_guard<std::recursive_mutex> lock(w().mu);
    ++w().errors_set;
}

bool error_pending() { return t_err != nullptr; }

ca_tensor make(int value) {
    lock_t lock(w().mu);
    auto* t = new impl();
    t->value = value;
    ++w().live_impls;
    return new_handle(t);
}

ca_tensor share(ca_tensor h) {
    lock_t lock(w().mu);
    handle* hh = live_handle(h, "share");
    return hh == nullptr ? nullptr : new_handle(hh->t);
}

int value_of(ca_tensor h) {
    if (h == nullptr) return -1;
    lock_t lock(w().mu);
    auto* hh = static_cast<handle*>(h);
    if (w().live.count(hh) == 0) return -2;
    return hh->t->value;
}

bool is_live(ca_tensor h) {
    lock_t lock(w().mu);
    return h != nullptr && w().live.count(static_cast<handle*>(h)) != 0;
}

node* grad_fn_of(ca_tensor h) {
    lock_t lock(w().mu);
    auto* hh = static_cast<handle*>(h);
    if (h == nullptr || w().live.count(hh) == 0) return nullptr;
    return hh->t->grad_fn;
}

int64_t live_handles() {
    lock_t lock(w().mu);
    return static_cast<int64_t>(w().live.size());
}

void dispose(ca_tensor h) {
    node* drop = nullptr;
    {
        lock_t lock(w().mu);
        auto* hh = static_cast<handle*>(h);
        if (w().live.erase(hh) == 0) {
            misuse("THSTensor_dispose: double dispose or unknown handle");
            return;
        }
        ++w().handles_disposed;
        hh->magic = 0;
        impl* t = hh->t;
        // The shim takes its handle out of the registry before disposing it (Note [stealable gradients]);
        // otherwise libtorch would discount a reference that someone else holds.
        if (w().registry.count(t) != 0) misuse("THSTensor_dispose: the tensor is still in the cached-tensor registry");
        hh->t = nullptr;
        // Not freed: were its address reused by a later handle, a stale pointer would look alive again.
        // (Dead handles are small and the tests are short.)
        graveyard().push_back(hh);
        drop = unref_impl(t);
    }
    if (drop != nullptr) drop_strong(drop);
}

bool registered(ca_tensor h) {
    lock_t lock(w().mu);
    auto* hh = static_cast<handle*>(h);
    return w().live.count(hh) != 0 && w().registry.count(hh->t) != 0;
}

bool stealable(ca_tensor h) {
    lock_t lock(w().mu);
    auto* hh = static_cast<handle*>(h);
    if (w().live.count(hh) == 0) return false;
    // The engine's own reference (the copy it took out of apply's array) is the one AccumulateGrad expects.
    const int refs = hh->t->refs + 1 - (w().registry.count(hh->t) != 0 ? 1 : 0);
    return refs <= 1;
}

void dispose_all(std::vector<ca_tensor>& hs) {
    for (auto& h : hs) {
        if (h != nullptr) dispose(h);
        h = nullptr;
    }
}

node* node_of(ca_ts_node_ptr p) {
    lock_t lock(w().mu);
    auto* wh = static_cast<weak_h*>(p.weak_ptr);
    if (wh == nullptr || live_weak().count(wh) == 0) return nullptr;
    return wh->n;
}

node* last_node() {
    lock_t lock(w().mu);
    return w().nodes.empty() ? nullptr : w().nodes.back();
}

int node_count() {
    lock_t lock(w().mu);
    return static_cast<int>(w().nodes.size());
}

outcome run_node(node* n, const std::vector<int>& grad_values) { return run_impl(n, grad_values, false); }
outcome run_node_rethrow(node* n, const std::vector<int>& grad_values) { return run_impl(n, grad_values, true); }

}  // namespace fake
