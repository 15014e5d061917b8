// SPDX-License-Identifier: MIT
// The test runner.
//   ca_native_tests NAME      runs one test in this process (what CTest does)
//   ca_native_tests --list    prints the test names
//   ca_native_tests           runs every test, each in a child process (POSIX only)
#include "harness.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#if !defined(_WIN32)
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace ca_test {

namespace {
std::map<std::string, test_fn>& tests() {
    static auto* all = new std::map<std::string, test_fn>();
    return *all;
}
int g_failures = 0;
}  // namespace

void register_test(const char* name, test_fn fn) { tests()[name] = fn; }

void report_failure(const char* file, int line, const std::string& message) {
    ++g_failures;
    std::fprintf(stderr, "%s:%d: FAILED\n      %s\n", file, line, message.c_str());
    std::fflush(stderr);
}

}  // namespace ca_test

namespace {

int run_one(const std::string& name) {
    auto it = ca_test::tests().find(name);
    if (it == ca_test::tests().end()) {
        std::fprintf(stderr, "unknown test '%s' (see --list)\n", name.c_str());
        return 2;
    }
    try {
        it->second();
    } catch (const ca_test::fatal_failure&) {
        // already reported
    } catch (const std::exception& e) {
        ca_test::report_failure(__FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
    } catch (...) {
        ca_test::report_failure(__FILE__, __LINE__, "unexpected non-standard exception");
    }
    std::printf("[%s] %s\n", ca_test::g_failures == 0 ? "  OK  " : "FAILED", name.c_str());
    return ca_test::g_failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1) {
        std::string arg = argv[1];
        if (arg == "--list") {
            for (const auto& t : ca_test::tests()) std::printf("%s\n", t.first.c_str());
            return 0;
        }
        return run_one(arg);
    }
#if defined(_WIN32)
    std::fprintf(stderr, "run one test by name (ctest does)\n");
    return 2;
#else
    int failed = 0;
    for (const auto& t : ca_test::tests()) {
        std::fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) _exit(run_one(t.first));
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            ++failed;
            if (!WIFEXITED(status)) std::printf("[CRASH ] %s\n", t.first.c_str());
        }
    }
    std::printf("%d of %zu tests failed\n", failed, ca_test::tests().size());
    return failed == 0 ? 0 : 1;
#endif
}
