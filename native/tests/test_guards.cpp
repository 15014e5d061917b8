// SPDX-License-Identifier: MIT
// The guards of the shim's external assumptions (docs/architecture.md, "External assumptions"): the at::Tensor
// layout self-check, the status codes of the shim's own failures, the engine-callback route, the record pool.
// Built twice: against the normal shim, and against one built with CA_ENGINE_CALLBACK_ROUTE=0 (the
// configuration of a standard library other than libstdc++, or of Windows).
#include "support.h"

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>

#if !defined(CA_TEST_EXPECT_ENGINE_ROUTE)
#error "the build says whether the shim under test has the engine-callback route (CA_TEST_EXPECT_ENGINE_ROUTE)"
#endif

extern "C" void ca_test_fail_closure_allocations(int32_t count);  // test builds of the shim only

using namespace support;

namespace {

// Two layouts that break Note [same tensor], as a libtorch whose at::Tensor no longer starts with its
// TensorImpl pointer would: a word that differs per handle (say, a per-handle id), or a word that every tensor
// shares (say, a vtable pointer) in front of the TensorImpl pointer.
struct per_handle_word_first {
    const void* per_handle;
    fake::impl* t;
};
struct shared_word_first {
    const void* shared;
    fake::impl* t;
};

// A not-executable application of one output: with the layout verified, wrapOutputs hands the very same
// tensor back and the shim drops that fresh handle.
applied apply_passthrough(ca_tensor x, ca_tensor out) { return apply(ca_intern("Same"), 1, {x}, false, {out}); }

// The fallback while no layout check has passed: no output is taken for the caller's own tensor; each comes
// back as a fresh handle.
void check_outputs_come_back_as_fresh_handles() {
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(2);
    applied r = apply_passthrough(x, out);
    REQUIRE_EQ(r.status, CA_OK);
    REQUIRE(r.wrapped[0] != nullptr);
    CHECK(r.wrapped[0] != out);
    CHECK_EQ(fake::value_of(r.wrapped[0]), 2);
    fake::dispose_all(r.wrapped);
    fake::dispose(x);
    fake::dispose(out);
    check_clean();
}

}  // namespace

// ---- at::Tensor's first word (Note [same tensor]) --------------------------------------------------------

CA_TEST(layout_check_passes_on_the_fakes_layout_and_enables_dropping) {
    REQUIRE_EQ(ca_init(&table(), backward_cb, release_cb), CA_OK);
    ca_tensor a = fake::make(1);
    ca_tensor same = fake::share(a);
    ca_tensor other = fake::make(1);  // equal values, another tensor
    CHECK_EQ(ca_check_tensor_layout(a, same, other), CA_OK);

    applied r = apply_passthrough(a, other);
    REQUIRE_EQ(r.status, CA_OK);
    CHECK(r.wrapped[0] == nullptr);  // recognised as the caller's own tensor and dropped
    fake::dispose_all(r.wrapped);
    fake::dispose(a);
    fake::dispose(same);
    fake::dispose(other);
    check_clean();
}

CA_TEST(layout_check_trips_when_one_tensor_starts_with_different_words) {
    REQUIRE_EQ(ca_init(&table(), backward_cb, release_cb), CA_OK);
    fake::impl tensor, another;
    int id1 = 0, id2 = 0, id3 = 0;
    per_handle_word_first a{&id1, &tensor}, same{&id2, &tensor}, other{&id3, &another};
    CHECK_EQ(ca_check_tensor_layout(&a, &same, &other), CA_ERR_ABI);
    CHECK_CONTAINS(ca_last_error(),
                   "at::Tensor layout check failed: two handles to one tensor start with different words");
    CHECK_CONTAINS(ca_last_error(), "one pointer to its TensorImpl");
    check_outputs_come_back_as_fresh_handles();
}

CA_TEST(layout_check_trips_when_different_tensors_start_with_the_same_word) {
    REQUIRE_EQ(ca_init(&table(), backward_cb, release_cb), CA_OK);
    fake::impl tensor, another;
    static const int vtable = 0;
    shared_word_first a{&vtable, &tensor}, same{&vtable, &tensor}, other{&vtable, &another};
    CHECK_EQ(ca_check_tensor_layout(&a, &same, &other), CA_ERR_ABI);
    CHECK_CONTAINS(ca_last_error(), "at::Tensor layout check failed: two different tensors start with the same word");
    check_outputs_come_back_as_fresh_handles();
}

CA_TEST(layout_check_rejects_null_and_repeated_handles) {
    ca_tensor a = fake::make(1);
    ca_tensor same = fake::share(a);
    ca_tensor other = fake::make(2);
    CHECK_EQ(ca_check_tensor_layout(nullptr, same, other), CA_ERR_INVALID_ARGUMENT);
    CHECK_EQ(ca_check_tensor_layout(a, nullptr, other), CA_ERR_INVALID_ARGUMENT);
    CHECK_EQ(ca_check_tensor_layout(a, same, nullptr), CA_ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(ca_last_error(), "three tensor handles are required");
    CHECK_EQ(ca_check_tensor_layout(a, a, other), CA_ERR_INVALID_ARGUMENT);  // would prove nothing
    CHECK_EQ(ca_check_tensor_layout(a, same, a), CA_ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(ca_last_error(), "must be distinct");
    fake::dispose(a);
    fake::dispose(same);
    fake::dispose(other);
    check_clean();
}

CA_TEST(without_a_passed_layout_check_no_output_is_dropped) {
    REQUIRE_EQ(ca_init(&table(), backward_cb, release_cb), CA_OK);  // no check_layout()
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied r = apply(ca_intern("F"), 5, {x}, true, {out});
    REQUIRE_EQ(r.status, CA_OK);
    REQUIRE(r.wrapped[0] != nullptr);  // the same tensor, connected to the node, as a fresh handle
    CHECK(fake::grad_fn_of(r.wrapped[0]) == fake::last_node());
    CHECK(fake::grad_fn_of(out) == fake::last_node());
    fake::dispose_all(r.wrapped);
    fake::dispose(out);
    CHECK(released() == std::vector<intptr_t>{5});
    fake::dispose(x);
    check_clean();
}

CA_TEST(a_failing_layout_check_leaves_an_earlier_verdict) {
    init();  // a passing check
    fake::impl tensor, another;
    int id1 = 0, id2 = 0, id3 = 0;
    per_handle_word_first a{&id1, &tensor}, same{&id2, &tensor}, other{&id3, &another};
    CHECK_EQ(ca_check_tensor_layout(&a, &same, &other), CA_ERR_ABI);
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(2);
    applied r = apply_passthrough(x, out);
    REQUIRE_EQ(r.status, CA_OK);
    CHECK(r.wrapped[0] == nullptr);
    fake::dispose(x);
    fake::dispose(out);
    check_clean();
}

// ---- CA_ERR_INTERNAL: the shim's own failures ------------------------------------------------------------

namespace {
// ca_apply of one input and one output with nothing allocated around the call (see fail_allocations).
struct raw_apply {
    ca_tensor wrapped = nullptr;
    int32_t created = -1;
    int32_t status = -1;
    char error[128] = {};
};
void apply_failing_allocations(raw_apply& r, const char* name, ca_tensor x, ca_tensor out, int failing) {
    fail_allocations(failing);
    r.status = ca_apply(name, 9, &x, 1, 1, &out, 1, nullptr, 0, nullptr, 0, nullptr, 0, &r.wrapped, &r.created);
    fail_allocations(0);
    std::snprintf(r.error, sizeof(r.error), "%s", ca_last_error());
}
}  // namespace

CA_TEST(out_of_memory_in_apply_is_an_internal_error) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    const char* name = ca_intern("Oom");
    raw_apply r;
    apply_failing_allocations(r, name, x, out, 1);  // the shim's first allocation: closure signatures or a record
    CHECK_EQ(r.status, CA_ERR_INTERNAL);
    CHECK_STREQ(r.error, "ca_apply: out of memory");
    CHECK_EQ(r.created, 0);
    CHECK(r.wrapped == nullptr);
    CHECK_EQ(fake::node_count(), 0);
    CHECK_EQ(stats().live_closures, 0);

    applied ok = apply(ca_intern("Fine"), 10, {x}, true, {out});  // nothing was left half-done
    REQUIRE_EQ(ok.status, CA_OK);
    fake::dispose_all(ok.wrapped);
    fake::dispose(out);
    fake::dispose(x);
    CHECK(released() == std::vector<intptr_t>{10});  // never the failed call's state
    check_clean();
}

// Before CA_ERR_INTERNAL existed the guard built its message with a std::string inside its catch handler: out of
// memory there ended the process (the guard is noexcept).
CA_TEST(out_of_memory_is_reported_without_allocating) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    const char* name = ca_intern("Oom");
    raw_apply r;
    apply_failing_allocations(r, name, x, out, -1);  // every allocation fails, the error message's included
    CHECK_EQ(r.status, CA_ERR_INTERNAL);
    CHECK_STREQ(r.error, "ca_apply: out of memory");
    CHECK_EQ(r.created, 0);
    fake::dispose(out);
    fake::dispose(x);
    check_clean();
}

CA_TEST(out_of_memory_inside_libtorch_is_an_internal_error) {
    init();
    // THSAutograd_grad has no error guard: what libtorch throws reaches ca_grad's.
    fake::w().grad = [](ca_tensor*, int64_t, ca_tensor*, int64_t, ca_tensor*, int64_t, bool, bool, bool,
                        ca_ts_allocator_fn) { throw std::bad_alloc(); };
    ca_tensor out = fake::make(1);
    ca_tensor in = fake::make(2);
    ca_tensor result = nullptr;
    CHECK_EQ(ca_grad(&out, 1, &in, 1, nullptr, 0, 0, 0, 0, &result), CA_ERR_INTERNAL);
    CHECK_STREQ(ca_last_error(), "ca_grad: out of memory");
    // Any other exception is libtorch's own report.
    fake::w().grad = [](ca_tensor*, int64_t, ca_tensor*, int64_t, ca_tensor*, int64_t, bool, bool, bool,
                        ca_ts_allocator_fn) { throw std::runtime_error("One of the differentiated Tensors ..."); };
    CHECK_EQ(ca_grad(&out, 1, &in, 1, nullptr, 0, 0, 0, 0, &result), CA_ERR_TORCH);
    CHECK_STREQ(ca_last_error(), "One of the differentiated Tensors ...");
    fake::dispose(out);
    fake::dispose(in);
    check_clean();
}

CA_TEST(libffi_failure_in_apply_is_an_internal_error) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    for (int failing : {1, 2}) {  // the apply closure, then the release closure
        ca_test_fail_closure_allocations(failing);
        applied r = apply(ca_intern("NoClosure"), 9, {x}, true, {out});
        ca_test_fail_closure_allocations(0);
        CHECK_EQ(r.status, CA_ERR_INTERNAL);
        CHECK_CONTAINS(r.error, "libffi could not allocate a closure for a graph node");
        CHECK_EQ(r.created, 0);
        CHECK_EQ(fake::node_count(), 0);  // refused before any libtorch call
        CHECK_EQ(stats().live_closures, 0);
        CHECK_EQ(stats().pooled_nodes, 0);
    }
    applied ok = apply(ca_intern("Fine"), 10, {x}, true, {out});
    REQUIRE_EQ(ok.status, CA_OK);
    fake::dispose_all(ok.wrapped);
    fake::dispose(out);
    fake::dispose(x);
    CHECK(released() == std::vector<intptr_t>{10});
    check_clean();
}

// ---- Engine::queue_callback (Note [std::function across the ABI]) ------------------------------------------

// The fake table offers the engine's callback API in both builds; only a shim with the route compiled in uses
// it. Without it, owned results are released at the thread's next call, as when the symbols are missing.
CA_TEST(engine_callback_route_follows_the_build) {
    use_final_callbacks();
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied a = apply(ca_intern("F"), 3, {x}, true, {out});
    REQUIRE_EQ(a.status, CA_OK);
    ca_tensor r0 = fake::make(100);
    managed().behaviour = [&](intptr_t, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved,
                              ca_tensor* res, uint8_t* own, int32_t) -> int32_t {
        dispose_inputs(grads, n_grads, saved, n_saved);
        res[0] = r0;
        own[0] = 1;
        return CA_OK;
    };
    fake::outcome o = fake::run_node(fake::last_node(), {5});
    CHECK(!o.threw);
    CHECK(o.values == std::vector<int>{100});
    CHECK(fake::is_live(r0));  // copied by libtorch after apply returned, so still alive
#if CA_TEST_EXPECT_ENGINE_ROUTE
    REQUIRE_EQ(queued_callbacks().size(), size_t{1});
    queued_callbacks()[0]();
    CHECK(!fake::is_live(r0));  // released at the end of the pass
    queued_callbacks().clear();
    ca_flush_thread();
#else
    CHECK(queued_callbacks().empty());
    ca_flush_thread();
    CHECK(!fake::is_live(r0));  // released by the per-thread route
#endif
    fake::dispose_all(a.wrapped);
    fake::dispose(out);
    fake::dispose(x);
    check_clean();
}

// ---- Note [node record pool] ---------------------------------------------------------------------------

// A record handed back by a release stays with the releasing thread until that thread moves on, so no other
// thread reuses (or frees) it while its release call may still be returning.
CA_TEST(released_record_stays_with_its_thread_until_it_moves_on) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out1 = fake::make(10);
    ca_tensor out2 = fake::make(20);
    applied a = apply(ca_intern("A"), 1, {x}, true, {out1});
    REQUIRE_EQ(a.status, CA_OK);
    fake::node* n1 = fake::last_node();
    applied b = apply(ca_intern("B"), 2, {x}, true, {out2});
    REQUIRE_EQ(b.status, CA_OK);
    fake::node* n2 = fake::last_node();
    fake::dispose_all(a.wrapped);
    fake::dispose_all(b.wrapped);

    std::mutex mu;
    std::condition_variable cv;
    int step = 0;
    auto wait_for = [&](int s) {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return step >= s; });
    };
    auto advance = [&](int s) {
        {
            std::lock_guard<std::mutex> lock(mu);
            step = s;
        }
        cv.notify_all();
    };
    std::thread releaser([&] {
        fake::dispose(out1);  // releases n1 here: its record is held by this thread
        advance(1);
        wait_for(2);
        fake::dispose(out2);  // this thread moves on: n1's record goes to the shared pool, n2's is held
        advance(3);
        wait_for(4);
    });

    wait_for(1);
    CHECK(released() == std::vector<intptr_t>{1});
    CHECK_EQ(stats().pooled_nodes, 1);
    ca_tensor out3 = fake::make(30);
    applied c = apply(ca_intern("C"), 3, {x}, true, {out3});  // another thread: must not get n1's record
    REQUIRE_EQ(c.status, CA_OK);
    fake::node* n3 = fake::last_node();
    CHECK(n3->on_delete != n1->on_delete);
    CHECK_EQ(stats().live_closures, 6);
    fake::dispose_all(c.wrapped);

    advance(2);
    wait_for(3);
    ca_tensor out4 = fake::make(40);
    applied d = apply(ca_intern("D"), 4, {x}, true, {out4});  // now n1's record is free for anyone
    REQUIRE_EQ(d.status, CA_OK);
    CHECK(fake::last_node()->on_delete == n1->on_delete);
    CHECK(fake::last_node()->on_delete != n2->on_delete);  // still held by the releasing thread
    fake::dispose_all(d.wrapped);
    advance(4);
    releaser.join();  // its exit hands n2's record to the pool
    CHECK_EQ(stats().pooled_nodes, 1);

    fake::dispose(out3);
    fake::dispose(out4);
    fake::dispose(x);
    CHECK_EQ(stats().live_closures, 6);  // three records, none freed
    check_clean();
}
