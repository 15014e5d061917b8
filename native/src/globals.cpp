// SPDX-License-Identifier: MIT
// Process-wide state, the thread-local error slots and the thread-local buffers.
#include "shim.h"

#include <cstdio>
#include <cstring>
#include <vector>

namespace custom_autograd {

globals& g() {
    // Intentionally leaked: node releases can run during static destruction at process exit.
    static globals* instance = new globals();
    return *instance;
}

namespace {
thread_local std::string t_last_error;
// Used instead of t_last_error when a message could not be copied: no allocation.
thread_local char t_static_error[160];
thread_local bool t_use_static_error = false;
thread_local std::string t_callback_error;
thread_local std::vector<ca_tensor> t_result_buffer;
}  // namespace

void set_last_error_static(const char* context, const char* message) noexcept {
    std::snprintf(t_static_error, sizeof(t_static_error), "%s: %s", context, message);
    t_use_static_error = true;
}

void set_last_error(const char* message) noexcept {
    try {
        t_last_error = message != nullptr ? message : "unknown error";
        t_use_static_error = false;
    } catch (...) {
        set_last_error_static("CustomAutograd native shim", "out of memory while recording an error message");
    }
}

void set_last_error(const std::string& message) noexcept { set_last_error(message.c_str()); }

std::string take_callback_error() {
    std::string message;
    message.swap(t_callback_error);
    return message;
}

void check_torch(const char* context) {
    const char* err = g().torch.THSTorch_get_and_reset_last_err();
    if (err == nullptr) return;
    std::string message = context != nullptr && *context != '\0' ? std::string(context) + ": " + err : std::string(err);
    // LibTorchSharp allocates the message with strdup and hands ownership to the caller.
    std::free(const_cast<char*>(err));
    throw std::runtime_error(message);
}

void discard_torch_error() noexcept {
    // LibTorchSharp allocates the message with strdup and hands ownership to the caller.
    std::free(const_cast<char*>(g().torch.THSTorch_get_and_reset_last_err()));
}

ca_tensor* allocate_result_buffer(size_t length) {
    t_result_buffer.assign(length, nullptr);
    return t_result_buffer.data();
}

ca_tensor* result_buffer() { return t_result_buffer.data(); }

}  // namespace custom_autograd

extern "C" CA_EXPORT const char* ca_last_error(void) {
    return custom_autograd::t_use_static_error ? custom_autograd::t_static_error
                                               : custom_autograd::t_last_error.c_str();
}

extern "C" CA_EXPORT void ca_set_callback_error(const char* message) {
    try {
        custom_autograd::t_callback_error = message != nullptr ? message : "unknown error";
    } catch (...) {
        // Out of memory while copying a message: the status code still reports the failure.
    }
}
