// SPDX-License-Identifier: MIT
// The node's release (its on_delete) and the record pool.
#include "support.h"

#include <thread>

using namespace support;

CA_TEST(release_frees_saved_and_weak_then_calls_release_once) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied a = apply(ca_intern("Sq"), 55, {x}, true, {out}, {}, {}, {x, nullptr, out});
    REQUIRE_EQ(a.status, CA_OK);
    fake::node* n = fake::last_node();
    CHECK(!fake::run_node(n, {5}).threw);  // a backward first: release must not depend on it
    ca_flush_thread();

    fake::dispose_all(a.wrapped);
    CHECK(released().empty());
    const size_t log_before = fake::w().log.size();
    fake::dispose(out);  // the last reference: libtorch destroys the node

    CHECK_EQ(n->on_delete_calls, 1);
    CHECK(n->destroyed);
    CHECK(released() == std::vector<intptr_t>{55});
    for (fake::saved_var* sv : fake::w().saved) CHECK(sv->disposed);
    CHECK_EQ(fake::w().live_saved, 0);
    CHECK_EQ(n->weak_handles, 0);
    const std::vector<std::string> tail(fake::w().log.begin() + static_cast<std::ptrdiff_t>(log_before),
                                        fake::w().log.end());
    // The saved variables are disposed after the node's own bookkeeping (Note [iterative teardown]).
    CHECK(tail == (std::vector<std::string>{"disposeWeak", "savedDispose", "savedDispose"}));

    const ca_stats s = stats();
    CHECK_EQ(s.live_nodes, 0);
    CHECK_EQ(s.live_saved, 0);
    CHECK_EQ(s.pooled_nodes, 1);
    CHECK_EQ(s.live_closures, 2);
    fake::dispose(x);
    CHECK_EQ(released().size(), size_t{1});  // exactly once
    check_clean();
}

CA_TEST(released_record_is_reused_with_the_same_closures) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied a = apply(ca_intern("First"), 1, {x}, true, {out}, {}, {}, {x});
    REQUIRE_EQ(a.status, CA_OK);
    fake::node* n1 = fake::last_node();
    fake::dispose_all(a.wrapped);
    fake::dispose(out);
    CHECK(released() == std::vector<intptr_t>{1});
    CHECK_EQ(stats().pooled_nodes, 1);

    ca_tensor y = fake::make(2);
    ca_tensor out2 = fake::make(20);
    applied b = apply(ca_intern("Second"), 2, {x, y}, true, {out2}, {}, {}, {y});
    REQUIRE_EQ(b.status, CA_OK);
    fake::node* n2 = fake::last_node();
    REQUIRE(n1 != n2);
    CHECK(n2->apply == n1->apply);  // the pooled record's closures
    CHECK(n2->on_delete == n1->on_delete);
    ca_stats s = stats();
    CHECK_EQ(s.pooled_nodes, 0);
    CHECK_EQ(s.live_closures, 2);
    CHECK_EQ(s.nodes_created, 2);

    // The reused record carries the new application only.
    fake::outcome o = fake::run_node(n2, {7});
    CHECK(!o.threw);
    CHECK(o.values == (std::vector<int>{100, 101}));  // two edges now
    REQUIRE_EQ(calls().size(), size_t{1});
    CHECK_EQ(calls()[0].state, intptr_t{2});
    CHECK(calls()[0].saved == std::vector<int>{2});
    ca_flush_thread();

    fake::dispose_all(b.wrapped);
    fake::dispose(out2);
    CHECK(released() == (std::vector<intptr_t>{1, 2}));
    fake::dispose(x);
    fake::dispose(y);
    check_clean();
}

CA_TEST(node_released_on_another_thread) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied a = apply(ca_intern("F"), 8, {x}, true, {out}, {}, {}, {x});
    REQUIRE_EQ(a.status, CA_OK);
    fake::dispose_all(a.wrapped);
    std::thread::id releaser;
    std::thread t([&] {
        releaser = std::this_thread::get_id();
        fake::dispose(out);
    });
    t.join();
    CHECK(released() == std::vector<intptr_t>{8});
    CHECK(managed().release_threads.at(0) == releaser);
    fake::dispose(x);
    check_clean();
}

CA_TEST(pool_keeps_at_most_4096_records) {
    init();
    constexpr int kNodes = 4100;
    ca_tensor x = fake::make(1);
    std::vector<ca_tensor> outs;
    const char* name = ca_intern("Many");
    for (int i = 0; i < kNodes; ++i) {
        ca_tensor out = fake::make(1000 + i);
        applied a = apply(name, 1000 + i, {x}, true, {out});
        REQUIRE_EQ(a.status, CA_OK);
        fake::dispose_all(a.wrapped);
        outs.push_back(out);
    }
    ca_stats s = stats();
    CHECK_EQ(s.live_nodes, kNodes);
    CHECK_EQ(s.live_closures, 2 * kNodes);
    CHECK_EQ(s.pooled_nodes, 0);
    fake::node* last = fake::last_node();
    fake::dispose_all(outs);  // released in order: `last` is released last
    s = stats();
    CHECK_EQ(s.live_nodes, 0);
    // 4096 in the shared pool, plus the record this thread's last release holds back (Note [node record pool]).
    CHECK_EQ(s.pooled_nodes, 4097);
    CHECK_EQ(s.live_closures, 2 * 4097);
    CHECK_EQ(released().size(), size_t{kNodes});
    // Only records whose release call had returned were freed: the last one is reused, with its closures.
    ca_tensor out = fake::make(1);
    applied a = apply(name, 1, {x}, true, {out});
    REQUIRE_EQ(a.status, CA_OK);
    CHECK(fake::last_node()->on_delete == last->on_delete);
    fake::dispose_all(a.wrapped);
    fake::dispose(out);
    fake::dispose(x);
    check_clean();
}

CA_TEST(sequential_nodes_reuse_one_record) {
    init();
    ca_tensor x = fake::make(1);
    for (int i = 0; i < 1000; ++i) {
        ca_tensor out = fake::make(10);
        applied a = apply(ca_intern("Loop"), i + 1, {x}, true, {out}, {}, {}, {x, out});
        REQUIRE_EQ(a.status, CA_OK);
        if (i % 100 == 0) CHECK(!fake::run_node(fake::last_node(), {5}).threw);
        fake::dispose_all(a.wrapped);
        fake::dispose(out);
    }
    ca_flush_thread();
    const ca_stats s = stats();
    CHECK_EQ(s.nodes_created, 1000);
    CHECK_EQ(s.pooled_nodes, 1);
    CHECK_EQ(s.live_closures, 2);
    CHECK_EQ(released().size(), size_t{1000});
    fake::dispose(x);
    check_clean();
}

// Note [iterative teardown]: a chain whose nodes each save their input (which holds the previous node through
// its grad_fn) is freed with a constant stack depth, whichever end the last reference goes from.
CA_TEST(long_chain_of_saved_inputs_is_torn_down_iteratively) {
    init();
    constexpr int kLength = 20000;
    ca_tensor x = fake::make(0);
    ca_tensor y = fake::share(x);
    std::vector<intptr_t> states;
    for (int i = 1; i <= kLength; ++i) {
        ca_tensor out = fake::make(i);
        applied a = apply(ca_intern("Chain"), i, {y}, true, {out}, {}, {}, {y});
        REQUIRE_EQ(a.status, CA_OK);
        fake::dispose_all(a.wrapped);
        fake::dispose(y);  // the saved variable (and the edge) keep the previous tensor and node alive
        y = out;
    }
    CHECK_EQ(stats().live_nodes, kLength);
    fake::w().max_on_delete_depth = 0;
    fake::dispose(y);  // the last output: the whole chain dies from here
    CHECK_EQ(stats().live_nodes, 0);
    CHECK_EQ(stats().live_saved, 0);
    CHECK_EQ(released().size(), static_cast<size_t>(kLength));
    // One release running, plus at most one nested inside its dispose of a saved variable.
    CHECK(fake::w().max_on_delete_depth <= 2);
    fake::dispose(x);
    check_clean();
}
