// SPDX-License-Identifier: MIT
// ca_abi_version, ca_init and the calls made before it.
#include "support.h"

#include <cstring>
#include <functional>

using namespace support;

namespace {

void other_dispose(ca_tensor) {}
int32_t other_backward(intptr_t, ca_tensor*, int32_t, ca_tensor*, int32_t, ca_tensor*, uint8_t*, int32_t) {
    return CA_OK;
}
void other_release(intptr_t) {}

// A call to ca_apply that must be refused before the shim is initialised.
int32_t probe_apply() {
    ca_tensor in = fake::make(1);
    ca_tensor out = fake::make(2);
    ca_tensor wrapped = nullptr;
    int32_t created = 0;
    int32_t status = ca_apply("probe", 1, &in, 1, 1, &out, 1, nullptr, 0, nullptr, 0, nullptr, 0, &wrapped, &created);
    fake::dispose(in);
    fake::dispose(out);
    return status;
}

}  // namespace

CA_TEST(abi_version) { CHECK_EQ(ca_abi_version(), CA_ABI_VERSION); }

CA_TEST(calls_before_init_are_refused) {
    CHECK_EQ(probe_apply(), CA_ERR_NOT_INITIALIZED);
    CHECK_CONTAINS(ca_last_error(), "not initialised");

    ca_tensor out = fake::make(1);
    ca_tensor in = fake::make(2);
    ca_tensor result = nullptr;
    CHECK_EQ(ca_grad(&out, 1, &in, 1, nullptr, 0, 0, 0, 0, &result), CA_ERR_NOT_INITIALIZED);
    CHECK_CONTAINS(ca_last_error(), "not initialised");
    CHECK(result == nullptr);
    fake::dispose(out);
    fake::dispose(in);

    ca_flush_thread();  // harmless
    ca_get_stats(nullptr);
    const ca_stats s = stats();
    CHECK_EQ(s.live_nodes, 0);
    CHECK_EQ(s.live_closures, 0);
    CHECK_EQ(s.nodes_created, 0);
    CHECK(fake::w().log.empty());  // the (unset) table was never used
    check_clean();
}

CA_TEST(init_rejects_null_arguments) {
    ca_torch_api api = fake::table();
    CHECK_EQ(ca_init(nullptr, backward_cb, release_cb), CA_ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(ca_last_error(), "ca_init: the function table and both callbacks are required");
    CHECK_EQ(ca_init(&api, nullptr, release_cb), CA_ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(ca_last_error(), "both callbacks are required");
    CHECK_EQ(ca_init(&api, backward_cb, nullptr), CA_ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(ca_last_error(), "both callbacks are required");
    CHECK_EQ(probe_apply(), CA_ERR_NOT_INITIALIZED);  // a refused init leaves the shim uninitialised

    CHECK_EQ(ca_init(&api, backward_cb, release_cb), CA_OK);
    check_clean();
}

CA_TEST(init_rejects_wrong_struct_size) {
    ca_torch_api api = fake::table();
    const int32_t right = api.struct_size;
    for (int32_t size : {0, right - 8, right + 8, -1}) {
        api.struct_size = size;
        CHECK_EQ(ca_init(&api, backward_cb, release_cb), CA_ERR_INVALID_ARGUMENT);
        CHECK_CONTAINS(ca_last_error(), "function table size mismatch");
        CHECK_CONTAINS(ca_last_error(), "managed " + std::to_string(size) + " bytes");
        CHECK_CONTAINS(ca_last_error(), "native " + std::to_string(right) + " bytes");
    }
    CHECK_EQ(probe_apply(), CA_ERR_NOT_INITIALIZED);
    api.struct_size = right;
    CHECK_EQ(ca_init(&api, backward_cb, release_cb), CA_OK);
    check_clean();
}

CA_TEST(init_rejects_each_null_entry) {
    // In field order: the index is the one ca_init reports.
    const std::vector<std::function<void(ca_torch_api&)>> clear = {
        [](ca_torch_api& a) { a.THSTorch_get_and_reset_last_err = nullptr; },
        [](ca_torch_api& a) { a.THSTensor_dispose = nullptr; },
        [](ca_torch_api& a) { a.THSAutograd_CSharpNode_ctor = nullptr; },
        [](ca_torch_api& a) { a.THSAutograd_CSharpNode_disposeSharedPtr = nullptr; },
        [](ca_torch_api& a) { a.THSAutograd_CSharpNode_disposeWeakPtr = nullptr; },
        [](ca_torch_api& a) { a.THSAutograd_CSharpNode_setNextEdges = nullptr; },
        [](ca_torch_api& a) { a.THSAutograd_CSharpNode_clearInputMetadata = nullptr; },
        [](ca_torch_api& a) { a.THSAutograd_Function_wrapOutputs = nullptr; },
        [](ca_torch_api& a) { a.THSAutograd_SavedVariable_ctor = nullptr; },
        [](ca_torch_api& a) { a.THSAutograd_SavedVariable_dispose = nullptr; },
        [](ca_torch_api& a) { a.THSAutograd_SavedVariable_unpack = nullptr; },
        [](ca_torch_api& a) { a.THSAutograd_SavedVariable_reset_data = nullptr; },
        [](ca_torch_api& a) { a.THSAutograd_grad = nullptr; },
    };
    for (size_t i = 0; i < clear.size(); ++i) {
        ca_torch_api api = fake::table();
        clear[i](api);
        CHECK_EQ(ca_init(&api, backward_cb, release_cb), CA_ERR_INVALID_ARGUMENT);
        CHECK_CONTAINS(ca_last_error(), "ca_init: function table entry " + std::to_string(i) + " is null");
    }
    CHECK_EQ(probe_apply(), CA_ERR_NOT_INITIALIZED);

    // The keep_graph query is optional.
    ca_torch_api api = fake::table();
    api.get_current_graph_task_keep_graph = nullptr;
    CHECK_EQ(ca_init(&api, backward_cb, release_cb), CA_OK);
    check_clean();
}

CA_TEST(init_is_idempotent_and_refuses_a_different_table) {
    ca_torch_api api = fake::table();
    REQUIRE_EQ(ca_init(&api, backward_cb, release_cb), CA_OK);
    CHECK_EQ(ca_init(&api, backward_cb, release_cb), CA_OK);  // same table
    ca_torch_api copy = api;
    CHECK_EQ(ca_init(&copy, backward_cb, release_cb), CA_OK);  // a copy of it

    ca_torch_api different = api;
    different.THSTensor_dispose = other_dispose;
    CHECK_EQ(ca_init(&different, backward_cb, release_cb), CA_ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(ca_last_error(), "already initialised with a different function table");

    ca_torch_api no_keep_graph = api;
    no_keep_graph.get_current_graph_task_keep_graph = nullptr;
    CHECK_EQ(ca_init(&no_keep_graph, backward_cb, release_cb), CA_ERR_INVALID_ARGUMENT);

    CHECK_EQ(ca_init(&api, other_backward, release_cb), CA_ERR_INVALID_ARGUMENT);
    CHECK_EQ(ca_init(&api, backward_cb, other_release), CA_ERR_INVALID_ARGUMENT);

    // The first table and callbacks are still the ones in use.
    ca_tensor x = fake::make(1);
    ca_tensor out = fake::make(2);
    applied a = apply(ca_intern("F"), 11, {x}, true, {out});
    REQUIRE_EQ(a.status, CA_OK);
    fake::outcome o = fake::run_node(fake::last_node(), {5});
    CHECK(!o.threw);
    CHECK_EQ(calls().size(), size_t{1});
    ca_flush_thread();  // the owned result goes through the first table's THSTensor_dispose
    fake::dispose_all(a.wrapped);
    fake::dispose(out);
    fake::dispose(x);
    CHECK(released() == std::vector<intptr_t>{11});
    check_clean();
}

// ca_init compares the tables with memcmp over sizeof(ca_torch_api), padding included: on LP64 there
// are 4 bytes of padding after `struct_size`. Two tables with equal fields but different padding bytes
// (e.g. a table built in an uninitialised local, or marshalled twice) are "identical arguments" per the
// header ("Idempotent for identical arguments"), yet the second ca_init is refused.
// Fix: compare field by field (or memcmp after the padding: offsetof(ca_torch_api, THSTorch_get_and_reset_last_err)).
CA_TEST(init_ignores_struct_padding) {
    const ca_torch_api reference = fake::table();
    ca_torch_api a;
    ca_torch_api b;
    std::memset(&a, 0x00, sizeof(a));
    std::memset(&b, 0xAB, sizeof(b));
    for (ca_torch_api* t : {&a, &b}) {
        t->struct_size = reference.struct_size;
        t->THSTorch_get_and_reset_last_err = reference.THSTorch_get_and_reset_last_err;
        t->THSTensor_dispose = reference.THSTensor_dispose;
        t->THSAutograd_CSharpNode_ctor = reference.THSAutograd_CSharpNode_ctor;
        t->THSAutograd_CSharpNode_disposeSharedPtr = reference.THSAutograd_CSharpNode_disposeSharedPtr;
        t->THSAutograd_CSharpNode_disposeWeakPtr = reference.THSAutograd_CSharpNode_disposeWeakPtr;
        t->THSAutograd_CSharpNode_setNextEdges = reference.THSAutograd_CSharpNode_setNextEdges;
        t->THSAutograd_CSharpNode_clearInputMetadata = reference.THSAutograd_CSharpNode_clearInputMetadata;
        t->THSAutograd_Function_wrapOutputs = reference.THSAutograd_Function_wrapOutputs;
        t->THSAutograd_SavedVariable_ctor = reference.THSAutograd_SavedVariable_ctor;
        t->THSAutograd_SavedVariable_dispose = reference.THSAutograd_SavedVariable_dispose;
        t->THSAutograd_SavedVariable_unpack = reference.THSAutograd_SavedVariable_unpack;
        t->THSAutograd_SavedVariable_reset_data = reference.THSAutograd_SavedVariable_reset_data;
        t->THSAutograd_grad = reference.THSAutograd_grad;
        t->THSAutograd_backward = reference.THSAutograd_backward;
        t->get_current_graph_task_keep_graph = reference.get_current_graph_task_keep_graph;
        t->Engine_get_default_engine = reference.Engine_get_default_engine;
        t->Engine_queue_callback = reference.Engine_queue_callback;
        t->THSTensor_numel = reference.THSTensor_numel;
        t->THSTensor_element_size = reference.THSTensor_element_size;
        t->THSTensor_device_type = reference.THSTensor_device_type;
        t->THSTensor_requires_grad = reference.THSTensor_requires_grad;
        t->caching_set_cached_tensors_enabled = reference.caching_set_cached_tensors_enabled;
        t->caching_add_cached_tensor = reference.caching_add_cached_tensor;
        t->caching_remove_cached_tensor = reference.caching_remove_cached_tensor;
    }
    REQUIRE_EQ(ca_init(&a, backward_cb, release_cb), CA_OK);
    // Every field is equal...
    CHECK(a.THSAutograd_grad == b.THSAutograd_grad && a.struct_size == b.struct_size);
    // ... so re-initialising with b must be accepted.
    CHECK_EQ(ca_init(&b, backward_cb, release_cb), CA_OK);
}
