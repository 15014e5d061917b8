// SPDX-License-Identifier: MIT
// Graph nodes: the per-node record, its libffi closures, the node's apply and release, and ca_apply.
#include "node.h"

#include "engine_callback.h"

#include <ffi.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace custom_autograd {

namespace {

// libffi descriptions of LibTorchSharp's two callback signatures:
//   TensorArray apply(Tensor* grads, int count)   and   void on_delete(void)
struct ffi_signatures {
    ffi_type* tensor_array_elements[3] = {&ffi_type_pointer, &ffi_type_sint64, nullptr};
    ffi_type tensor_array{};
    ffi_type* apply_args[2] = {&ffi_type_pointer, &ffi_type_sint};
    ffi_cif apply_cif{};
    ffi_cif release_cif{};
    bool ok = false;

    ffi_signatures() {
        tensor_array.size = 0;
        tensor_array.alignment = 0;
        tensor_array.type = FFI_TYPE_STRUCT;
        tensor_array.elements = tensor_array_elements;
        ok = ffi_prep_cif(&apply_cif, FFI_DEFAULT_ABI, 2, &tensor_array, apply_args) == FFI_OK &&
             ffi_prep_cif(&release_cif, FFI_DEFAULT_ABI, 0, &ffi_type_void, nullptr) == FFI_OK;
    }
};

ffi_signatures& signatures() {
    static ffi_signatures* s = new ffi_signatures();  // leaked: closures may run during exit
    return *s;
}

// The thread-local objects of this file are declared in this order on purpose. A translation unit's thread-local
// objects are constructed together, in declaration order, on first use of any (GCC and Clang), and destroyed in
// reverse. Destroying t_retired disposes gradient handles, which can drop the last reference to a graph
// (create_graph) and so run node releases, which use t_pending and t_held: those must be destroyed after it.

void recycle_record(node_record* rec) noexcept;

// The record this thread's last release handed back (Note [node record pool]).
struct held_record {
    node_record* record = nullptr;
    ~held_record();
};
thread_local bool t_held_gone = false;  // trivially destructible: still readable once t_held is destroyed
thread_local held_record t_held;

// Saved variables waiting for the outermost release on this thread (Note [iterative teardown]).
struct pending_saved {
    std::vector<ca_ts_saved_variable> queue;
    bool draining = false;
};
thread_local pending_saved t_pending;

// Note [retired gradient handles]
// LibTorchSharp's node takes the tensors out of the array our apply returns *after* apply has returned, so the handles
// in it must outlive the call. Handles whose ownership the managed side passed to us are therefore released later: at
// the next apply, ca_apply, ca_grad, ca_backward or ca_flush_thread on the same thread (by then libtorch has long taken
// them), which costs nothing per pass and frees a gradient as soon as the engine moves on, so its memory is reused by
// the next node as with libtorch's own nodes (held until the end of the pass, the weight gradients of an MLP made the
// heap grow and shrink by their size at every step: thousands of page faults per step). The last node of a pass on a
// thread has no next apply, so large (>= 1 MiB), non-CPU or graph-carrying (create_graph) gradients are also given to a
// final callback queued on the running backward pass (libtorch runs those after every node has run, and destroys them
// unrun if the pass fails, which releases the handles too): whichever of the two comes first releases them
// (handle_batch), so no gradient-sized block outlives the pass, even on a device thread. Without the engine's callback
// API, or with the route compiled out (Note [std::function across the ABI]), the per-thread route alone. The returned
// array itself lives here, per thread, until the next apply.
//
// Note [stealable gradients]
// While the shim holds such a handle, the gradient's use_count() is one above what libtorch's AccumulateGrad
// accepts for taking the tensor as the leaf's .grad (`use_count() <= 1 + post hooks`, accumulate_grad.h), so
// without more it would copy every gradient a Backward returns for a leaf whose .grad is empty. libtorch has a
// registry for exactly this situation, made for tensors that a cache keeps alive (CUDA graphs): a tensor in
// at::caching's registry counts one reference fewer wherever libtorch decides whether it may reuse a tensor
// (AccumulateGrad's steal, InputBuffer's in-place accumulation: at::caching::adjusted_use_count). So every owned
// result is added to the registry (kOwnedRegistered) before apply returns, and removed again right before the
// shim disposes its handle. The one reference discounted is then always the shim's own, which no user code can
// reach: a tensor is in the registry only while the handle of whoever added it last is alive (every route that
// disposes such a handle removes the entry first, and removing drops the entry whoever else added it, which
// only makes libtorch more careful). The registry holds a weak reference, so its key cannot be reused by
// another tensor while it is there. Borrowed results are never added: their owner can still see them.
// CUSTOMAUTOGRAD_STEAL_GRADIENTS=0 in the environment turns this off (ca_init).
constexpr uint8_t kBorrowed = 0;
constexpr uint8_t kOwned = 1;
constexpr uint8_t kOwnedRegistered = 2;

// Releases an owned handle: out of the cached-tensor registry first (Note [stealable gradients]), then disposed.
void release_owned(ca_tensor h, uint8_t how) noexcept {
    auto& G = g();
    if (how == kOwnedRegistered) {
        try {
            G.torch.caching_remove_cached_tensor(h);
        } catch (...) {
            // Only fails if the registry was switched off, and then it discounts nothing.
        }
    }
    G.torch.THSTensor_dispose(h);
}

// Adds the owned results to the registry (Note [stealable gradients]).
void register_owned(ca_tensor* results, uint8_t* owned, size_t n) noexcept {
    auto& G = g();
    if (!G.stealable_gradients) return;
    for (size_t i = 0; i < n; ++i) {
        if (owned[i] != kOwned || results[i] == nullptr) continue;
        try {
            G.torch.caching_add_cached_tensor(results[i]);
            owned[i] = kOwnedRegistered;
        } catch (...) {
            // Out of memory (or the registry switched off): this gradient is copied, as before.
        }
    }
}

// Owned gradient handles released by whichever comes first (Note [retired gradient handles]): the thread's next
// apply, or the final callback queued on the backward pass (also when libtorch destroys it unrun). The two may
// run on different threads (the final callbacks run on the thread that called backward), hence the flag.
struct handle_batch {
    std::vector<ca_tensor> handles;
    std::vector<uint8_t> owned;  // kOwned or kOwnedRegistered, per handle
    std::atomic<bool> released{false};

    void release() noexcept {
        if (released.exchange(true, std::memory_order_acq_rel)) return;
        auto& G = g();
        if (!G.shutting_down.load(std::memory_order_relaxed))
            for (size_t i = 0; i < handles.size(); ++i) release_owned(handles[i], owned[i]);
    }

    ~handle_batch() { release(); }
};

struct retired_handles {
    std::vector<ca_tensor> handles;  // the array returned to LibTorchSharp
    std::vector<uint8_t> owned;      // per handle; kBorrowed for those that `batch` releases
    std::shared_ptr<handle_batch> batch;

    void flush() noexcept {
        auto& G = g();
        if (batch) {
            batch->release();
            batch.reset();
        }
        if (!G.shutting_down.load(std::memory_order_relaxed)) {
            for (size_t i = 0; i < handles.size(); ++i)
                if (owned[i] != kBorrowed && handles[i] != nullptr) release_owned(handles[i], owned[i]);
        }
        handles.clear();
        owned.clear();
    }

    ~retired_handles() { flush(); }
};

thread_local retired_handles t_retired;

#if CA_ENGINE_CALLBACK_ROUTE
// Queues the release of the owned handles in `results` on the current backward pass as well; on success the
// flags of those handles are cleared and the batch that now owns them is returned (for the per-thread list).
constexpr int64_t kQueueReleaseBytes = int64_t{1} << 20;

// Whether any owned result is worth releasing at the end of the pass rather than at the thread's next call.
bool worth_queueing(const ca_tensor* results, const uint8_t* owned, size_t n) noexcept {
    auto& T = g().torch;
    if (T.THSTensor_numel == nullptr || T.THSTensor_element_size == nullptr || T.THSTensor_device_type == nullptr ||
        T.THSTensor_requires_grad == nullptr)
        return true;
    for (size_t i = 0; i < n; ++i) {
        if (owned[i] == 0 || results[i] == nullptr) continue;
        if (T.THSTensor_device_type(results[i]) != 0 /* CPU */) return true;
        if (T.THSTensor_requires_grad(results[i])) return true;  // holds a graph (create_graph): never keep it
        if (T.THSTensor_numel(results[i]) * T.THSTensor_element_size(results[i]) >= kQueueReleaseBytes) return true;
    }
    return false;
}

std::shared_ptr<handle_batch> queue_release(ca_tensor* results, uint8_t* owned, size_t n) noexcept {
    auto& G = g();
    if (G.torch.Engine_queue_callback == nullptr || G.torch.Engine_get_default_engine == nullptr) return nullptr;
    if (!worth_queueing(results, owned, n)) return nullptr;
    std::shared_ptr<handle_batch> batch;
    try {
        batch = std::make_shared<handle_batch>();
        for (size_t i = 0; i < n; ++i) {
            if (owned[i] != kBorrowed && results[i] != nullptr) {
                batch->handles.push_back(results[i]);
                batch->owned.push_back(owned[i]);
            }
        }
        if (batch->handles.empty()) return nullptr;
        // The callback's last copy releases the batch too: libtorch destroys final callbacks unrun when a pass fails.
        // Armed only once queued: if queueing throws, the handles stay with the per-thread list.
        struct release_guard {
            std::shared_ptr<handle_batch> batch;
            bool armed = false;
            ~release_guard() {
                if (armed) batch->release();
            }
        };
        auto guard = std::make_shared<release_guard>();
        guard->batch = batch;
        std::function<void()> callback = [guard]() { guard->batch->release(); };
        void* engine = G.torch.Engine_get_default_engine();
        // Note [std::function across the ABI]: the by-value std::function is passed as a pointer to a caller-owned
        // temporary, which the caller destroys after the call (libtorch moves from it); its layout is checked at
        // compile time in engine_callback.h.
        G.torch.Engine_queue_callback(engine, &callback);
        guard->armed = true;  // the pass's callbacks run (or are destroyed) only after this node has returned
        for (size_t i = 0; i < n; ++i) owned[i] = kBorrowed;
        return batch;
    } catch (...) {
        // Not inside a backward pass, or out of memory: the handles stay with the per-thread list, so the
        // batch must forget them before it is destroyed (the callback copy is already gone).
        if (batch) {
            batch->handles.clear();
            batch->owned.clear();
        }
        return nullptr;
    }
}
#else
// Compiled out (Note [std::function across the ABI]): the per-thread list releases every owned result.
std::shared_ptr<handle_batch> queue_release(ca_tensor*, uint8_t*, size_t) noexcept { return nullptr; }
#endif

// A zero-initialised array that lives on the stack for the usual small counts (no allocation per backward).
template <typename T, size_t N>
class small_array {
  public:
    explicit small_array(size_t n) : data_(n <= N ? inline_ : (heap_ = std::make_unique<T[]>(n)).get()) {
        std::fill(data_, data_ + n, T{});
    }
    T* data() { return data_; }
    T& operator[](size_t i) { return data_[i]; }

  private:
    T inline_[N];
    std::unique_ptr<T[]> heap_;
    T* data_;
};

// Note [node record pool]
// A record owns two libffi closures whose user data is the record itself, prepared once: records of dead nodes
// are reused (no allocation and no closure preparation on the hot path), and only the excess is ever freed.
// A closure must not be freed while a call through it may still be in progress. A record is handed back from
// inside its own release closure (LibTorchSharp calls the node's on-delete through it), and the hand-back is
// not the end of that call: the handler still returns through libffi's closure code into LibTorchSharp, and
// nothing tells another thread when that has happened. Hence:
//  - the release handler's last action hands its record to its own thread's slot (t_held), not to the pool;
//  - the record leaves the slot only when the same thread hands back another record, reuses it in ca_apply,
//    or exits. Each happens in a later call on that thread, never inside the first handler (the hand-back was
//    its last action), so by then the first call has returned completely, libffi's part included;
//  - only then does the record reach the shared pool, where any thread may reuse it and the oldest records
//    beyond kMaxPooled are freed.
// So a freed closure is never executing, under any scheduling, and nothing is assumed about how libffi's
// closure code returns. A thread keeps at most one record back. A record handed back on a thread whose
// thread-local objects are already destroyed (nothing releases nodes then) is leaked rather than risked.
constexpr size_t kMaxPooled = 4096;
std::mutex g_pool_mutex;
std::deque<node_record*>* g_pool = new std::deque<node_record*>();  // leaked on purpose (exit)

#if defined(CA_TEST_HOOKS)
// Test builds only (native/tests; see ca_test_fail_closure_allocations below): the number of closure
// allocations still to fail as libffi's do when it cannot map closure memory.
std::atomic<int32_t> g_failing_closure_allocations{0};
#endif

void* allocate_closure(void** code) noexcept {
#if defined(CA_TEST_HOOKS)
    int32_t failing = g_failing_closure_allocations.load();
    while (failing > 0 && !g_failing_closure_allocations.compare_exchange_weak(failing, failing - 1)) {
    }
    if (failing > 0) return nullptr;
#endif
    return ffi_closure_alloc(sizeof(ffi_closure), code);
}

void apply_handler(ffi_cif*, void* ret, void** args, void* user);
void release_handler(ffi_cif*, void* ret, void** args, void* user);

void free_record(node_record* rec) noexcept {
    if (rec->apply_closure != nullptr) {
        ffi_closure_free(rec->apply_closure);
        g().live_closures.fetch_sub(1, std::memory_order_relaxed);
    }
    if (rec->release_closure != nullptr) {
        ffi_closure_free(rec->release_closure);
        g().live_closures.fetch_sub(1, std::memory_order_relaxed);
    }
    delete rec;
}

node_record* new_record() {
    auto& sig = signatures();
    if (!sig.ok) throw internal_error("libffi could not describe the node callbacks (ffi_prep_cif failed)");
    auto* rec = new node_record();
    rec->apply_closure = allocate_closure(&rec->apply_code);
    if (rec->apply_closure != nullptr) g().live_closures.fetch_add(1, std::memory_order_relaxed);
    rec->release_closure = allocate_closure(&rec->release_code);
    if (rec->release_closure != nullptr) g().live_closures.fetch_add(1, std::memory_order_relaxed);
    if (rec->apply_closure == nullptr || rec->release_closure == nullptr ||
        ffi_prep_closure_loc(static_cast<ffi_closure*>(rec->apply_closure), &sig.apply_cif, apply_handler, rec,
                             rec->apply_code) != FFI_OK ||
        ffi_prep_closure_loc(static_cast<ffi_closure*>(rec->release_closure), &sig.release_cif, release_handler, rec,
                             rec->release_code) != FFI_OK) {
        free_record(rec);  // never given to libtorch: no call through its closures can be in progress
        throw internal_error(
            "libffi could not allocate a closure for a graph node (ffi_closure_alloc or ffi_prep_closure_loc failed)");
    }
    return rec;
}

node_record* acquire_record() {
    // This thread's own held-back record first: its release call has returned (Note [node record pool]).
    if (!t_held_gone && t_held.record != nullptr) {
        node_record* rec = t_held.record;
        t_held.record = nullptr;
        g().pooled_nodes.fetch_sub(1, std::memory_order_relaxed);
        return rec;
    }
    {
        std::lock_guard<std::mutex> lock(g_pool_mutex);
        if (!g_pool->empty()) {
            node_record* rec = g_pool->back();
            g_pool->pop_back();
            g().pooled_nodes.fetch_sub(1, std::memory_order_relaxed);
            return rec;
        }
    }
    return new_record();
}

void clear_record(node_record* rec) noexcept {
    rec->name = nullptr;
    rec->managed = 0;
    rec->node = ca_ts_node_ptr{nullptr, nullptr};
    rec->saved.clear();
    rec->n_edges = 0;
}

// Puts a record no call is executing into the shared pool, freeing the oldest beyond kMaxPooled.
void recycle_record(node_record* rec) noexcept {
    clear_record(rec);
    node_record* to_free = nullptr;
    try {
        std::lock_guard<std::mutex> lock(g_pool_mutex);
        g_pool->push_back(rec);
        if (g_pool->size() > kMaxPooled) {
            to_free = g_pool->front();
            g_pool->pop_front();
        } else {
            g().pooled_nodes.fetch_add(1, std::memory_order_relaxed);
        }
    } catch (...) {
        to_free = rec;  // out of memory growing the pool: no call is executing it, so it can go
    }
    if (to_free != nullptr) free_record(to_free);
}

// The last action of a release handler: see Note [node record pool].
void hand_back_from_release(node_record* rec) noexcept {
    clear_record(rec);
    if (t_held_gone) return;  // leaked on purpose (Note [node record pool])
    node_record* previous = t_held.record;
    t_held.record = rec;
    if (previous != nullptr)
        recycle_record(previous);  // its release call returned before this one began
    else
        g().pooled_nodes.fetch_add(1, std::memory_order_relaxed);
}

held_record::~held_record() {
    t_held_gone = true;
    if (record != nullptr) {
        g().pooled_nodes.fetch_sub(1, std::memory_order_relaxed);
        recycle_record(record);  // the thread is exiting: every call it made has returned
        record = nullptr;
    }
}

void dispose_all(ca_tensor* handles, size_t count) noexcept {
    auto& G = g();
    for (size_t i = 0; i < count; ++i)
        if (handles[i] != nullptr) G.torch.THSTensor_dispose(handles[i]);
}

std::string with_name(const node_record* rec, const std::string& message) {
    std::string text = rec->name != nullptr ? rec->name : "CustomAutograd function";
    text += ": ";
    text += message;
    return text;
}

// The node's apply, called by libtorch's engine. Note [exceptions into the engine]: a failure is
// thrown as std::runtime_error, which the engine carries to the caller of backward()/grad(), where
// LibTorchSharp (or ca_grad) turns it into an error message; nothing else may escape.
void apply_impl(void* ret, void** args, void* user) {
    auto* rec = static_cast<node_record*>(user);
    ca_tensor* grads = *static_cast<ca_tensor**>(args[0]);
    const int n_grads = *static_cast<int*>(args[1]);
    auto& G = g();
    if (G.shutting_down.load(std::memory_order_relaxed)) {
        throw std::runtime_error(with_name(rec, "the process is shutting down; backward was not run"));
    }

    std::lock_guard<std::recursive_mutex> lock(rec->mutex);
    if (rec->managed == 0) {
        // The application that made this node failed after connecting it (e.g. a dirty input now points to
        // it); there is no Backward to run.
        dispose_all(grads, static_cast<size_t>(n_grads));
        G.backward_failures.fetch_add(1, std::memory_order_relaxed);
        throw std::runtime_error(
            with_name(rec, "its application failed after the graph node was connected, so it cannot run backward"));
    }
    G.backward_calls.fetch_add(1, std::memory_order_relaxed);

    const size_t n_saved = rec->saved.size();
    small_array<ca_tensor, 8> saved(n_saved);
    for (size_t i = 0; i < n_saved; ++i) {
        if (rec->saved[i] == nullptr) continue;
        saved[i] = G.torch.THSAutograd_SavedVariable_unpack(rec->saved[i], rec->node);
        const char* err = G.torch.THSTorch_get_and_reset_last_err();
        if (err != nullptr) {
            std::string message = with_name(rec, err);
            std::free(const_cast<char*>(err));
            dispose_all(saved.data(), i);
            dispose_all(grads, static_cast<size_t>(n_grads));
            G.backward_failures.fetch_add(1, std::memory_order_relaxed);
            throw std::runtime_error(message);
        }
    }

    small_array<ca_tensor, 8> results(rec->n_edges);
    small_array<uint8_t, 8> owned(rec->n_edges);
    // From this call on, the managed side owns `grads` and `saved` (see ca_backward_callback).
    const int32_t status = G.backward(rec->managed, grads, n_grads, saved.data(), static_cast<int32_t>(n_saved),
                                      results.data(), owned.data(), static_cast<int32_t>(rec->n_edges));
    if (status != CA_OK) {
        // Results already handed over before the failure are ours to dispose.
        for (size_t i = 0; i < rec->n_edges; ++i)
            if (owned[i] != 0 && results[i] != nullptr) G.torch.THSTensor_dispose(results[i]);
        G.backward_failures.fetch_add(1, std::memory_order_relaxed);
        std::string message = take_callback_error();
        if (message.empty()) message = with_name(rec, "backward failed");
        throw std::runtime_error(message);
    }

    // As libtorch's engine does for its own nodes: without retain_graph, saved tensors are freed as
    // soon as the node has run, and a second backward through it fails in unpack.
    const bool keep_graph =
        G.torch.get_current_graph_task_keep_graph == nullptr || G.torch.get_current_graph_task_keep_graph();
    if (!keep_graph) {
        for (auto* sv : rec->saved)
            if (sv != nullptr) G.torch.THSAutograd_SavedVariable_reset_data(sv);
        discard_torch_error();
    }

    // The previous apply's handles go first: one of them may be the very tensor registered again below
    // (a gradient passed through), and releasing it would take it out of the registry.
    t_retired.flush();
    register_owned(results.data(), owned.data(), rec->n_edges);
    t_retired.batch = queue_release(results.data(), owned.data(), rec->n_edges);
    t_retired.handles.assign(results.data(), results.data() + rec->n_edges);  // keeps its capacity: no allocation
    t_retired.owned.assign(owned.data(), owned.data() + rec->n_edges);
    auto* out = static_cast<ca_ts_tensor_array*>(ret);
    out->array = t_retired.handles.data();
    out->size = static_cast<int64_t>(t_retired.handles.size());
}

void apply_handler(ffi_cif*, void* ret, void** args, void* user) {
    // Only std::runtime_error (and subclasses) is understood by LibTorchSharp's error capture.
    try {
        apply_impl(ret, args, user);
    } catch (const std::runtime_error&) {
        throw;
    } catch (const std::exception& e) {
        throw std::runtime_error(with_name(static_cast<node_record*>(user), e.what()));
    } catch (...) {
        throw std::runtime_error(with_name(static_cast<node_record*>(user), "unknown native error in backward"));
    }
}

// Note [iterative teardown]
// Releasing a node's saved variables can destroy the node before it: a saved input holds its grad_fn strongly,
// and once the saved variable is its last owner, libtorch deletes that node inside our dispose call, which runs
// that node's release, which disposes its saved input, and so on. libtorch tears its own graphs down iteratively
// (deleteNode in function.cpp gathers next edges onto a stack), but LibTorchSharp calls our on-delete before
// that, and the saved variables are ours. So a release never disposes saved variables while another release is
// running on the same thread: it queues them on a per-thread list, and only the outermost release drains that
// list, one saved variable at a time (t_pending). The stack depth stays constant whatever the length of the
// graph. The outermost record is handed back only after the drain (Note [node record pool]).

void dispose_saved(ca_ts_saved_variable sv) noexcept {
    auto& G = g();
    G.torch.THSAutograd_SavedVariable_dispose(sv);
    G.live_saved.fetch_sub(1, std::memory_order_relaxed);
}

// Detaches the record from its node and managed state; its saved variables go to the per-thread queue (or, if
// the queue cannot grow, are disposed right here: deeper recursion is better than a leak).
void retire_record(node_record* rec) {
    auto& G = g();
    for (auto* sv : rec->saved) {
        if (sv == nullptr) continue;
        try {
            t_pending.queue.push_back(sv);
        } catch (...) {
            dispose_saved(sv);
        }
    }
    rec->saved.clear();
    if (rec->node.weak_ptr != nullptr) G.torch.THSAutograd_CSharpNode_disposeWeakPtr(rec->node);
    discard_torch_error();
    const intptr_t managed = rec->managed;
    rec->managed = 0;
    if (managed != 0) G.release(managed);
}

// The node's on-delete, called by LibTorchSharp right before libtorch deletes the node, on whatever
// thread dropped the last reference (a finalizer thread included). It must never throw.
void release_handler(ffi_cif*, void*, void**, void* user) {
    auto* rec = static_cast<node_record*>(user);
    auto& G = g();
    if (G.shutting_down.load(std::memory_order_relaxed)) return;  // leak on purpose: the runtime is going away
    try {
        retire_record(rec);
    } catch (...) {
        // Nothing may escape a deleter; the record is still handed back below.
    }
    G.live_nodes.fetch_sub(1, std::memory_order_relaxed);
    if (t_pending.draining) {
        // Nested inside an outer release's dispose: the outer loop disposes what we queued.
        hand_back_from_release(rec);
        return;
    }
    t_pending.draining = true;
    while (!t_pending.queue.empty()) {
        ca_ts_saved_variable sv = t_pending.queue.back();
        t_pending.queue.pop_back();
        dispose_saved(sv);  // may run nested releases, which only queue
    }
    discard_torch_error();
    t_pending.draining = false;
    hand_back_from_release(rec);
}

ca_tensor* result_allocator(size_t length) { return allocate_result_buffer(length); }

// Note [same tensor]: an at::Tensor is a single intrusive pointer to its TensorImpl (TensorBase::impl_), so
// two handles refer to the very same tensor exactly when their first words are equal. When wrapping left an
// output as the same tensor (connected in place), the fresh handle is dropped and the caller keeps its own
// (see ca_apply's `wrapped`), which saves a handle and a managed object per output. The layout is libtorch's,
// not ours: ca_check_tensor_layout checks it on real tensors at start-up, and until a check has passed no
// output is dropped (every output then comes back as a fresh handle, which is always correct).
void* first_word(ca_tensor t) { return *static_cast<void* const*>(t); }

bool same_tensor(ca_tensor a, ca_tensor b) { return first_word(a) == first_word(b); }

void drop_unchanged_outputs(const ca_tensor* outputs, ca_tensor* wrapped, int32_t n_outputs) noexcept {
    auto& G = g();
    if (!G.tensor_layout_verified.load(std::memory_order_acquire)) return;
    for (int32_t i = 0; i < n_outputs; ++i) {
        if (wrapped[i] != nullptr && same_tensor(wrapped[i], outputs[i])) {
            G.torch.THSTensor_dispose(wrapped[i]);
            wrapped[i] = nullptr;
        }
    }
}

std::string hex(const void* p) {
    char text[32];
    std::snprintf(text, sizeof(text), "%p", p);
    return text;
}

}  // namespace

void flush_retired_handles() { t_retired.flush(); }

int32_t check_tensor_layout(ca_tensor a, ca_tensor same_as_a, ca_tensor other) {
    if (a == nullptr || same_as_a == nullptr || other == nullptr) {
        set_last_error("ca_check_tensor_layout: three tensor handles are required");
        return CA_ERR_INVALID_ARGUMENT;
    }
    if (a == same_as_a || a == other || same_as_a == other) {
        set_last_error(
            "ca_check_tensor_layout: the three handles must be distinct (two handles to one tensor, and a "
            "handle to another tensor)");
        return CA_ERR_INVALID_ARGUMENT;
    }
    const char* expected =
        "; the shim expects an at::Tensor to be one pointer to its TensorImpl (Note [same tensor], checked with "
        "libtorch 2.10 under TorchSharp 0.107), so the loaded libtorch is not one it was written for";
    if (first_word(a) != first_word(same_as_a)) {
        set_last_error("at::Tensor layout check failed: two handles to one tensor start with different words (" +
                       hex(first_word(a)) + " and " + hex(first_word(same_as_a)) + ")" + expected);
        return CA_ERR_ABI;
    }
    if (first_word(a) == first_word(other)) {
        set_last_error("at::Tensor layout check failed: two different tensors start with the same word (" +
                       hex(first_word(a)) + ")" + expected);
        return CA_ERR_ABI;
    }
    g().tensor_layout_verified.store(true, std::memory_order_release);
    return CA_OK;
}

int32_t apply(const char* name, intptr_t state, const ca_tensor* inputs, int32_t n_inputs, bool is_executable,
              const ca_tensor* outputs, int32_t n_outputs, const ca_tensor* non_diff, int32_t n_non_diff,
              const ca_tensor* dirty, int32_t n_dirty, const ca_tensor* to_save, int32_t n_save, ca_tensor* wrapped,
              int32_t* node_created) {
    auto& G = g();
    *node_created = 0;
    t_retired.flush();

    auto array = [](const ca_tensor* p, int32_t n) {
        return ca_ts_tensor_array{const_cast<ca_tensor*>(p), static_cast<int64_t>(n)};
    };
    // Errors from here carry libtorch's text only; the managed caller prefixes the function's name.
    const char* context = nullptr;

    if (!is_executable) {
        G.torch.THSAutograd_Function_wrapOutputs(array(inputs, n_inputs), array(non_diff, n_non_diff),
                                                 array(dirty, n_dirty), array(outputs, n_outputs),
                                                 ca_ts_node_ptr{nullptr, nullptr}, result_allocator);
        check_torch(context);
        const ca_tensor* res = result_buffer();
        for (int32_t i = 0; i < n_outputs; ++i) wrapped[i] = res[i];
        drop_unchanged_outputs(outputs, wrapped, n_outputs);
        return CA_OK;
    }

    node_record* rec = acquire_record();
    rec->name = name;
    rec->managed = 0;  // set only on success, so a failed apply never releases the caller's state
    rec->n_edges = static_cast<size_t>(n_inputs);
    rec->saved.clear();

    ca_ts_node_ptr node = G.torch.THSAutograd_CSharpNode_ctor(reinterpret_cast<ca_ts_apply_fn>(rec->apply_code),
                                                              reinterpret_cast<ca_ts_delete_fn>(rec->release_code));
    try {
        check_torch(context);
    } catch (...) {
        recycle_record(rec);  // never given to libtorch's engine: no call through it can be in progress
        throw;
    }
    rec->node = node;
    G.live_nodes.fetch_add(1, std::memory_order_relaxed);
    G.nodes_created.fetch_add(1, std::memory_order_relaxed);

    int32_t n_wrapped = 0;
    try {
        G.torch.THSAutograd_CSharpNode_setNextEdges(node, array(inputs, n_inputs), true);
        check_torch(context);
        G.torch.THSAutograd_CSharpNode_clearInputMetadata(node);
        check_torch(context);
        G.torch.THSAutograd_Function_wrapOutputs(array(inputs, n_inputs), array(non_diff, n_non_diff),
                                                 array(dirty, n_dirty), array(outputs, n_outputs), node,
                                                 result_allocator);
        check_torch(context);
        const ca_tensor* res = result_buffer();
        for (; n_wrapped < n_outputs; ++n_wrapped) wrapped[n_wrapped] = res[n_wrapped];

        // Saved after wrapping, so that saving an output is recognised as such (libtorch then keeps
        // only a weak reference to this node, avoiding an output -> node -> output cycle).
        rec->saved.reserve(static_cast<size_t>(n_save));
        for (int32_t i = 0; i < n_save; ++i) {
            if (to_save[i] == nullptr) {
                rec->saved.push_back(nullptr);
                continue;
            }
            ca_ts_saved_variable sv = G.torch.THSAutograd_SavedVariable_ctor(to_save[i], node, false);
            check_torch(context);
            rec->saved.push_back(sv);
            G.live_saved.fetch_add(1, std::memory_order_relaxed);
        }
    } catch (...) {
        dispose_all(wrapped, static_cast<size_t>(n_wrapped));
        for (int32_t i = 0; i < n_wrapped; ++i) wrapped[i] = nullptr;
        // rec->managed is 0: when the node dies (now, or when the raw outputs that point to it are
        // disposed) its release frees the saved variables and recycles the record only.
        G.torch.THSAutograd_CSharpNode_disposeSharedPtr(node);
        discard_torch_error();
        throw;
    }

    drop_unchanged_outputs(outputs, wrapped, n_outputs);
    rec->managed = state;
    *node_created = 1;
    // Drop the construction reference: from now on the outputs' grad_fn keep the node alive. If
    // no output refers to it (all non-differentiable), it is destroyed, and released, right here.
    rec->node.shared_ptr = nullptr;
    G.torch.THSAutograd_CSharpNode_disposeSharedPtr(node);
    discard_torch_error();
    return CA_OK;
}

}  // namespace custom_autograd

#if defined(CA_TEST_HOOKS)
// Exported by test builds of the shim only (never by the production build): makes the next `count` libffi
// closure allocations fail, to test CA_ERR_INTERNAL without exhausting memory.
extern "C" CA_EXPORT void ca_test_fail_closure_allocations(int32_t count) {
    custom_autograd::g_failing_closure_allocations.store(count);
}
#endif
