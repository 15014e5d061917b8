// SPDX-License-Identifier: MIT
// A tiny test harness (no external dependency).
//
//   CA_TEST(name) { ... }    defines a test. CMake scans the sources for lines that start with
//                            "CA_TEST(" and registers one CTest test per name, each running in its own
//                            process (`ca_native_tests <name>`): the shim's state (ca_init, ca_shutdown)
//                            is process-wide and cannot be reset.
//   CHECK(cond), CHECK_EQ(a, b), CHECK_NE, CHECK_STREQ, CHECK_CONTAINS: record a failure and go on.
//   REQUIRE(cond), REQUIRE_EQ(a, b): record a failure and stop the test.
//
// Tests whose name starts with "known_bug_" document a defect of the shim: they fail until it is fixed
// and carry the CTest label "known_bug" (`ctest -LE known_bug` leaves them out).
#pragma once

#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>

namespace ca_test {

using test_fn = void (*)();

void register_test(const char* name, test_fn fn);
void report_failure(const char* file, int line, const std::string& message);

struct registrar {
    registrar(const char* name, test_fn fn) { register_test(name, fn); }
};

// Thrown by REQUIRE to abandon the current test.
struct fatal_failure {};

template <typename T>
std::string show(const T& value) {
    std::ostringstream out;
    if constexpr (std::is_same_v<T, std::nullptr_t>) {
        out << "nullptr";
    } else if constexpr (std::is_pointer_v<T> && !std::is_same_v<std::decay_t<T>, const char*> &&
                         !std::is_same_v<std::decay_t<T>, char*>) {
        out << static_cast<const void*>(value);
    } else if constexpr (std::is_same_v<T, bool>) {
        out << (value ? "true" : "false");
    } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
        out << static_cast<int>(value);
    } else {
        out << value;
    }
    return out.str();
}

inline std::string show_str(const char* s) {
    return s == nullptr ? std::string("(null)") : "\"" + std::string(s) + "\"";
}

inline std::string text_of(const char* s) { return s == nullptr ? std::string() : std::string(s); }
inline std::string text_of(const std::string& s) { return s; }

}  // namespace ca_test

#define CA_TEST(name)                                                 \
    static void name();                                               \
    static const ::ca_test::registrar name##_registrar(#name, &name); \
    static void name()

#define CA_FAIL_(fatal, msg)                                  \
    do {                                                      \
        ::ca_test::report_failure(__FILE__, __LINE__, (msg)); \
        if (fatal) throw ::ca_test::fatal_failure{};          \
    } while (0)

#define CA_CHECK_(fatal, cond)                                           \
    do {                                                                 \
        if (!(cond)) CA_FAIL_(fatal, std::string("expected: ") + #cond); \
    } while (0)

#define CA_CHECK_OP_(fatal, a, op, b)                                                          \
    do {                                                                                       \
        const auto ca_a_ = (a);                                                                \
        const auto ca_b_ = (b);                                                                \
        if (!(ca_a_ op ca_b_))                                                                 \
            CA_FAIL_(fatal, std::string("expected: ") + #a " " #op " " #b "\n      actual: " + \
                                ::ca_test::show(ca_a_) + " vs " + ::ca_test::show(ca_b_));     \
    } while (0)

#define CHECK(cond) CA_CHECK_(false, cond)
#define REQUIRE(cond) CA_CHECK_(true, cond)
#define CHECK_EQ(a, b) CA_CHECK_OP_(false, a, ==, b)
#define CHECK_NE(a, b) CA_CHECK_OP_(false, a, !=, b)
#define REQUIRE_EQ(a, b) CA_CHECK_OP_(true, a, ==, b)

#define CHECK_STREQ(a, b)                                                                                              \
    do {                                                                                                               \
        const char* ca_a_ = (a);                                                                                       \
        const char* ca_b_ = (b);                                                                                       \
        if (ca_a_ == nullptr || ca_b_ == nullptr || std::strcmp(ca_a_, ca_b_) != 0)                                    \
            CA_FAIL_(false, std::string("expected: ") + #a " == " #b "\n      actual: " + ::ca_test::show_str(ca_a_) + \
                                " vs " + ::ca_test::show_str(ca_b_));                                                  \
    } while (0)

#define CHECK_CONTAINS(haystack, needle)                                                                             \
    do {                                                                                                             \
        const std::string ca_h_ = ::ca_test::text_of(haystack);                                                      \
        const std::string ca_n_ = (needle);                                                                          \
        if (ca_h_.find(ca_n_) == std::string::npos)                                                                  \
            CA_FAIL_(false, std::string("expected ") + #haystack " to contain \"" + ca_n_ + "\"\n      actual: \"" + \
                                ca_h_ + "\"");                                                                       \
    } while (0)
