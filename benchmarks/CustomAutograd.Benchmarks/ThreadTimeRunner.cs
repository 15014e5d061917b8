// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using BenchmarkDotNet.Attributes;

namespace CustomAutograd.Benchmarks;

/// <summary>
/// <c>--thread-time</c>: the same benchmark methods, timed by the CPU time of the calling thread
/// (<c>CLOCK_THREAD_CPUTIME_ID</c>) instead of the wall clock. On the CPU with one intra-op thread, libtorch's kernels
/// and its autograd engine run on the calling thread, so its CPU time is the work of one operation, and time the
/// thread spends waiting for a core (on an oversubscribed machine) does not count. The rows of a group take turns,
/// round after round, so slow phases of the machine reach every row alike. CPU only.
/// </summary>
internal static partial class ThreadTimeRunner
{
    private const int ClockThreadCpuTime = 3;  // CLOCK_THREAD_CPUTIME_ID on Linux

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);

    private const int RusageThread = 1;  // RUSAGE_THREAD on Linux

    [StructLayout(LayoutKind.Sequential)]
    private struct RUsage
    {
        public long UserSeconds, UserMicroseconds, SystemSeconds, SystemMicroseconds;
        public long MaxRss, SharedRss, UnsharedData, UnsharedStack, MinorFaults, MajorFaults, Swaps, BlockIn, BlockOut,
                    MessagesSent, MessagesReceived, Signals, VoluntarySwitches, InvoluntarySwitches;
    }

    [LibraryImport("libc", EntryPoint = "getrusage")]
    private static partial int GetRUsage(int who, out RUsage usage);

    /// <summary>Minor page faults of the calling thread so far (fresh memory the kernel had to map).</summary>
    private static long ThreadMinorFaults() => GetRUsage(RusageThread, out RUsage u) == 0 ? u.MinorFaults : 0;

    private static long ThreadNs()
    {
        if (ClockGetTime(ClockThreadCpuTime, out TimeSpec t) != 0)
            throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        return t.Seconds * 1_000_000_000 + t.Nanoseconds;
    }

    /// <summary>
    /// Measures, for <paramref name="rounds"/> rounds, every benchmark method of the given classes whose name
    /// <c>Namespace.Class.Method(Param=Value)</c> (parameters only when the class has some) a pattern matches.
    /// </summary>
    /// <param name="types">The benchmark classes.</param>
    /// <param name="patterns">Which methods.</param>
    /// <param name="rounds">Samples per method (after two warm-up rounds).</param>
    /// <param name="batch">Operations per sample; 0: enough for about 20 ms. A fixed batch makes the work of a run
    /// exact, e.g. to subtract two runs under callgrind.</param>
    /// <param name="output">Progress lines.</param>
    public static List<GoalReport.Row> Run(IEnumerable<Type> types, IReadOnlyList<Regex> patterns, int rounds, int batch, TextWriter output)
    {
        var rows = new List<GoalReport.Row>();
        foreach (Type type in types)
        {
            foreach (Dictionary<PropertyInfo, object?> parameters in ParameterSets(type))
            {
                string suffix = parameters.Count == 0 ? "" : "(" + string.Join(",", parameters.Select(p => $"{p.Key.Name}={p.Value}")) + ")";
                MethodInfo[] methods = type.GetMethods()
                    .Where(m => m.GetCustomAttribute<BenchmarkAttribute>() is not null &&
                                patterns.Any(p => p.IsMatch($"{type.FullName}.{m.Name}{suffix}")))
                    .ToArray();
                if (methods.Length > 0)
                    rows.AddRange(RunCase(type, methods, parameters, rounds, batch, output));
            }
        }
        return rows;
    }

    private static List<Dictionary<PropertyInfo, object?>> ParameterSets(Type type)
    {
        var sets = new List<Dictionary<PropertyInfo, object?>> { new() };
        foreach (PropertyInfo p in type.GetProperties())
        {
            if (p.GetCustomAttribute<ParamsAttribute>() is not { } values)
                continue;
            sets = sets.SelectMany(s => values.Values.Select(v => new Dictionary<PropertyInfo, object?>(s) { [p] = v })).ToList();
        }
        return sets;
    }

    private static List<GoalReport.Row> RunCase(Type type, MethodInfo[] methods, Dictionary<PropertyInfo, object?> parameters, int rounds,
                                                int fixedBatch, TextWriter output)
    {
        object instance = Activator.CreateInstance(type)!;
        foreach (var (property, value) in parameters)
            property.SetValue(instance, value);
        Invoke<GlobalSetupAttribute>(type, instance);
        try
        {
            // Each sample runs a method enough times for about 20 ms of thread time.
            var actions = methods.Select(m => m.CreateDelegate<Action>(instance)).ToArray();
            var batch = new int[actions.Length];
            for (int i = 0; i < actions.Length; i++)
            {
                if (fixedBatch > 0)
                {
                    batch[i] = fixedBatch;
                    continue;
                }
                actions[i]();
                long start = ThreadNs();
                actions[i]();
                long once = Math.Max(1, ThreadNs() - start);
                batch[i] = (int)Math.Clamp(20_000_000 / once, 1, 100_000);
            }
            var samples = actions.Select(_ => new List<double>()).ToArray();
            long measuredFrom = 0;
            var allocated = new long[actions.Length];
            var faults = new long[actions.Length];
            for (int round = -2; round < rounds; round++)  // two warm-up rounds
            {
                if (round == 0)
                    measuredFrom = Stopwatch.GetTimestamp();
                for (int k = 0; k < actions.Length; k++)
                {
                    int i = (k + Math.Max(round, 0)) % actions.Length;  // rotate which row goes first
                    long bytes = GC.GetAllocatedBytesForCurrentThread();
                    long faulted = ThreadMinorFaults();
                    long start = ThreadNs();
                    for (int n = 0; n < batch[i]; n++)
                        actions[i]();
                    long elapsed = ThreadNs() - start;
                    if (round < 0)
                        continue;
                    samples[i].Add((double)elapsed / batch[i]);
                    allocated[i] = (GC.GetAllocatedBytesForCurrentThread() - bytes) / batch[i];
                    faults[i] += ThreadMinorFaults() - faulted;
                }
            }
            string label = type.Name + string.Concat(parameters.Select(p => $" {p.Key.Name}={p.Value}"));
            long measuredTo = Stopwatch.GetTimestamp();
            // The measured window in CLOCK_MONOTONIC seconds (Stopwatch's clock on Linux), to cut a profile taken with
            // `perf record -k CLOCK_MONOTONIC` to exactly these rounds.
            output.WriteLine($"{label}: {rounds} rounds, batches of {string.Join("/", batch)}; minor page faults per operation: " +
                             string.Join(", ", methods.Select((m, i) => $"{m.Name} {(double)faults[i] / (rounds * batch[i]):0.#}")) +
                             $"; measured from {Seconds(measuredFrom):0.000000} to {Seconds(measuredTo):0.000000} s (monotonic clock)");
            var rows = new List<GoalReport.Row>();
            for (int i = 0; i < methods.Length; i++)
            {
                var sorted = samples[i].OrderBy(v => v).ToArray();
                double median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
                string description = methods[i].GetCustomAttribute<BenchmarkAttribute>()!.Description ?? methods[i].Name;
                rows.Add(new GoalReport.Row(type.Name, methods[i].Name, description, Parameter<int>(parameters, nameof(ChainBenchmarks.Length)),
                                            Parameter<GradReset>(parameters, nameof(MlpBenchmarks.Reset)), median, sorted[0], allocated[i]));
            }
            return rows;
        }
        finally
        {
            Invoke<GlobalCleanupAttribute>(type, instance);
        }
    }

    private static double Seconds(long timestamp) => (double)timestamp / Stopwatch.Frequency;

    private static T? Parameter<T>(Dictionary<PropertyInfo, object?> parameters, string name) where T : struct =>
        parameters.FirstOrDefault(p => p.Key.Name == name).Value is T value ? value : null;

    private static void Invoke<TAttribute>(Type type, object instance) where TAttribute : Attribute
    {
        foreach (MethodInfo m in type.GetMethods().Where(m => m.GetCustomAttribute<TAttribute>() is not null))
            m.Invoke(instance, null);
    }
}
