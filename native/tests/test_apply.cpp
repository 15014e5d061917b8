// SPDX-License-Identifier: MIT
// ca_apply: argument checks, the not-executable path, node creation, and failed applications.
#include "support.h"

using namespace support;

namespace {

using log_t = std::vector<std::string>;

log_t fake_log() {
    std::lock_guard<std::recursive_mutex> lock(fake::w().mu);
    return fake::w().log;
}

std::string join(const log_t& log) {
    std::string s;
    for (const auto& e : log) s += (s.empty() ? "" : ",") + e;
    return s;
}

}  // namespace

CA_TEST(apply_rejects_invalid_arguments) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out[2] = {fake::make(10), fake::make(11)};
    ca_tensor none[2] = {nullptr, nullptr};
    ca_tensor wrapped[2] = {nullptr, nullptr};
    int32_t created = 0;
    const char* name = ca_intern("F");

    auto expect_invalid = [&](int32_t status, const char* message) {
        CHECK_EQ(status, CA_ERR_INVALID_ARGUMENT);
        CHECK_CONTAINS(ca_last_error(), message);
    };
    expect_invalid(ca_apply(name, 1, &x, 1, 1, out, 2, nullptr, 0, nullptr, 0, nullptr, 0, wrapped, nullptr),
                   "ca_apply: invalid array or count");
    expect_invalid(ca_apply(name, 1, &x, -1, 1, out, 2, nullptr, 0, nullptr, 0, nullptr, 0, wrapped, &created),
                   "invalid array or count");
    expect_invalid(ca_apply(name, 1, nullptr, 1, 1, out, 2, nullptr, 0, nullptr, 0, nullptr, 0, wrapped, &created),
                   "invalid array or count");
    expect_invalid(ca_apply(name, 1, &x, 1, 1, nullptr, 2, nullptr, 0, nullptr, 0, nullptr, 0, wrapped, &created),
                   "invalid array or count");
    expect_invalid(ca_apply(name, 1, &x, 1, 1, out, -2, nullptr, 0, nullptr, 0, nullptr, 0, wrapped, &created),
                   "invalid array or count");
    expect_invalid(ca_apply(name, 1, &x, 1, 1, out, 2, nullptr, 0, nullptr, 0, nullptr, 0, nullptr, &created),
                   "invalid array or count");
    expect_invalid(ca_apply(name, 1, &x, 1, 1, out, 2, nullptr, 1, nullptr, 0, nullptr, 0, wrapped, &created),
                   "invalid array or count");
    expect_invalid(ca_apply(name, 1, &x, 1, 1, out, 2, nullptr, 0, nullptr, 1, nullptr, 0, wrapped, &created),
                   "invalid array or count");
    expect_invalid(ca_apply(name, 1, &x, 1, 1, out, 2, nullptr, 0, nullptr, 0, nullptr, 1, wrapped, &created),
                   "invalid array or count");
    expect_invalid(ca_apply(name, 1, &x, 1, 1, out, 2, nullptr, 0, nullptr, 0, nullptr, -1, wrapped, &created),
                   "invalid array or count");
    expect_invalid(ca_apply(name, 1, none, 1, 1, out, 2, nullptr, 0, nullptr, 0, nullptr, 0, wrapped, &created),
                   "ca_apply: input 0 is null");
    ca_tensor half[2] = {out[0], nullptr};
    expect_invalid(ca_apply(name, 1, &x, 1, 1, half, 2, nullptr, 0, nullptr, 0, nullptr, 0, wrapped, &created),
                   "ca_apply: output 1 is null");

    CHECK(fake_log().empty());  // nothing reached libtorch
    CHECK_EQ(stats().nodes_created, 0);
    CHECK(wrapped[0] == nullptr && wrapped[1] == nullptr);
    fake::dispose(x);
    fake::dispose(out[0]);
    fake::dispose(out[1]);
    check_clean();
}

CA_TEST(apply_not_executable_wraps_without_a_node) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor y = fake::make(2);
    ca_tensor out = fake::make(10);
    ca_tensor out2 = fake::make(11);
    applied a = apply(ca_intern("NoGrad"), 42, {x, y}, false, {out, out2}, {out2}, {}, {x, out});
    REQUIRE_EQ(a.status, CA_OK);
    CHECK_EQ(a.created, 0);

    CHECK_EQ(join(fake_log()), std::string("wrapOutputs"));  // no node, nothing saved
    CHECK_EQ(fake::w().wrap_calls, 1);
    CHECK(fake::w().last_wrap_node_null);
    CHECK(fake::w().last_wrap_vars == (std::vector<int>{1, 2}));
    CHECK(fake::w().last_wrap_outputs == (std::vector<int>{10, 11}));
    CHECK(fake::w().last_wrap_non_diff == (std::vector<int>{11}));
    CHECK(fake::w().last_wrap_dirty.empty());

    // Wrapping left both outputs as the very same tensors: the shim dropped the fresh handles (once
    // each) and the caller keeps its own.
    REQUIRE_EQ(a.wrapped.size(), size_t{2});
    CHECK(a.wrapped[0] == nullptr);
    CHECK(a.wrapped[1] == nullptr);
    CHECK_EQ(fake::w().handles_disposed, 2);
    CHECK_EQ(fake::live_handles(), 4);
    CHECK(fake::grad_fn_of(out) == nullptr);

    const ca_stats s = stats();
    CHECK_EQ(s.nodes_created, 0);
    CHECK_EQ(s.live_nodes, 0);
    CHECK_EQ(s.live_saved, 0);
    CHECK_EQ(s.live_closures, 0);
    CHECK_EQ(fake::node_count(), 0);

    fake::dispose_all(a.wrapped);
    for (ca_tensor t : {x, y, out, out2}) fake::dispose(t);
    CHECK(released().empty());
    check_clean();
}

CA_TEST(apply_not_executable_reports_torch_error) {
    init();
    fake::w().fail_wrap = "wrapOutputs: something is wrong";
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied a = apply(ca_intern("NoGrad"), 42, {x}, false, {out});
    CHECK_EQ(a.status, CA_ERR_TORCH);
    CHECK_EQ(a.error, std::string("wrapOutputs: something is wrong"));  // libtorch's text, no prefix
    CHECK_EQ(a.created, 0);
    CHECK(a.wrapped[0] == nullptr);
    CHECK_EQ(fake::w().errors_taken, fake::w().errors_set);
    CHECK_EQ(fake::live_handles(), 2);  // only the test's own
    fake::dispose(x);
    fake::dispose(out);
    check_clean();
}

CA_TEST(apply_executable_creates_a_node) {
    init();
    const char* name = ca_intern("Mul");
    ca_tensor x = fake::make(1);
    ca_tensor y = fake::make(2);
    ca_tensor out = fake::make(10);
    applied a = apply(name, 7, {x, y}, true, {out}, {}, {}, {x, nullptr, out});
    REQUIRE_EQ(a.status, CA_OK);
    CHECK_EQ(a.created, 1);
    REQUIRE_EQ(fake::node_count(), 1);
    fake::node* n = fake::last_node();

    // The saved variables are created after wrapping, and the construction reference is dropped last.
    CHECK_EQ(join(fake_log()),
             std::string("ctor,setNextEdges,clearInputMetadata,wrapOutputs,savedCtor,savedCtor,disposeShared"));
    CHECK(n->apply != nullptr && n->on_delete != nullptr);
    CHECK_EQ(n->set_next_edges_calls, 1);
    CHECK(n->edges_executable);
    CHECK(n->edges == (std::vector<int>{1, 2}));  // one edge per input
    CHECK_EQ(n->clear_metadata_calls, 1);
    CHECK(!fake::w().last_wrap_node_null);
    CHECK(fake::w().last_wrap_vars == (std::vector<int>{1, 2}));
    CHECK(fake::w().last_wrap_outputs == (std::vector<int>{10}));

    REQUIRE_EQ(fake::w().saved.size(), size_t{2});
    CHECK_EQ(fake::w().saved[0]->value, 1);
    CHECK(!fake::w().saved[0]->is_output);
    CHECK_EQ(fake::w().saved[1]->value, 10);
    CHECK(fake::w().saved[1]->is_output);  // saved after wrapOutputs made the node its grad_fn

    // The output was connected in place: no fresh handle, the caller's own now has the node as grad_fn.
    CHECK(a.wrapped[0] == nullptr);
    CHECK(fake::grad_fn_of(out) == n);
    CHECK_EQ(fake::live_handles(), 3);

    // The outputs keep the node alive; the shim keeps only its weak_ptr.
    CHECK_EQ(n->shared_handles, 0);
    CHECK_EQ(n->weak_handles, 1);
    CHECK_EQ(n->strong, 1);
    CHECK_EQ(n->on_delete_calls, 0);

    ca_stats s = stats();
    CHECK_EQ(s.live_nodes, 1);
    CHECK_EQ(s.live_saved, 2);
    CHECK_EQ(s.nodes_created, 1);
    CHECK_EQ(s.live_closures, 2);
    CHECK_EQ(s.pooled_nodes, 0);
    CHECK_EQ(s.backward_calls, 0);
    CHECK(released().empty());
    CHECK_EQ(fake::w().errors_set, 0);

    fake::dispose(x);  // the saved variable keeps x's tensor
    CHECK(released().empty());
    fake::dispose(out);  // the last reference to the node
    CHECK(released() == std::vector<intptr_t>{7});
    fake::dispose(y);
    s = stats();
    CHECK_EQ(s.pooled_nodes, 1);
    CHECK_EQ(s.live_closures, 2);
    check_clean();
}

CA_TEST(apply_executable_forwards_non_differentiable_and_dirty) {
    init();
    ca_tensor x = fake::make(1);  // modified in place and returned
    ca_tensor idx = fake::make(20);
    applied a = apply(ca_intern("InPlace"), 3, {x}, true, {x, idx}, {idx}, {x});
    REQUIRE_EQ(a.status, CA_OK);
    CHECK_EQ(a.created, 1);
    fake::node* n = fake::last_node();
    CHECK(fake::w().last_wrap_non_diff == (std::vector<int>{20}));
    CHECK(fake::w().last_wrap_dirty == (std::vector<int>{1}));
    CHECK(fake::grad_fn_of(x) == n);  // the dirty input now hangs off the node
    CHECK(a.wrapped[0] == nullptr);   // modified in place: the same tensor
    CHECK(a.wrapped[1] == nullptr);   // non-differentiable: the same tensor, not connected
    CHECK(fake::grad_fn_of(idx) == nullptr);
    fake::dispose_all(a.wrapped);
    fake::dispose(idx);
    CHECK(released().empty());
    fake::dispose(x);
    CHECK(released() == std::vector<intptr_t>{3});
    check_clean();
}

CA_TEST(apply_output_that_is_an_input_gets_a_fresh_view) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied a = apply(ca_intern("Identity"), 4, {x}, true, {x, out});
    REQUIRE_EQ(a.status, CA_OK);
    fake::node* n = fake::last_node();
    REQUIRE(a.wrapped[0] != nullptr);  // a view of x, connected to the node
    CHECK(a.wrapped[0] != x);
    CHECK_EQ(fake::value_of(a.wrapped[0]), 1);
    CHECK(fake::grad_fn_of(a.wrapped[0]) == n);
    CHECK(fake::grad_fn_of(x) == nullptr);  // the input itself is untouched
    CHECK(a.wrapped[1] == nullptr);
    CHECK(fake::grad_fn_of(out) == n);

    // Not executable: the input still comes back as a view, without grad_fn.
    applied b = apply(ca_intern("Identity"), 5, {x}, false, {x});
    REQUIRE_EQ(b.status, CA_OK);
    REQUIRE(b.wrapped[0] != nullptr);
    CHECK(fake::grad_fn_of(b.wrapped[0]) == nullptr);

    fake::dispose_all(a.wrapped);
    fake::dispose_all(b.wrapped);
    CHECK(released().empty());
    fake::dispose(out);
    CHECK(released() == std::vector<intptr_t>{4});
    fake::dispose(x);
    check_clean();
}

CA_TEST(apply_node_without_differentiable_output_is_released_at_once) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied a = apply(ca_intern("Argmax"), 9, {x}, true, {out}, {out}, {}, {x});
    REQUIRE_EQ(a.status, CA_OK);
    CHECK_EQ(a.created, 1);
    fake::node* n = fake::last_node();
    // Nothing refers to the node: dropping the construction reference destroyed and released it.
    CHECK_EQ(n->on_delete_calls, 1);
    CHECK(released() == std::vector<intptr_t>{9});
    CHECK_EQ(n->weak_handles, 0);
    CHECK_EQ(fake::w().live_saved, 0);
    const ca_stats s = stats();
    CHECK_EQ(s.live_nodes, 0);
    CHECK_EQ(s.live_saved, 0);
    CHECK_EQ(s.pooled_nodes, 1);
    fake::dispose_all(a.wrapped);
    fake::dispose(out);
    fake::dispose(x);
    check_clean();
}

namespace {

// A failed executable ca_apply: CA_ERR_TORCH with libtorch's message, the managed state is not adopted
// (node_created 0, release never called, even once the node dies), no handle leaks, the record is pooled.
void check_failed_apply(const std::string& expected_message, bool node_expected, bool outputs_keep_node) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied a = apply(ca_intern("Broken"), 77, {x}, true, {out}, {}, {}, {x, out});
    CHECK_EQ(a.status, CA_ERR_TORCH);
    CHECK_EQ(a.error, expected_message);
    CHECK_EQ(a.created, 0);
    CHECK(a.wrapped[0] == nullptr);
    CHECK(!fake::error_pending());
    CHECK_EQ(fake::node_count(), node_expected ? 1 : 0);
    if (node_expected) {
        fake::node* n = fake::last_node();
        CHECK_EQ(n->shared_handles, 0);  // the construction reference was dropped
        CHECK_EQ(n->on_delete_calls, outputs_keep_node ? 0 : 1);
    }
    CHECK_EQ(fake::live_handles(), 2);  // only x and out: wrapped outputs were disposed

    fake::dispose(out);
    fake::dispose(x);
    CHECK(released().empty());  // the caller keeps its state
    ca_stats s = stats();
    CHECK_EQ(s.live_nodes, 0);
    CHECK_EQ(s.live_saved, 0);
    CHECK_EQ(s.pooled_nodes, 1);
    CHECK_EQ(s.live_closures, 2);
    CHECK_EQ(s.nodes_created, node_expected ? 1 : 0);
    check_clean();

    // The pooled record serves the next application, and this one succeeds.
    fake::w().fail_ctor.clear();
    fake::w().fail_set_next_edges.clear();
    fake::w().fail_clear_metadata.clear();
    fake::w().fail_wrap.clear();
    fake::w().fail_saved_ctor_at = -1;
    ca_tensor x2 = fake::make(2);
    ca_tensor out2 = fake::make(20);
    applied b = apply(ca_intern("Fine"), 78, {x2}, true, {out2}, {}, {}, {x2});
    REQUIRE_EQ(b.status, CA_OK);
    CHECK_EQ(b.created, 1);
    s = stats();
    CHECK_EQ(s.pooled_nodes, 0);
    CHECK_EQ(s.live_closures, 2);
    fake::dispose_all(b.wrapped);
    fake::dispose(out2);
    fake::dispose(x2);
    CHECK(released() == std::vector<intptr_t>{78});
    check_clean();
}

}  // namespace

CA_TEST(apply_fails_in_node_ctor) {
    fake::w().fail_ctor = "ctor failed";
    check_failed_apply("ctor failed", false, false);
}

CA_TEST(apply_fails_in_set_next_edges) {
    fake::w().fail_set_next_edges = "setNextEdges failed";
    check_failed_apply("setNextEdges failed", true, false);
}

CA_TEST(apply_fails_in_clear_input_metadata) {
    fake::w().fail_clear_metadata = "clearInputMetadata failed";
    check_failed_apply("clearInputMetadata failed", true, false);
}

CA_TEST(apply_fails_in_wrap_outputs) {
    fake::w().fail_wrap = "wrapOutputs failed";
    check_failed_apply("wrapOutputs failed", true, false);
}

CA_TEST(apply_fails_in_second_saved_variable) {
    // The first saved variable exists; the wrapped output is disposed; the caller's raw output keeps
    // the node alive until it is disposed, and then the node's release frees the saved variable.
    fake::w().fail_saved_ctor_at = 1;
    fake::w().fail_saved_ctor_message = "SavedVariable failed";
    check_failed_apply("SavedVariable failed", true, true);
}

CA_TEST(apply_fails_on_dirty_input_not_returned) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied a = apply(ca_intern("BadInPlace"), 5, {x}, true, {out}, {}, {x});
    CHECK_EQ(a.status, CA_ERR_TORCH);
    CHECK_CONTAINS(a.error, "marked as dirty during the forward method were not returned as output");
    CHECK_EQ(a.created, 0);
    fake::dispose(out);
    fake::dispose(x);
    CHECK(released().empty());
    check_clean();
}

// After a failure past wrapOutputs (here: saving a tensor), the node survives as long as something
// refers to it: the caller's raw outputs (borrowed by ca_apply) and, with mark_dirty, the caller's
// *input*, whose grad_fn is now this node. Its record has managed == 0, yet its apply is still live:
// a backward through that input calls the managed backward callback with state 0 (the managed side
// then fails in GCHandle.FromIntPtr(0), reports a confusing error and leaks the grads/saved it was
// handed). Fix: in apply_impl, when rec->managed == 0, dispose the grads and throw a runtime_error
// ("<name>: the forward of this function failed; it cannot be differentiated") without calling back.
CA_TEST(failed_apply_node_refuses_backward_without_calling_back) {
    init();
    fake::w().fail_saved_ctor_at = 0;
    fake::w().fail_saved_ctor_message = "SavedVariable failed";
    ca_tensor x = fake::make(1);
    applied a = apply(ca_intern("InPlaceBroken"), 77, {x}, true, {x}, {}, {x}, {x});
    REQUIRE_EQ(a.status, CA_ERR_TORCH);
    CHECK_EQ(a.created, 0);
    fake::node* n = fake::grad_fn_of(x);
    REQUIRE(n != nullptr);  // the caller's input now hangs off the failed node

    const int64_t live_before = fake::live_handles();
    fake::outcome o = fake::run_node(n, {5});
    CHECK_EQ(calls().size(), size_t{0});  // the managed callback must not run with state 0
    for (const auto& c : calls()) CHECK_NE(c.state, intptr_t{0});
    CHECK(o.threw);
    CHECK(o.runtime_error);
    ca_flush_thread();
    CHECK_EQ(fake::live_handles(), live_before);  // grads disposed, nothing returned
    fake::dispose(x);
    CHECK(released().empty());
    check_clean();
}
