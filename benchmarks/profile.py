#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Profile helpers for the benchmark program's --thread-time mode (tooling only; see benchmarks/README.md, "Profiles").

  profile.py callgrind A1 A3 B1 B3 --ops N
      What row B adds over row A, per operation, by object file and by function (exclusive instruction counts, Ir).
      A1/A3 (B1/B3) are callgrind outputs of the same row run with --thread-time 1 and 3 and a fixed --batch: the
      difference of the two runs is exactly 2 rounds of the batch, N = 2 * batch operations, free of start-up work.
      Run under DOTNET_TieredCompilation=0 so that no method is recompiled between the two runs. Code the JIT
      produced has no symbol: it shows as "???".

  profile.py perf DATA LOG
      Milliseconds per operation by category (matmul, page faults in the kernel, elementwise kernels, ...) of a
      `perf record -k CLOCK_MONOTONIC -e cpu-clock` profile, cut to the measured rounds that the benchmark's LOG
      reports, and to the measuring thread (libtorch runs the CPU work of a backward pass on the calling thread).
"""
import collections
import re
import subprocess
import sys


def callgrind_self_costs(path):
    """Exclusive Ir per (object, function) of a callgrind output file (name compression resolved)."""
    names = {"ob": {}, "fn": {}, "fl": {}}
    costs = collections.Counter()
    ob = fn = None
    after_calls = False

    def resolve(kind, text):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?", text)
        if not m:
            return text
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), "?")

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            key, _, value = line.partition("=")
            if key in ("ob", "cob"):
                name = resolve("ob", value)
                if key == "ob":
                    ob = name
            elif key in ("fn", "cfn"):
                name = resolve("fn", value)
                if key == "fn":
                    fn = name
            elif key in ("fl", "fi", "fe", "cfi", "cfl"):
                resolve("fl", value)
            elif key == "calls":
                after_calls = True  # the next cost line is the call's inclusive cost, not this function's own
            elif line[0].isdigit() or line[0] in "+-*":
                if after_calls:
                    after_calls = False
                    continue
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    costs[(ob or "?", fn or "?")] += int(parts[1])
    return costs


def callgrind(args):
    ops = float(args[args.index("--ops") + 1])
    a1, a3, b1, b3 = args[:4]
    added = collections.Counter()
    for path, sign in ((b3, 1), (b1, -1), (a3, -1), (a1, 1)):
        for key, value in callgrind_self_costs(path).items():
            added[key] += sign * value
    by_object = collections.Counter()
    for (ob, _), value in added.items():
        by_object[ob.split("/")[-1]] += value
    print(f"added per operation: {sum(added.values()) / ops:,.0f} Ir")
    for ob, value in by_object.most_common():
        if abs(value) / ops >= 20:
            print(f"  {value / ops:10,.0f}  {ob}")
    print("named functions (JIT code has no stable name across runs):")
    for (ob, fn), value in sorted(added.items(), key=lambda kv: -abs(kv[1])):
        if ob not in ("?", "???") and abs(value) / ops >= 40:
            print(f"  {value / ops:10,.0f}  {ob.split('/')[-1]}: {fn[:140]}")


CATEGORIES = [
    ("kernel (page faults, mostly)", lambda sym, dso: "kernel.kallsyms" in dso),
    ("matmul (MKL sgemm)", lambda sym, dso: "gemm" in sym.lower() or sym.startswith("mkl_")),
    ("memset/memcpy", lambda sym, dso: re.search(r"memset|memmove|memcpy", sym) is not None),
    ("malloc/free", lambda sym, dso: re.match(r"(malloc|free|cfree|_int_|unlink_chunk|malloc_consolidate|sysmalloc|systrim|"
                                              r"posix_memalign|_mid_memalign|tcache|__default_morecore|sbrk|brk|madvise|munmap|mmap)",
                                              sym) is not None),
    (".NET (managed code, runtime)", lambda sym, dso: "[JIT]" in dso or "coreclr" in dso or "clrjit" in dso or ".dll" in dso
     or dso.startswith("/tmp/perf-")),
    ("shim, LibTorchSharp", lambda sym, dso: "CustomAutogradNative" in dso or "LibTorchSharp" in dso),
    ("elementwise and reduction kernels", lambda sym, dso: re.search(
        r"Vectoriz|cpu_kernel|[Ll]oop2d|basic_loop|_kernel|[Rr]educe|masked_fill|threshold|clamp|CPU_CAPABILITY|at::vec|AVX2|DEFAULT::",
        sym) is not None),
    ("libtorch, other (dispatch, autograd engine, tensor setup)", lambda sym, dso: "libtorch" in dso or "libc10" in dso),
]


def perf(args):
    data, log = args[0], args[1]
    m = re.search(r"(\d+) rounds, batches of (\d+).*measured from ([\d.]+) to ([\d.]+) s", open(log).read())
    if not m:
        sys.exit(f"{log}: no 'measured from ... to ...' line (run the benchmark with --thread-time)")
    ops = int(m.group(1)) * int(m.group(2))
    t0, t1 = float(m.group(3)), float(m.group(4))
    out = subprocess.run(["perf", "script", "-F", "tid,time,period,ip,sym,dso", "-i", data],
                         capture_output=True, text=True, check=True).stdout
    samples = []
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+):\s+(\d+)\s+[0-9a-f]+\s+(.*)\s+\(([^()]*)\)\s*$", line)
        if m and t0 <= float(m.group(2)) <= t1:
            samples.append((m.group(1), int(m.group(3)), m.group(4), m.group(5)))
    if not samples:
        sys.exit("no sample in the measured window (was perf record given -k CLOCK_MONOTONIC?)")
    threads = collections.Counter(tid for tid, *_ in samples)
    main = threads.most_common(1)[0][0]
    by_category = collections.Counter()
    for tid, period_ns, sym, dso in samples:
        if tid != main:
            continue
        name = next((c for c, test in CATEGORIES if test(sym, dso)), "other")
        by_category[name] += period_ns
    total = sum(by_category.values())
    print(f"{ops} operations, {total / ops / 1e6:.2f} ms per operation on the measuring thread "
          f"({sum(v for t, v in threads.items() if t != main)} samples of other threads left out)")
    for name, ns in by_category.most_common():
        print(f"  {ns / ops / 1e6:8.2f} ms  {100 * ns / total:5.1f}%  {name}")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("callgrind", "perf"):
        sys.exit(__doc__)
    {"callgrind": callgrind, "perf": perf}[sys.argv[1]](sys.argv[2:])
