// SPDX-License-Identifier: MIT
#include "support.h"

#include <cstdlib>
#include <new>
#include <stdexcept>

namespace {
thread_local int t_failing_allocations = 0;

void* allocate(std::size_t size) {
    if (t_failing_allocations != 0) {
        if (t_failing_allocations > 0) --t_failing_allocations;
        throw std::bad_alloc();
    }
    if (void* p = std::malloc(size != 0 ? size : 1)) return p;
    throw std::bad_alloc();
}

int g_fake_engine;
void* fake_default_engine() { return &g_fake_engine; }
void fake_queue_callback(void* engine, void* callback) {
    if (engine != &g_fake_engine) throw std::runtime_error("wrong engine");
    support::queued_callbacks().push_back(std::move(*static_cast<std::function<void()>*>(callback)));
}
}  // namespace

// The replaceable global allocation functions (see fail_allocations).
void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace support {

void fail_allocations(int count) { t_failing_allocations = count; }

std::vector<std::function<void()>>& queued_callbacks() {
    static auto* queue = new std::vector<std::function<void()>>();
    return *queue;
}

void use_final_callbacks() {
    table().Engine_get_default_engine = fake_default_engine;
    table().Engine_queue_callback = fake_queue_callback;
}

managed_side& managed() {
    static auto* instance = new managed_side();
    return *instance;
}

int32_t backward_cb(intptr_t state, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved,
                    ca_tensor* results, uint8_t* owned, int32_t n_results) {
    backward_call call;
    call.state = state;
    for (int32_t i = 0; i < n_grads; ++i) call.grads.push_back(fake::value_of(grads[i]));
    for (int32_t i = 0; i < n_saved; ++i) {
        call.saved.push_back(fake::value_of(saved[i]));
        call.saved_grad_fn.push_back(fake::grad_fn_of(saved[i]));
    }
    call.n_results = n_results;
    call.thread = std::this_thread::get_id();
    backward_fn behaviour;
    {
        std::lock_guard<std::mutex> lock(managed().mu);
        managed().calls.push_back(call);
        behaviour = managed().behaviour;
    }
    if (behaviour) return behaviour(state, grads, n_grads, saved, n_saved, results, owned, n_results);
    return default_backward(state, grads, n_grads, saved, n_saved, results, owned, n_results);
}

void release_cb(intptr_t state) {
    std::lock_guard<std::mutex> lock(managed().mu);
    managed().released.push_back(state);
    managed().release_threads.push_back(std::this_thread::get_id());
}

void dispose_inputs(ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved) {
    for (int32_t i = 0; i < n_grads; ++i)
        if (grads[i] != nullptr) fake::dispose(grads[i]);
    for (int32_t i = 0; i < n_saved; ++i)
        if (saved[i] != nullptr) fake::dispose(saved[i]);
}

int32_t default_backward(intptr_t, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved,
                         ca_tensor* results, uint8_t* owned, int32_t n_results) {
    dispose_inputs(grads, n_grads, saved, n_saved);
    for (int32_t i = 0; i < n_results; ++i) {
        results[i] = fake::make(100 + i);
        owned[i] = 1;
    }
    return CA_OK;
}

ca_torch_api& table() {
    static auto* api = new ca_torch_api(fake::table());
    return *api;
}

void init() {
    REQUIRE_EQ(ca_init(&table(), backward_cb, release_cb), CA_OK);
    check_layout();
}

void check_layout() {
    // As the managed side does at start-up, on handles laid out as the fake's (Note [same tensor]); built here
    // rather than with fake::make so that the fake's counters see nothing.
    fake::impl tensor, another;
    fake::handle a{&tensor, 0}, same{&tensor, 0}, other{&another, 0};
    REQUIRE_EQ(ca_check_tensor_layout(&a, &same, &other), CA_OK);
}

applied apply(const char* name, intptr_t state, const std::vector<ca_tensor>& inputs, bool executable,
              const std::vector<ca_tensor>& outputs, const std::vector<ca_tensor>& non_diff,
              const std::vector<ca_tensor>& dirty, const std::vector<ca_tensor>& to_save) {
    applied r;
    r.wrapped.assign(outputs.size(), nullptr);
    int32_t created = -1;
    r.status = ca_apply(name, state, inputs.data(), static_cast<int32_t>(inputs.size()), executable ? 1 : 0,
                        outputs.data(), static_cast<int32_t>(outputs.size()), non_diff.data(),
                        static_cast<int32_t>(non_diff.size()), dirty.data(), static_cast<int32_t>(dirty.size()),
                        to_save.data(), static_cast<int32_t>(to_save.size()), r.wrapped.data(), &created);
    r.created = created;
    if (r.status != CA_OK) r.error = ca_last_error();
    return r;
}

ca_stats stats() {
    ca_stats s{};
    ca_get_stats(&s);
    return s;
}

std::vector<intptr_t> released() {
    std::lock_guard<std::mutex> lock(managed().mu);
    return managed().released;
}

std::vector<backward_call> calls() {
    std::lock_guard<std::mutex> lock(managed().mu);
    return managed().calls;
}

void check_no_misuse() {
    std::lock_guard<std::recursive_mutex> lock(fake::w().mu);
    for (const auto& m : fake::w().misuse) CA_FAIL_(false, "fake libtorch misuse: " + m);
    fake::w().misuse.clear();
}

void check_clean() {
    check_no_misuse();
    CHECK_EQ(fake::live_handles(), 0);
    CHECK_EQ(fake::w().live_impls, 0);
    CHECK_EQ(fake::w().live_saved, 0);
    for (fake::node* n : fake::w().nodes) {
        CHECK(n->destroyed);
        CHECK_EQ(n->on_delete_calls, 1);
        CHECK_EQ(n->shared_handles, 0);
        CHECK_EQ(n->weak_handles, 0);
    }
    const ca_stats s = stats();
    CHECK_EQ(s.live_nodes, 0);
    CHECK_EQ(s.live_saved, 0);
    CHECK(!fake::error_pending());
}

}  // namespace support
