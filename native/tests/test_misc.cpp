// SPDX-License-Identifier: MIT
// ca_shutdown, ca_intern, ca_grad, ca_get_stats, and the error strings the shim takes from LibTorchSharp.
#include "support.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

// LeakSanitizer does not scan libffi's closure pages, so a node record leaked on purpose at shutdown (only
// its closures point to it) is reported as a leak there; valgrind, which scans them, sees it as reachable.
#if defined(__SANITIZE_ADDRESS__)
#define CA_TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CA_TEST_LSAN 1
#endif
#endif
#if defined(CA_TEST_LSAN)
#include <sanitizer/lsan_interface.h>
#define CA_LSAN_DISABLE() __lsan_disable()
#define CA_LSAN_ENABLE() __lsan_enable()
#else
#define CA_LSAN_DISABLE() (void)0
#define CA_LSAN_ENABLE() (void)0
#endif

using namespace support;

CA_TEST(shutdown_makes_everything_inert) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    CA_LSAN_DISABLE();  // this node's record is leaked on purpose below (see CA_TEST_LSAN)
    applied a = apply(ca_intern("Late"), 5, {x}, true, {out}, {}, {}, {x});
    CA_LSAN_ENABLE();
    REQUIRE_EQ(a.status, CA_OK);
    fake::node* n = fake::last_node();
    ca_tensor retired = fake::make(100);
    managed().behaviour = [&](intptr_t, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved,
                              ca_tensor* res, uint8_t* own, int32_t) -> int32_t {
        dispose_inputs(grads, n_grads, saved, n_saved);
        res[0] = retired;
        own[0] = 1;
        return CA_OK;
    };
    CHECK(!fake::run_node(n, {7}).threw);  // `retired` now waits for the next flush on this thread

    ca_shutdown();
    const size_t log_before = fake::w().log.size();

    ca_tensor y = fake::make(2);
    ca_tensor yo = fake::make(20);
    applied b = apply(ca_intern("TooLate"), 6, {y}, true, {yo});
    CHECK_EQ(b.status, CA_ERR_SHUTDOWN);
    CHECK_CONTAINS(b.error, "shutting down");
    ca_tensor result = nullptr;
    CHECK_EQ(ca_grad(&yo, 1, &y, 1, nullptr, 0, 0, 0, 0, &result), CA_ERR_SHUTDOWN);

    // The node's apply refuses to call back into a runtime that is going away.
    fake::outcome o = fake::run_node(n, {7});
    CHECK(o.threw);
    CHECK(o.runtime_error);
    CHECK_CONTAINS(o.what, "Late: the process is shutting down");
    CHECK_EQ(calls().size(), size_t{1});
    CHECK_EQ(stats().backward_calls, 1);

    // Retired handles are no longer disposed (leaked on purpose).
    ca_flush_thread();
    CHECK(fake::is_live(retired));

    // The release does nothing: no release callback, saved variables and weak_ptr left alone.
    fake::dispose_all(a.wrapped);
    fake::dispose(out);
    CHECK_EQ(n->on_delete_calls, 1);
    CHECK(released().empty());
    CHECK_EQ(fake::w().live_saved, 1);
    CHECK_EQ(n->weak_handles, 1);
    CHECK_EQ(fake::w().log.size(), log_before);  // nothing at all reached libtorch since ca_shutdown
    check_no_misuse();
    for (ca_tensor t : {x, y, yo}) fake::dispose(t);
}

CA_TEST(intern_returns_one_pointer_per_string) {
    char buffer[] = "Square";
    const std::string same = "Square";
    const char* a = ca_intern(buffer);
    const char* b = ca_intern(same.c_str());
    REQUIRE(a != nullptr);
    CHECK(a == b);
    CHECK(a != buffer);
    CHECK_STREQ(a, "Square");
    buffer[0] = 'X';  // the interned copy does not depend on the argument
    CHECK_STREQ(a, "Square");
    const char* c = ca_intern("Cube");
    CHECK(c != a);
    CHECK_STREQ(c, "Cube");
    CHECK(ca_intern("Square") == a);
    const char* empty = ca_intern(nullptr);
    REQUIRE(empty != nullptr);
    CHECK_STREQ(empty, "");
    CHECK(ca_intern("") == empty);
}

CA_TEST(grad_returns_fresh_results) {
    init();
    ca_tensor y = fake::make(10);
    ca_tensor x0 = fake::make(1);
    ca_tensor x1 = fake::make(2);
    ca_tensor gy = fake::make(50);
    std::vector<int> seen_outputs, seen_inputs, seen_grads;
    bool flags[3] = {false, false, false};
    fake::w().grad = [&](ca_tensor* outputs, int64_t n_outputs, ca_tensor* inputs, int64_t n_inputs,
                         ca_tensor* grad_outputs, int64_t n_grad_outputs, bool retain, bool create, bool unused,
                         ca_ts_allocator_fn allocator) {
        for (int64_t i = 0; i < n_outputs; ++i) seen_outputs.push_back(fake::value_of(outputs[i]));
        for (int64_t i = 0; i < n_inputs; ++i) seen_inputs.push_back(fake::value_of(inputs[i]));
        for (int64_t i = 0; i < n_grad_outputs; ++i) seen_grads.push_back(fake::value_of(grad_outputs[i]));
        flags[0] = retain;
        flags[1] = create;
        flags[2] = unused;
        ca_tensor* result = allocator(static_cast<size_t>(n_inputs));
        result[0] = fake::make(300);
        result[1] = nullptr;  // unused input
    };
    ca_tensor outputs[1] = {y};
    ca_tensor inputs[2] = {x0, x1};
    ca_tensor grads[1] = {gy};
    ca_tensor results[2] = {reinterpret_cast<ca_tensor>(0x1), reinterpret_cast<ca_tensor>(0x1)};
    REQUIRE_EQ(ca_grad(outputs, 1, inputs, 2, grads, 1, 1, 0, 1, results), CA_OK);
    CHECK(seen_outputs == std::vector<int>{10});
    CHECK(seen_inputs == (std::vector<int>{1, 2}));
    CHECK(seen_grads == std::vector<int>{50});
    CHECK(flags[0] && !flags[1] && flags[2]);
    CHECK_EQ(fake::value_of(results[0]), 300);
    CHECK(results[1] == nullptr);
    fake::dispose(results[0]);
    for (ca_tensor t : {y, x0, x1, gy}) fake::dispose(t);
    check_clean();
}

CA_TEST(grad_rejects_invalid_arguments) {
    init();
    ca_tensor t = fake::make(1);
    ca_tensor result = nullptr;
    CHECK_EQ(ca_grad(&t, 1, &t, 1, nullptr, 0, 0, 0, 0, nullptr), CA_ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(ca_last_error(), "ca_grad: invalid array or count");
    CHECK_EQ(ca_grad(nullptr, 1, &t, 1, nullptr, 0, 0, 0, 0, &result), CA_ERR_INVALID_ARGUMENT);
    CHECK_EQ(ca_grad(&t, -1, &t, 1, nullptr, 0, 0, 0, 0, &result), CA_ERR_INVALID_ARGUMENT);
    CHECK_EQ(ca_grad(&t, 1, &t, 1, nullptr, 1, 0, 0, 0, &result), CA_ERR_INVALID_ARGUMENT);
    CHECK_EQ(fake::w().grad_calls, 0);
    fake::dispose(t);
    check_clean();
}

CA_TEST(grad_reports_a_libtorch_exception) {
    init();
    fake::w().grad = [](ca_tensor*, int64_t, ca_tensor*, int64_t, ca_tensor*, int64_t, bool, bool, bool,
                        ca_ts_allocator_fn) {
        throw std::runtime_error("One of the differentiated Tensors appears to not have been used in the graph.");
    };
    ca_tensor y = fake::make(10);
    ca_tensor x = fake::make(1);
    ca_tensor result = nullptr;
    CHECK_EQ(ca_grad(&y, 1, &x, 1, nullptr, 0, 0, 0, 0, &result), CA_ERR_TORCH);
    CHECK_STREQ(ca_last_error(), "One of the differentiated Tensors appears to not have been used in the graph.");
    CHECK(result == nullptr);

    // Something that is not a std::exception is still caught.
    fake::w().grad = [](ca_tensor*, int64_t, ca_tensor*, int64_t, ca_tensor*, int64_t, bool, bool, bool,
                        ca_ts_allocator_fn) { throw 42; };
    CHECK_EQ(ca_grad(&y, 1, &x, 1, nullptr, 0, 0, 0, 0, &result), CA_ERR_INTERNAL);
    CHECK_CONTAINS(ca_last_error(), "ca_grad: unknown native error");
    fake::dispose(y);
    fake::dispose(x);
    check_clean();
}

CA_TEST(grad_reports_a_pending_error) {
    init();
    fake::w().grad = [](ca_tensor*, int64_t, ca_tensor*, int64_t, ca_tensor*, int64_t, bool, bool, bool,
                        ca_ts_allocator_fn allocator) {
        allocator(1)[0] = nullptr;
        fake::set_error("element 0 of tensors does not require grad");
    };
    ca_tensor y = fake::make(10);
    ca_tensor x = fake::make(1);
    ca_tensor result = nullptr;
    CHECK_EQ(ca_grad(&y, 1, &x, 1, nullptr, 0, 0, 0, 0, &result), CA_ERR_TORCH);
    CHECK_STREQ(ca_last_error(), "grad: element 0 of tensors does not require grad");
    CHECK(!fake::error_pending());
    fake::dispose(y);
    fake::dispose(x);
    check_clean();
}

// A failing backward inside grad(): the node's runtime_error unwinds through the libffi closure, out of
// the engine (here: the fake THSAutograd_grad, which has no error guard) and is turned into a status.
CA_TEST(grad_reports_a_failing_backward) {
    init();
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied a = apply(ca_intern("Boom"), 4, {x}, true, {out}, {}, {}, {x});
    REQUIRE_EQ(a.status, CA_OK);
    fake::node* n = fake::last_node();
    managed().behaviour = [](intptr_t, ca_tensor* grads, int32_t n_grads, ca_tensor* saved, int32_t n_saved, ca_tensor*,
                             uint8_t*, int32_t) -> int32_t {
        dispose_inputs(grads, n_grads, saved, n_saved);
        ca_set_callback_error("Boom: the Backward failed: ArgumentException: bad shape");
        return CA_ERR_CALLBACK;
    };
    fake::w().grad = [n](ca_tensor*, int64_t, ca_tensor*, int64_t n_inputs, ca_tensor*, int64_t, bool, bool, bool,
                         ca_ts_allocator_fn allocator) {
        fake::run_node_rethrow(n, {1});
        allocator(static_cast<size_t>(n_inputs));
    };
    ca_tensor result = nullptr;
    CHECK_EQ(ca_grad(&out, 1, &x, 1, nullptr, 0, 0, 0, 0, &result), CA_ERR_TORCH);
    CHECK_STREQ(ca_last_error(), "Boom: the Backward failed: ArgumentException: bad shape");
    CHECK(result == nullptr);
    CHECK_EQ(stats().backward_failures, 1);

    // The shim still works afterwards.
    managed().behaviour = nullptr;
    fake::w().grad = [n](ca_tensor*, int64_t, ca_tensor*, int64_t n_inputs, ca_tensor*, int64_t, bool, bool, bool,
                         ca_ts_allocator_fn allocator) {
        fake::outcome o = fake::run_node_rethrow(n, {1});
        ca_tensor* r = allocator(static_cast<size_t>(n_inputs));
        r[0] = fake::make(o.values.at(0));  // libtorch's copy of the node's result
    };
    REQUIRE_EQ(ca_grad(&out, 1, &x, 1, nullptr, 0, 0, 0, 0, &result), CA_OK);
    CHECK_EQ(fake::value_of(result), 100);
    fake::dispose(result);
    ca_flush_thread();
    fake::dispose_all(a.wrapped);
    fake::dispose(out);
    fake::dispose(x);
    check_clean();
}

CA_TEST(stats_accepts_null_and_counts) {
    ca_get_stats(nullptr);
    init();
    const ca_stats s = stats();
    CHECK_EQ(s.live_nodes, 0);
    CHECK_EQ(s.backward_calls, 0);
}

// THSTorch_get_and_reset_last_err hands its message to the caller, which must free() it (the shim's
// check_torch does). Four places discard it instead: `(void)G.torch.THSTorch_get_and_reset_last_err();`
// in node.cpp after reset_data (apply_impl), after disposeWeakPtr (release_handler), and after
// disposeSharedPtr (both exits of apply). Any message pending there leaks. Low impact (LibTorchSharp
// rarely fails in those calls), but it is a leak; fix: `std::free(const_cast<char*>(...))` the result.
// Shown here through reset_data failing with a 1 MiB message. In-process the leak is measured with
// glibc's mallinfo2 (a 1 MiB block is mmapped); under valgrind or ASan, where mallinfo2 says nothing,
// the leak checker reports it (and this test then fails under them instead).
CA_TEST(discarded_torch_errors_are_freed) {
    init();
    fake::w().keep_graph = false;
    fake::w().fail_reset_data = std::string(1 << 20, 'e');
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(10);
    applied a = apply(ca_intern("Leaky"), 4, {x}, true, {out}, {}, {}, {x});
    REQUIRE_EQ(a.status, CA_OK);

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    // Bytes in use, from the heap or mmapped (glibc moves its mmap threshold, so count both).
    auto in_use = [] {
        const struct mallinfo2 mi = mallinfo2();
        return mi.uordblks + mi.hblkhd;
    };
    // Through volatile pointers, so that an optimiser cannot elide the pair.
    void* (*volatile do_malloc)(size_t) = std::malloc;
    void (*volatile do_free)(void*) = std::free;
    void* probe = do_malloc(1 << 20);
    const size_t with_probe = in_use();
    do_free(probe);
    const size_t before = in_use();
    const bool measurable = with_probe >= before + (1 << 20);
#else
    const size_t before = 0;
    const bool measurable = false;
#endif

    fake::outcome o = fake::run_node(fake::last_node(), {5});
    CHECK(!o.threw);  // the reset_data failure is ignored, as intended
    CHECK_EQ(fake::w().saved[0]->reset_calls, 1);
    CHECK_EQ(fake::w().errors_taken, fake::w().errors_set);  // the shim took the message...
    CHECK(!fake::error_pending());

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    if (measurable) {
        const size_t after = in_use();
        CHECK(after < before + (1 << 19));  // ... and must have freed it (1 MiB)
        if (after >= before + (1 << 19)) std::printf("%zu bytes more in use after the backward\n", after - before);
    } else {
        std::printf("mallinfo2 is not informative here (valgrind/ASan?): the leak checker decides\n");
    }
#else
    (void)before;
    (void)measurable;
#endif

    ca_flush_thread();
    fake::dispose_all(a.wrapped);
    fake::dispose(out);
    fake::dispose(x);
    check_clean();
}

CA_TEST(backward_passes_every_argument_and_reports_a_libtorch_error) {
    init();
    std::vector<int> seen_tensors, seen_grads, seen_inputs;
    bool seen_retain = false, seen_create = true;
    fake::w().backward = [&](ca_tensor* tensors, int64_t n_tensors, ca_tensor* grad_tensors, int64_t n_grad_tensors,
                             bool retain, bool create, ca_tensor* inputs, int64_t n_inputs) {
        for (int64_t i = 0; i < n_tensors; ++i) seen_tensors.push_back(fake::value_of(tensors[i]));
        for (int64_t i = 0; i < n_grad_tensors; ++i) seen_grads.push_back(fake::value_of(grad_tensors[i]));
        for (int64_t i = 0; i < n_inputs; ++i) seen_inputs.push_back(fake::value_of(inputs[i]));
        seen_retain = retain;
        seen_create = create;
    };
    ca_tensor y = fake::make(10);
    ca_tensor g = fake::make(50);
    ca_tensor x = fake::make(1);
    REQUIRE_EQ(ca_backward(&y, 1, &g, 1, 1, 0, &x, 1), CA_OK);
    CHECK(seen_tensors == std::vector<int>{10});
    CHECK(seen_grads == std::vector<int>{50});
    CHECK(seen_inputs == std::vector<int>{1});
    CHECK(seen_retain);
    CHECK(!seen_create);

    fake::w().backward = [](ca_tensor*, int64_t, ca_tensor*, int64_t, bool, bool, ca_tensor*, int64_t) {
        throw std::runtime_error("MyFn: System.InvalidOperationException: boom");
    };
    CHECK_EQ(ca_backward(&y, 1, nullptr, 0, 0, 0, nullptr, 0), CA_ERR_TORCH);
    CHECK_STREQ(ca_last_error(), "MyFn: System.InvalidOperationException: boom");
    CHECK(!fake::error_pending());

    CHECK_EQ(ca_backward(&y, 1, &g, 2, 0, 0, nullptr, 0), CA_ERR_INVALID_ARGUMENT);
    CHECK_EQ(ca_backward(nullptr, 1, nullptr, 0, 0, 0, nullptr, 0), CA_ERR_INVALID_ARGUMENT);
    CHECK_EQ(fake::w().backward_calls, 2);
    fake::dispose(y);
    fake::dispose(g);
    fake::dispose(x);
    check_clean();
}
