// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using BenchmarkDotNet.Reports;

namespace CustomAutograd.Benchmarks;

/// <summary>
/// After the run: the medians of every row and the issue's goal ratios, as Markdown that can be pasted into
/// a README.
/// </summary>
internal static class GoalReport
{
    /// <summary>One measured row: a benchmark method of a class, with its parameters.</summary>
    internal sealed record Row(string Type, string Method, string Description, int? Length, GradReset? Reset,
                               double MedianNs, double MinNs, long? AllocatedBytes)
    {
        /// <summary>The group label of the tables.</summary>
        public string Group { get; init; } = "";
    }

    private static readonly string[] GroupOrder =
    {
        nameof(IdentityBenchmarks), nameof(Relu16Benchmarks), nameof(Relu1MBenchmarks), nameof(Relu16MBenchmarks),
        nameof(TwoLayerNetBenchmarks), nameof(ChainBenchmarks), nameof(MlpBenchmarks), nameof(CheckpointBenchmarks),
    };

    /// <summary>The goal table.</summary>
    /// <param name="summaries">BenchmarkDotNet's results.</param>
    /// <param name="cuda">Whether the run was on CUDA (<c>--device cuda</c>).</param>
    /// <param name="cudaAvailable">Whether TorchSharp sees a CUDA device in this process.</param>
    public static string Build(IEnumerable<Summary> summaries, bool cuda, bool cudaAvailable)
    {
        var rows = new List<Row>();
        foreach (Summary summary in summaries)
        {
            foreach (BenchmarkReport report in summary.Reports)
            {
                if (report.ResultStatistics is not { } stats)
                    continue;
                var descriptor = report.BenchmarkCase.Descriptor;
                int? length = null;
                GradReset? reset = null;
                foreach (var p in report.BenchmarkCase.Parameters.Items)
                {
                    if (p.Name == nameof(ChainBenchmarks.Length) && p.Value is int n)
                        length = n;
                    if (p.Name == nameof(MlpBenchmarks.Reset) && p.Value is GradReset r)
                        reset = r;
                }
                rows.Add(new Row(descriptor.Type.Name, descriptor.WorkloadMethod.Name, descriptor.WorkloadMethodDisplayInfo.Trim('\''),
                                 length, reset, stats.Median, stats.Min, report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase)));
            }
        }
        return Build(rows, cuda, cudaAvailable);
    }

    /// <summary>The goal table from rows measured any way (BenchmarkDotNet, or <see cref="ThreadTimeRunner"/>).</summary>
    public static string Build(List<Row> rows, bool cuda, bool cudaAvailable)
    {
        rows = rows.Select(r => r with { Group = GroupName(r.Type, r.Length, r.Reset) + (cuda ? " (CUDA)" : "") }).ToList();
        var md = new StringBuilder();
        if (rows.Count == 0)
            return "No benchmark produced a result.\n";

        md.AppendLine("| Group | Row | Median | Min | Median vs built-in | Managed alloc/op |");
        md.AppendLine("|---|---|---:|---:|---:|---:|");
        foreach (Row r in rows.OrderBy(r => Array.IndexOf(GroupOrder, r.Type)).ThenBy(r => r.Length).ThenBy(r => r.Reset))
        {
            Row? baseline = Find(rows, r.Type, nameof(IdentityBenchmarks.BuiltIn), r.Length, r.Reset);
            string ratio = baseline is null ? "" : F(r.MedianNs / baseline.MedianNs, "0.00") + "x";
            md.AppendLine($"| {r.Group} | {r.Description} | {Time(r.MedianNs)} | {Time(r.MinNs)} | {ratio} | {Bytes(r.AllocatedBytes)} |");
        }

        md.AppendLine();
        md.AppendLine("| Goal | Medians | Minima | Target | Met (medians) |");
        md.AppendLine("|---|---:|---:|---:|:---:|");
        if (cuda)
            CudaGoals(md, rows);
        else
            CpuGoals(md, rows, cudaAvailable);
        CheckpointGoals(md, rows);
        return md.ToString();
    }

    // Issue "Activation checkpointing": the step time the memory saving costs (goal 1.35x on the CPU).
    private static void CheckpointGoals(StringBuilder md, List<Row> rows)
    {
        Row? noCheckpoint = Find(rows, nameof(CheckpointBenchmarks), nameof(CheckpointBenchmarks.BuiltIn));
        foreach (string method in new[] { nameof(CheckpointBenchmarks.EveryBlock), nameof(CheckpointBenchmarks.SqrtSegments) })
        {
            if (noCheckpoint is not null && Find(rows, nameof(CheckpointBenchmarks), method) is { } checkpointed)
            {
                Goal(md, $"Checkpointing, {checkpointed.Description}: step time / no checkpointing", checkpointed.MedianNs / noCheckpoint.MedianNs,
                     checkpointed.MinNs / noCheckpoint.MinNs, 1.35, "0.00");
            }
        }
    }

    private static void CpuGoals(StringBuilder md, List<Row> rows, bool cudaAvailable)
    {
        Row? clone = Find(rows, nameof(IdentityBenchmarks), nameof(IdentityBenchmarks.BuiltIn));
        Row? ca = Find(rows, nameof(IdentityBenchmarks), nameof(IdentityBenchmarks.CustomAutograd));
        Row? ts = Find(rows, nameof(IdentityBenchmarks), nameof(IdentityBenchmarks.TorchSharpFunction));
        if (clone is not null && ca is not null)
        {
            Goal(md, "Identity, 16 el.: CustomAutograd / built-in clone", ca.MedianNs / clone.MedianNs, ca.MinNs / clone.MinNs, 1.15, "0.00");
            Goal(md, "Identity, 16 el.: CustomAutograd / built-in clone (issue \"Performance II\")", ca.MedianNs / clone.MedianNs, ca.MinNs / clone.MinNs, 1.08, "0.000");
            Info(md, "Identity, 16 el.: time CustomAutograd adds per call", Time(ca.MedianNs - clone.MedianNs), Time(ca.MinNs - clone.MinNs));
        }
        if (clone is not null && ca is not null && ts is not null)
        {
            Goal(md, "Identity, 16 el.: (CustomAutograd − clone) / (TorchSharp Function − clone)",
                 (ca.MedianNs - clone.MedianNs) / (ts.MedianNs - clone.MedianNs), (ca.MinNs - clone.MinNs) / (ts.MinNs - clone.MinNs), 0.5, "0.00");
            Info(md, "Identity, 16 el.: time TorchSharp Function adds per call", Time(ts.MedianNs - clone.MedianNs), Time(ts.MinNs - clone.MinNs));
        }
        Ratio(md, rows, nameof(Relu1MBenchmarks), nameof(Relu1MBenchmarks.CustomAutograd), nameof(Relu1MBenchmarks.ByHand), null,
              "ReLU, 1M el.: CustomAutograd / by hand under no_grad", 1.05, "0.000");
        ChainGoals(md, rows);
        MlpGoals(md, rows, "", 1.03, 1.05);
        string why = cudaAvailable ? "not measured (this run was on the CPU: run with --device cuda)" : "not measured (no GPU)";
        foreach (string goal in CudaGoalNames)
            md.AppendLine($"| {goal} | {why} | | | |");
    }

    private static readonly string[] CudaGoalNames =
    {
        "CUDA: identity, time CustomAutograd adds per call (≤ 5 us)",
        "CUDA: ReLU, 16M el.: CustomAutograd / by hand under no_grad (≤ 1.05)",
        "CUDA: MLP step: CustomAutograd, fast Linear / built-in (≤ 1.02)",
    };

    private static void CudaGoals(StringBuilder md, List<Row> rows)
    {
        Row? clone = Find(rows, nameof(IdentityBenchmarks), nameof(IdentityBenchmarks.BuiltIn));
        Row? ca = Find(rows, nameof(IdentityBenchmarks), nameof(IdentityBenchmarks.CustomAutograd));
        Row? ts = Find(rows, nameof(IdentityBenchmarks), nameof(IdentityBenchmarks.TorchSharpFunction));
        if (clone is not null && ca is not null)
        {
            double median = ca.MedianNs - clone.MedianNs, min = ca.MinNs - clone.MinNs;
            md.AppendLine($"| CUDA: identity, 16 el.: time CustomAutograd adds per call | {Time(median)} | {Time(min)} | ≤ 5.00 us | {(median <= 5_000 ? "yes" : "**no**")} |");
            Info(md, "CUDA: identity, 16 el.: CustomAutograd / built-in clone", F(ca.MedianNs / clone.MedianNs, "0.000"), F(ca.MinNs / clone.MinNs, "0.000"));
        }
        if (clone is not null && ts is not null)
            Info(md, "CUDA: identity, 16 el.: time TorchSharp Function adds per call", Time(ts.MedianNs - clone.MedianNs), Time(ts.MinNs - clone.MinNs));
        Ratio(md, rows, nameof(Relu16MBenchmarks), nameof(Relu16MBenchmarks.CustomAutograd), nameof(Relu16MBenchmarks.ByHand), null,
              "CUDA: ReLU, 16M el.: CustomAutograd / by hand under no_grad", 1.05, "0.000");
        Ratio(md, rows, nameof(Relu16MBenchmarks), nameof(Relu16MBenchmarks.TorchSharpFunction), nameof(Relu16MBenchmarks.ByHand), null,
              "CUDA: ReLU, 16M el.: TorchSharp Function / by hand under no_grad", null, "0.000");
        MlpGoals(md, rows, "CUDA: ", 1.03, 1.02);
    }

    // The issue's goals for the real model: the library's cost against the same tensor work by hand, and the
    // recommended pattern against libtorch's own layers, in both ways of resetting gradients.
    private static void MlpGoals(StringBuilder md, List<Row> rows, string prefix, double byHandTarget, double fastTarget)
    {
        foreach (GradReset reset in new[] { GradReset.None, GradReset.Zero })
        {
            string group = prefix + GroupName(nameof(MlpBenchmarks), null, reset);
            Ratio(md, rows, nameof(MlpBenchmarks), nameof(MlpBenchmarks.CustomAutograd), nameof(MlpBenchmarks.ByHand), reset,
                  $"{group}: CustomAutograd / by hand under no_grad", byHandTarget, "0.000");
            Ratio(md, rows, nameof(MlpBenchmarks), nameof(MlpBenchmarks.CustomAutogradFast), nameof(MlpBenchmarks.BuiltIn), reset,
                  $"{group}: CustomAutograd, fast Linear / built-in", fastTarget, "0.000");
            Ratio(md, rows, nameof(MlpBenchmarks), nameof(MlpBenchmarks.TorchSharpFunction), nameof(MlpBenchmarks.ByHand), reset,
                  $"{group}: TorchSharp Function / by hand under no_grad", null, "0.000");
            Ratio(md, rows, nameof(MlpBenchmarks), nameof(MlpBenchmarks.CustomAutograd), nameof(MlpBenchmarks.BuiltIn), reset,
                  $"{group}: CustomAutograd / built-in", null, "0.000");
        }
    }

    /// <summary>A ratio of two rows of one group: a goal when <paramref name="target"/> is set, else information.</summary>
    private static void Ratio(StringBuilder md, List<Row> rows, string type, string method, string over, GradReset? reset,
                              string what, double? target, string format)
    {
        Row? a = Find(rows, type, method, null, reset);
        Row? b = Find(rows, type, over, null, reset);
        if (a is null || b is null)
            return;
        if (target is { } t)
            Goal(md, what, a.MedianNs / b.MedianNs, a.MinNs / b.MinNs, t, format);
        else
            Info(md, what, F(a.MedianNs / b.MedianNs, format), F(a.MinNs / b.MinNs, format));
    }

    private static void ChainGoals(StringBuilder md, List<Row> rows)
    {
        var perNode = new Dictionary<(string, int), (double Median, double Min)>();
        foreach (Row r in rows.Where(r => r.Type == nameof(ChainBenchmarks) && r.Length is > 0).OrderBy(r => r.Method).ThenBy(r => r.Length))
        {
            int n = r.Length!.Value;
            perNode[(r.Method, n)] = (r.MedianNs / n, r.MinNs / n);
            Info(md, $"Chain of {n:N0}: {r.Description}, per node", Time(r.MedianNs / n), Time(r.MinNs / n));
        }
        var growth = new Dictionary<string, (double Median, double Min)>();
        foreach (string method in new[] { nameof(ChainBenchmarks.CustomAutograd), nameof(ChainBenchmarks.BuiltIn), nameof(ChainBenchmarks.TorchSharpFunction) })
        {
            if (perNode.TryGetValue((method, 1_000), out var small) && perNode.TryGetValue((method, 10_000), out var large))
            {
                string name = rows.First(r => r.Type == nameof(ChainBenchmarks) && r.Method == method).Description;
                growth[method] = (large.Median / small.Median, large.Min / small.Min);
                Info(md, $"Chain: {name} per node at 10,000 / at 1,000", F(growth[method].Median, "0.00"), F(growth[method].Min, "0.00"));
            }
        }
        // Linear means no bookkeeping that grows with the graph. A per-node cost that rises from 1,000 to 10,000
        // nodes because the graph outgrows the caches rises for libtorch's own nodes too, so the check compares
        // the custom function's growth with the built-in chain's, measured in the same run.
        if (growth.TryGetValue(nameof(ChainBenchmarks.CustomAutograd), out var custom) &&
            growth.TryGetValue(nameof(ChainBenchmarks.BuiltIn), out var builtIn))
        {
            Goal(md, "Chain (linear): CustomAutograd's per-node growth / the built-in clone's", custom.Median / builtIn.Median,
                 custom.Min / builtIn.Min, 1.2, "0.00");
        }
    }

    private static string GroupName(string type, int? length, GradReset? reset) => type switch
    {
        nameof(IdentityBenchmarks) => "Identity, 16 el.",
        nameof(Relu16Benchmarks) => "ReLU, 16 el.",
        nameof(Relu1MBenchmarks) => "ReLU, 1M el.",
        nameof(Relu16MBenchmarks) => "ReLU, 16M el.",
        nameof(TwoLayerNetBenchmarks) => "Two-layer net step",
        nameof(ChainBenchmarks) => $"Identity chain of {length:N0}",
        nameof(MlpBenchmarks) => reset == GradReset.Zero ? "MLP step, grads by zero_" : "MLP step, grads to none",
        nameof(CheckpointBenchmarks) => $"Residual MLP step ({CheckpointBenchmarks.Blocks}×{CheckpointBenchmarks.Width}, batch {CheckpointBenchmarks.Batch})",
        _ => type,
    };

    private static Row? Find(List<Row> rows, string type, string method, int? length = null, GradReset? reset = null) =>
        rows.FirstOrDefault(r => r.Type == type && r.Method == method && r.Length == length && r.Reset == reset);

    private static void Goal(StringBuilder md, string what, double median, double min, double target, string format) =>
        md.AppendLine($"| {what} | {F(median, format)} | {F(min, format)} | ≤ {F(target, "0.00")} | {(median <= target ? "yes" : "**no**")} |");

    private static void Info(StringBuilder md, string what, string median, string min) =>
        md.AppendLine($"| {what} | {median} | {min} | | |");

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    private static string Time(double ns) => Math.Abs(ns) switch
    {
        < 1e3 => F(ns, "0.0") + " ns",
        < 1e6 => F(ns / 1e3, "0.00") + " us",
        < 1e9 => F(ns / 1e6, "0.000") + " ms",
        _ => F(ns / 1e9, "0.000") + " s",
    };

    private static string Bytes(long? bytes) => bytes switch
    {
        null => "?",
        < 10_000 => bytes.Value.ToString(CultureInfo.InvariantCulture) + " B",
        < 10_000_000 => F(bytes.Value / 1024.0, "0.0") + " KB",
        _ => F(bytes.Value / (1024.0 * 1024.0), "0.0") + " MB",
    };

    public static void Write(string markdown, TextWriter output, string artifactsPath, string measure)
    {
        output.WriteLine();
        output.WriteLine($"## CustomAutograd benchmark summary ({measure})");
        output.WriteLine();
        output.Write(markdown);
        Directory.CreateDirectory(artifactsPath);
        string file = Path.Combine(artifactsPath, "goals.md");
        File.WriteAllText(file, markdown);
        output.WriteLine();
        output.WriteLine($"(also written to {file})");
    }
}
