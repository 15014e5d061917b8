// SPDX-License-Identifier: MIT
// The node's apply (what libtorch's engine calls): the backward callback, results and their
// ownership, failures, keep_graph, re-entrancy and threads.
#include "support.h"

#include <atomic>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace support;

namespace {

// x (1), y (2) -> out1 (10), out2 (11), saving the given tensors.
struct graph {
    ca_tensor x = nullptr, y = nullptr, out1 = nullptr, out2 = nullptr;
    std::vector<ca_tensor> wrapped;
    fake::node* n = nullptr;

    void dispose() {
        fake::dispose_all(wrapped);
        for (ca_tensor* t : {&out1, &out2, &x, &y}) {
            if (*t != nullptr) fake::dispose(*t);
            *t = nullptr;
        }
    }
};

enum saves { save_none, save_x_null_out1, save_x_y_out1 };

graph make_graph(intptr_t state, saves what = save_x_null_out1, const char* name = "Mul") {
    graph g;
    g.x = fake::make(1);
    g.y = fake::make(2);
    g.out1 = fake::make(10);
    g.out2 = fake::make(11);
    std::vector<ca_tensor> to_save;
    if (what == save_x_null_out1) to_save = {g.x, nullptr, g.out1};
    if (what == save_x_y_out1) to_save = {g.x, g.y, g.out1};
    applied a = apply(ca_intern(name), state, {g.x, g.y}, true, {g.out1, g.out2}, {}, {}, to_save);
    REQUIRE_EQ(a.status, CA_OK);
    REQUIRE_EQ(a.created, 1);
    g.wrapped = a.wrapped;
    g.n = fake::last_node();
    return g;
}

// A backward that returns the given handles with the given ownership flags.
backward_fn answer(std::vector<ca_tensor> results, std::vector<uint8_t> owned) {
    return [results, owned](intptr_t, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved,
                            ca_tensor* res, uint8_t* own, int32_t n_results) -> int32_t {
        dispose_inputs(grads, n_grads, saved, n_saved);
        for (int32_t i = 0; i < n_results && i < static_cast<int32_t>(results.size()); ++i) {
            res[i] = results[static_cast<size_t>(i)];
            own[i] = owned[static_cast<size_t>(i)];
        }
        return CA_OK;
    };
}

// One node whose Backward hands the shim a fresh tensor (value 100) for its first input and nothing for the
// second, run once by the fake engine; finish() checks that nothing was misused or left behind.
struct one_owned_result {
    graph g = make_graph(1, save_none);
    ca_tensor r0 = fake::make(100);
    fake::outcome o;

    one_owned_result() {
        managed().behaviour = answer({r0, nullptr}, {1, 0});
        o = fake::run_node(g.n, {50, 51});
        CHECK(!o.threw);
        CHECK(o.values == (std::vector<int>{100, -1}));
    }

    void finish() {
        check_no_misuse();
        g.dispose();
        check_clean();
    }
};

}  // namespace

CA_TEST(backward_receives_state_grads_and_saved) {
    init();
    graph g = make_graph(1234);
    ca_tensor r0 = fake::make(100);
    managed().behaviour = answer({r0, nullptr}, {1, 0});

    fake::outcome o = fake::run_node(g.n, {50, -1});  // the second output got no gradient
    CHECK(!o.threw);
    CHECK_EQ(o.size, 2);
    CHECK(o.values == (std::vector<int>{100, -1}));  // read after apply returned: still alive

    REQUIRE_EQ(calls().size(), size_t{1});
    const backward_call c = calls()[0];
    CHECK_EQ(c.state, intptr_t{1234});
    CHECK(c.grads == (std::vector<int>{50, -1}));
    CHECK(c.saved == (std::vector<int>{1, -1, 10}));  // in save order; a saved null stays null
    CHECK(c.saved_grad_fn[2] == g.n);                 // the output was unpacked for this node
    CHECK_EQ(c.n_results, 2);                         // one per edge (input)
    CHECK_EQ(fake::w().saved[0]->unpack_calls, 1);
    CHECK_EQ(fake::w().saved[1]->unpack_calls, 1);

    const ca_stats s = stats();
    CHECK_EQ(s.backward_calls, 1);
    CHECK_EQ(s.backward_failures, 0);
    CHECK_EQ(fake::w().keep_graph_calls, 1);
    CHECK_EQ(fake::w().saved[0]->reset_calls, 0);  // keep_graph is true

    ca_flush_thread();
    g.dispose();
    CHECK(released() == std::vector<intptr_t>{1234});
    check_clean();
}

CA_TEST(owned_results_outlive_apply_and_are_disposed_by_flush) {
    init();
    graph g = make_graph(1, save_none);
    ca_tensor r0 = fake::make(100);
    ca_tensor r1 = fake::make(101);
    managed().behaviour = answer({r0, r1}, {1, 1});
    fake::outcome o = fake::run_node(g.n, {50, 51});
    CHECK(!o.threw);
    CHECK(o.values == (std::vector<int>{100, 101}));
    // Owned by the shim now, and kept until libtorch has surely copied them.
    CHECK(fake::is_live(r0));
    CHECK(fake::is_live(r1));
    ca_flush_thread();
    CHECK(!fake::is_live(r0));
    CHECK(!fake::is_live(r1));
    ca_flush_thread();  // nothing left to dispose: no double dispose
    check_no_misuse();
    g.dispose();
    check_clean();
}

CA_TEST(owned_results_are_disposed_by_the_next_apply) {
    init();
    graph g = make_graph(1, save_none);
    ca_tensor first = fake::make(100);
    managed().behaviour = answer({first, nullptr}, {1, 0});
    CHECK(!fake::run_node(g.n, {50, 51}).threw);
    CHECK(fake::is_live(first));

    ca_tensor second = fake::make(200);
    managed().behaviour = answer({second, nullptr}, {1, 0});
    fake::outcome o = fake::run_node(g.n, {50, 51});
    CHECK(!o.threw);
    CHECK(o.values == (std::vector<int>{200, -1}));
    CHECK(!fake::is_live(first));  // disposed by the second apply on this thread
    CHECK(fake::is_live(second));
    ca_flush_thread();
    CHECK(!fake::is_live(second));
    g.dispose();
    check_clean();
}

CA_TEST(owned_results_are_disposed_by_the_next_ca_apply) {
    init();
    graph g = make_graph(1, save_none);
    ca_tensor r = fake::make(100);
    managed().behaviour = answer({r, nullptr}, {1, 0});
    CHECK(!fake::run_node(g.n, {50, 51}).threw);
    CHECK(fake::is_live(r));

    ca_tensor z = fake::make(3);
    ca_tensor zo = fake::make(30);
    applied a = apply(ca_intern("NoGrad"), 2, {z}, false, {zo});
    CHECK_EQ(a.status, CA_OK);
    CHECK(!fake::is_live(r));
    fake::dispose_all(a.wrapped);
    fake::dispose(zo);
    fake::dispose(z);
    g.dispose();
    check_clean();
}

CA_TEST(owned_results_are_disposed_by_ca_grad) {
    init();
    graph g = make_graph(1, save_none);
    ca_tensor r = fake::make(100);
    managed().behaviour = answer({r, nullptr}, {1, 0});
    CHECK(!fake::run_node(g.n, {50, 51}).threw);
    CHECK(fake::is_live(r));
    bool live_inside_grad = true;
    fake::w().grad = [&](ca_tensor*, int64_t, ca_tensor*, int64_t n_inputs, ca_tensor*, int64_t, bool, bool, bool,
                         ca_ts_allocator_fn allocator) {
        live_inside_grad = fake::is_live(r);
        ca_tensor* out = allocator(static_cast<size_t>(n_inputs));
        for (int64_t i = 0; i < n_inputs; ++i) out[i] = nullptr;
    };
    ca_tensor result = nullptr;
    CHECK_EQ(ca_grad(&g.out1, 1, &g.x, 1, nullptr, 0, 0, 0, 1, &result), CA_OK);
    CHECK(!live_inside_grad);  // flushed before the engine runs
    CHECK(result == nullptr);
    g.dispose();
    check_clean();
}

CA_TEST(owned_results_are_disposed_at_thread_exit) {
    init();
    graph g = make_graph(1, save_none);
    ca_tensor r = fake::make(100);
    managed().behaviour = answer({r, nullptr}, {1, 0});
    fake::outcome o;
    std::thread t([&] { o = fake::run_node(g.n, {50, 51}); });
    t.join();
    CHECK(!o.threw);
    CHECK(o.values == (std::vector<int>{100, -1}));
    CHECK(!fake::is_live(r));  // the thread's retired handles went with it
    ca_flush_thread();         // not this thread's: nothing to do
    g.dispose();
    check_clean();
}

CA_TEST(borrowed_results_are_never_disposed) {
    init();
    graph g = make_graph(1, save_none);
    ca_tensor lent0 = fake::make(100);
    ca_tensor lent1 = fake::make(101);
    managed().behaviour = answer({lent0, lent1}, {0, 0});
    for (int i = 0; i < 3; ++i) {
        fake::outcome o = fake::run_node(g.n, {50, 51});
        CHECK(!o.threw);
        CHECK(o.values == (std::vector<int>{100, 101}));
    }
    ca_flush_thread();
    CHECK(fake::is_live(lent0));
    CHECK(fake::is_live(lent1));
    check_no_misuse();
    fake::dispose(lent0);
    fake::dispose(lent1);
    g.dispose();
    check_clean();
}

CA_TEST(mixed_owned_borrowed_and_passed_through_results) {
    init();
    graph g = make_graph(1, save_none);
    ca_tensor lent = fake::make(100);
    ca_tensor* passed = new ca_tensor(nullptr);
    // Result 0: the incoming gradient itself, handed back with ownership; result 1: lent.
    managed().behaviour = [&](intptr_t, ca_tensor* grads, int32_t, ca_tensor* saved, int32_t n_saved, ca_tensor* res,
                              uint8_t* own, int32_t) -> int32_t {
        dispose_inputs(grads + 1, 1, saved, n_saved);
        *passed = grads[0];
        res[0] = grads[0];
        own[0] = 1;
        res[1] = lent;
        own[1] = 0;
        return CA_OK;
    };
    fake::outcome o = fake::run_node(g.n, {50, 51});
    CHECK(!o.threw);
    CHECK(o.values == (std::vector<int>{50, 100}));
    CHECK(fake::is_live(*passed));
    ca_flush_thread();
    CHECK(!fake::is_live(*passed));
    CHECK(fake::is_live(lent));
    fake::dispose(lent);
    delete passed;
    g.dispose();
    check_clean();
}

CA_TEST(callback_failure_throws_runtime_error_with_its_message) {
    init();
    fake::w().keep_graph = false;
    graph g = make_graph(5);
    const std::string message = "Mul: the Backward failed: InvalidOperationException: boom";
    managed().behaviour = [&](intptr_t, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved,
                              ca_tensor*, uint8_t*, int32_t) -> int32_t {
        dispose_inputs(grads, n_grads, saved, n_saved);
        ca_set_callback_error(message.c_str());
        return CA_ERR_CALLBACK;
    };
    fake::outcome o = fake::run_node(g.n, {50, 51});
    CHECK(o.threw);
    CHECK(o.runtime_error);
    CHECK_EQ(o.what, message);
    ca_stats s = stats();
    CHECK_EQ(s.backward_calls, 1);
    CHECK_EQ(s.backward_failures, 1);
    // A failed backward keeps the saved tensors.
    CHECK_EQ(fake::w().saved[0]->reset_calls, 0);

    // The message was consumed: a failure without one gets a generic message naming the function.
    managed().behaviour = [&](intptr_t, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved,
                              ca_tensor*, uint8_t*, int32_t) -> int32_t {
        dispose_inputs(grads, n_grads, saved, n_saved);
        return CA_ERR_CALLBACK;
    };
    o = fake::run_node(g.n, {50, 51});
    CHECK(o.threw);
    CHECK(o.runtime_error);
    CHECK_EQ(o.what, std::string("Mul: backward failed"));
    CHECK_EQ(stats().backward_failures, 2);

    g.dispose();
    check_clean();
}

CA_TEST(unpack_failure_throws_and_disposes_grads) {
    init();
    graph g = make_graph(5, save_x_y_out1, "Unpacky");
    fake::w().fail_unpack_at = 1;  // the second saved variable
    fake::w().fail_unpack_message = "unpack exploded";
    const int64_t live_before = fake::live_handles();
    fake::outcome o = fake::run_node(g.n, {50, 51});
    CHECK(o.threw);
    CHECK(o.runtime_error);
    CHECK_EQ(o.what, std::string("Unpacky: unpack exploded"));
    CHECK(calls().empty());
    CHECK_EQ(fake::live_handles(), live_before);  // the grads and the first unpacked tensor were disposed
    CHECK_EQ(stats().backward_failures, 1);
    CHECK(!fake::error_pending());
    g.dispose();
    check_clean();
}

CA_TEST(keep_graph_false_frees_saved_tensors_after_backward) {
    init();
    fake::w().keep_graph = false;
    graph g = make_graph(5, save_x_null_out1, "Once");
    fake::outcome o = fake::run_node(g.n, {50, 51});
    CHECK(!o.threw);
    REQUIRE_EQ(fake::w().saved.size(), size_t{2});
    CHECK_EQ(fake::w().saved[0]->reset_calls, 1);
    CHECK_EQ(fake::w().saved[1]->reset_calls, 1);
    CHECK_EQ(fake::w().keep_graph_calls, 1);

    // A second backward through the node fails in unpack, as libtorch's own nodes do.
    const int64_t live_before = fake::live_handles();
    o = fake::run_node(g.n, {50, 51});
    CHECK(o.threw);
    CHECK(o.runtime_error);
    CHECK_CONTAINS(o.what, "Once: Trying to backward through the graph a second time");
    CHECK_EQ(calls().size(), size_t{1});
    CHECK_EQ(fake::live_handles(), live_before);  // grads disposed
    ca_flush_thread();
    g.dispose();
    check_clean();
}

CA_TEST(keep_graph_true_keeps_saved_tensors) {
    init();
    graph g = make_graph(5);
    for (int i = 0; i < 3; ++i) CHECK(!fake::run_node(g.n, {50, 51}).threw);
    CHECK_EQ(fake::w().saved[0]->reset_calls, 0);
    CHECK_EQ(fake::w().saved[1]->reset_calls, 0);
    CHECK_EQ(calls().size(), size_t{3});
    ca_flush_thread();
    g.dispose();
    check_clean();
}

CA_TEST(keep_graph_query_absent_keeps_saved_tensors) {
    ca_torch_api& api = table();
    api.get_current_graph_task_keep_graph = nullptr;
    init();
    fake::w().keep_graph = false;  // would free them, if it were asked
    graph g = make_graph(5);
    for (int i = 0; i < 2; ++i) CHECK(!fake::run_node(g.n, {50, 51}).threw);
    CHECK_EQ(fake::w().keep_graph_calls, 0);
    CHECK_EQ(fake::w().saved[0]->reset_calls, 0);
    ca_flush_thread();
    g.dispose();
    check_clean();
}

CA_TEST(backward_may_reenter_its_own_node) {
    init();
    graph g = make_graph(5, save_none);
    std::atomic<int> depth{0};
    fake::outcome inner;
    managed().behaviour = [&](intptr_t state, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved,
                              ca_tensor* res, uint8_t* own, int32_t n_results) -> int32_t {
        if (depth.fetch_add(1) == 0) inner = fake::run_node(g.n, {60, 61});  // same node, same thread
        depth.fetch_sub(1);
        return default_backward(state, grads, n_grads, saved, n_saved, res, own, n_results);
    };
    fake::outcome outer = fake::run_node(g.n, {50, 51});
    CHECK(!outer.threw);
    CHECK(!inner.threw);
    CHECK(outer.values == (std::vector<int>{100, 101}));
    CHECK(inner.values == (std::vector<int>{100, 101}));
    CHECK_EQ(calls().size(), size_t{2});
    ca_flush_thread();
    g.dispose();
    check_clean();
}

CA_TEST(backward_calls_of_one_node_are_serialised_across_threads) {
    init();
    graph g = make_graph(5);
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    managed().behaviour = [&](intptr_t state, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved,
                              ca_tensor* res, uint8_t* own, int32_t n_results) -> int32_t {
        if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
        std::this_thread::yield();
        inside.fetch_sub(1);
        return default_backward(state, grads, n_grads, saved, n_saved, res, own, n_results);
    };
    constexpr int kThreads = 4;
    constexpr int kRuns = 100;
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < kRuns; ++i) {
                fake::outcome o = fake::run_node(g.n, {50, 51});
                if (o.threw || o.values != std::vector<int>{100, 101}) bad.fetch_add(1);
            }
        });
    for (auto& t : threads) t.join();
    CHECK_EQ(bad.load(), 0);
    CHECK_EQ(overlaps.load(), 0);
    CHECK_EQ(stats().backward_calls, int64_t{kThreads * kRuns});
    g.dispose();
    check_clean();  // every thread's last results were disposed when it exited
}

// ---- gradients released by a final callback queued on the backward pass ----------------------------
// (support's use_final_callbacks; these tests need the route compiled in: Note [std::function across the ABI])

CA_TEST(owned_results_are_released_by_the_final_callback) {
    use_final_callbacks();
    init();
    graph g = make_graph(1, save_none);
    ca_tensor r0 = fake::make(100);
    ca_tensor r1 = fake::make(101);
    managed().behaviour = answer({r0, r1}, {1, 0});  // r0 handed over, r1 lent
    fake::outcome o = fake::run_node(g.n, {50, 51});
    CHECK(!o.threw);
    CHECK(o.values == (std::vector<int>{100, 101}));
    REQUIRE_EQ(queued_callbacks().size(), size_t{1});
    CHECK(fake::is_live(r0));  // still ours until the pass ends
    queued_callbacks()[0]();   // the engine runs final callbacks after every node
    CHECK(!fake::is_live(r0));
    CHECK(fake::is_live(r1));  // lent: never disposed by the shim
    ca_flush_thread();         // the per-thread list does not own r0 any more: no double dispose
    queued_callbacks().clear();
    check_no_misuse();
    fake::dispose(r1);
    g.dispose();
    check_clean();
}

CA_TEST(queued_results_are_released_by_the_next_apply_if_it_comes_first) {
    use_final_callbacks();
    init();
    graph a = make_graph(1, save_none);
    graph b = make_graph(2, save_none);
    ca_tensor r0 = fake::make(100);
    managed().behaviour = answer({r0, nullptr}, {1, 0});
    CHECK(!fake::run_node(a.n, {50, 51}).threw);
    REQUIRE_EQ(queued_callbacks().size(), size_t{1});
    CHECK(fake::is_live(r0));
    // The next node on this thread runs before the pass ends: r0 (long copied by libtorch) goes now, so its
    // memory can serve that node, as a libtorch node's output would.
    managed().behaviour = answer({nullptr, nullptr}, {0, 0});
    CHECK(!fake::run_node(b.n, {52, 53}).threw);
    CHECK(!fake::is_live(r0));
    queued_callbacks()[0]();  // the end of the pass: nothing left to release, no double dispose
    queued_callbacks().clear();
    ca_flush_thread();
    check_no_misuse();
    a.dispose();
    b.dispose();
    check_clean();
}

CA_TEST(owned_results_stay_with_the_thread_when_queueing_fails) {
    use_final_callbacks();
    table().Engine_queue_callback = [](void*, void*) { throw std::runtime_error("not inside a backward pass"); };
    init();
    one_owned_result run;
    CHECK(fake::is_live(run.r0));  // not released by the failed queueing
    ca_flush_thread();
    CHECK(!fake::is_live(run.r0));
    run.finish();
}

CA_TEST(owned_results_are_released_when_the_pass_drops_its_callbacks) {
    use_final_callbacks();
    init();
    graph g = make_graph(1, save_none);
    ca_tensor r0 = fake::make(100);
    managed().behaviour = answer({r0, nullptr}, {1, 0});
    fake::outcome o = fake::run_node(g.n, {50, 51});
    CHECK(!o.threw);
    REQUIRE_EQ(queued_callbacks().size(), size_t{1});
    CHECK(fake::is_live(r0));
    queued_callbacks().clear();  // a failed pass destroys its callbacks without running them
    CHECK(!fake::is_live(r0));
    ca_flush_thread();
    check_no_misuse();
    g.dispose();
    check_clean();
}

// ---- Note [stealable gradients]: owned results in libtorch's cached-tensor registry ---------------------------

CA_TEST(owned_results_are_registered_until_their_handle_is_released) {
    init();
    CHECK(fake::w().registry_enabled);  // ca_init switched the registry on
    graph g = make_graph(1, save_none);
    ca_tensor r0 = fake::make(100);
    ca_tensor r1 = fake::make(101);
    managed().behaviour = answer({r0, r1}, {1, 0});  // r0 handed over, r1 lent
    fake::outcome o = fake::run_node(g.n, {50, 51});
    CHECK(!o.threw);
    CHECK(o.values == (std::vector<int>{100, 101}));
    // The shim still holds r0, and AccumulateGrad may take it all the same; r1's owner can still see it.
    CHECK(fake::registered(r0));
    CHECK(fake::stealable(r0));
    CHECK(!fake::registered(r1));
    CHECK(!fake::stealable(r1));
    ca_flush_thread();  // out of the registry, then disposed (the fake reports the reverse order as misuse)
    CHECK(!fake::is_live(r0));
    CHECK(fake::w().registry.empty());
    CHECK_EQ(fake::w().registry_removes, int64_t{1});
    check_no_misuse();
    fake::dispose(r1);
    g.dispose();
    check_clean();
}

CA_TEST(a_gradient_passed_on_by_the_next_node_stays_registered) {
    init();
    graph a = make_graph(1, save_none);
    graph b = make_graph(2, save_none);
    ca_tensor r = fake::make(100);
    managed().behaviour = answer({r, nullptr}, {1, 0});
    CHECK(!fake::run_node(a.n, {50, 51}).threw);
    REQUIRE(fake::registered(r));
    // The next node on this thread returns the same tensor (through a handle of its own): releasing the first
    // node's handle must not take it out of the registry after the second registered it.
    ca_tensor again = fake::share(r);
    managed().behaviour = answer({again, nullptr}, {1, 0});
    CHECK(!fake::run_node(b.n, {52, 53}).threw);
    CHECK(!fake::is_live(r));
    CHECK(fake::registered(again));
    CHECK(fake::stealable(again));
    ca_flush_thread();
    CHECK(fake::w().registry.empty());
    check_no_misuse();
    a.dispose();
    b.dispose();
    check_clean();
}

CA_TEST(registered_results_released_by_the_final_callback_leave_the_registry_first) {
    use_final_callbacks();
    init();
    one_owned_result run;
    REQUIRE_EQ(queued_callbacks().size(), size_t{1});
    CHECK(fake::registered(run.r0));
    CHECK(fake::stealable(run.r0));
    queued_callbacks()[0]();
    CHECK(!fake::is_live(run.r0));
    CHECK(fake::w().registry.empty());
    ca_flush_thread();
    queued_callbacks().clear();
    run.finish();
}

CA_TEST(results_are_not_registered_without_the_registry_entries) {
    table().caching_set_cached_tensors_enabled = nullptr;
    table().caching_add_cached_tensor = nullptr;
    table().caching_remove_cached_tensor = nullptr;
    init();
    CHECK_EQ(fake::w().registry_enable_calls, 0);
    one_owned_result run;
    CHECK(!fake::registered(run.r0));
    CHECK(!fake::stealable(run.r0));  // the shim's handle counts: AccumulateGrad would copy
    ca_flush_thread();
    CHECK(!fake::is_live(run.r0));
    run.finish();
}

CA_TEST(results_are_not_registered_when_the_environment_says_0) {
    setenv("CUSTOMAUTOGRAD_STEAL_GRADIENTS", "0", 1);
    init();
    CHECK_EQ(fake::w().registry_enable_calls, 0);
    CHECK(!fake::w().registry_enabled);
    one_owned_result run;
    CHECK(!fake::registered(run.r0));
    CHECK_EQ(fake::w().registry_adds, int64_t{0});
    ca_flush_thread();
    run.finish();
}

CA_TEST(a_result_the_registry_refuses_is_released_as_before) {
    init();
    fake::w().registry_enabled = false;  // someone switched it off: add and remove now throw
    one_owned_result run;
    CHECK(!fake::registered(run.r0));
    ca_flush_thread();
    CHECK(!fake::is_live(run.r0));
    CHECK_EQ(fake::w().registry_removes, int64_t{0});
    run.finish();
}

CA_TEST(a_result_given_for_two_inputs_is_registered_and_released_once) {
    init();
    graph g = make_graph(1, save_none);
    ca_tensor r = fake::make(100);
    managed().behaviour = answer({r, r}, {1, 0});  // as the trampoline answers one tensor for two inputs
    fake::outcome o = fake::run_node(g.n, {50, 51});
    CHECK(!o.threw);
    CHECK(o.values == (std::vector<int>{100, 100}));
    CHECK(fake::registered(r));
    CHECK_EQ(fake::w().registry_adds, int64_t{1});
    ca_flush_thread();
    CHECK(!fake::is_live(r));
    CHECK_EQ(fake::w().registry_removes, int64_t{1});
    check_no_misuse();
    g.dispose();
    check_clean();
}
