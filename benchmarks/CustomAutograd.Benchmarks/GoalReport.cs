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
    private sealed record Row(string Group, string Type, string Method, string Description, int? Length, double MedianNs, double MinNs, long? AllocatedBytes);

    private static readonly string[] GroupOrder =
    {
        nameof(IdentityBenchmarks), nameof(Relu16Benchmarks), nameof(Relu1MBenchmarks), nameof(TwoLayerNetBenchmarks), nameof(ChainBenchmarks),
        nameof(CheckpointBenchmarks),
    };

    public static string Build(IEnumerable<Summary> summaries)
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
                foreach (var p in report.BenchmarkCase.Parameters.Items)
                {
                    if (p.Name == nameof(ChainBenchmarks.Length) && p.Value is int n)
                        length = n;
                }
                string type = descriptor.Type.Name;
                rows.Add(new Row(GroupName(type, length), type, descriptor.WorkloadMethod.Name,
                                 descriptor.WorkloadMethodDisplayInfo.Trim('\''), length, stats.Median, stats.Min,
                                 report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase)));
            }
        }

        var md = new StringBuilder();
        if (rows.Count == 0)
            return "No benchmark produced a result.\n";

        md.AppendLine("| Group | Row | Median | Min | Median vs built-in | Managed alloc/op |");
        md.AppendLine("|---|---|---:|---:|---:|---:|");
        foreach (Row r in rows.OrderBy(r => Array.IndexOf(GroupOrder, r.Type)).ThenBy(r => r.Length))
        {
            Row? baseline = Find(rows, r.Type, nameof(IdentityBenchmarks.BuiltIn), r.Length);
            string ratio = baseline is null ? "" : F(r.MedianNs / baseline.MedianNs, "0.00") + "x";
            md.AppendLine($"| {r.Group} | {r.Description} | {Time(r.MedianNs)} | {Time(r.MinNs)} | {ratio} | {Bytes(r.AllocatedBytes)} |");
        }

        md.AppendLine();
        md.AppendLine("| Goal | Medians | Minima | Target | Met (medians) |");
        md.AppendLine("|---|---:|---:|---:|:---:|");
        Row? clone = Find(rows, nameof(IdentityBenchmarks), nameof(IdentityBenchmarks.BuiltIn), null);
        Row? ca = Find(rows, nameof(IdentityBenchmarks), nameof(IdentityBenchmarks.CustomAutograd), null);
        Row? ts = Find(rows, nameof(IdentityBenchmarks), nameof(IdentityBenchmarks.TorchSharpFunction), null);
        if (clone is not null && ca is not null)
        {
            Goal(md, "Identity, 16 el.: CustomAutograd / built-in clone", ca.MedianNs / clone.MedianNs, ca.MinNs / clone.MinNs, 1.15, "0.00");
            Info(md, "Identity, 16 el.: time CustomAutograd adds per call", Time(ca.MedianNs - clone.MedianNs), Time(ca.MinNs - clone.MinNs));
        }
        if (clone is not null && ca is not null && ts is not null)
        {
            Goal(md, "Identity, 16 el.: (CustomAutograd − clone) / (TorchSharp Function − clone)",
                 (ca.MedianNs - clone.MedianNs) / (ts.MedianNs - clone.MedianNs), (ca.MinNs - clone.MinNs) / (ts.MinNs - clone.MinNs), 0.5, "0.00");
            Info(md, "Identity, 16 el.: time TorchSharp Function adds per call", Time(ts.MedianNs - clone.MedianNs), Time(ts.MinNs - clone.MinNs));
        }
        Row? caBig = Find(rows, nameof(Relu1MBenchmarks), nameof(Relu1MBenchmarks.CustomAutograd), null);
        Row? hand = Find(rows, nameof(Relu1MBenchmarks), nameof(Relu1MBenchmarks.ByHand), null);
        if (caBig is not null && hand is not null)
            Goal(md, "ReLU, 1M el.: CustomAutograd / by hand under no_grad", caBig.MedianNs / hand.MedianNs, caBig.MinNs / hand.MinNs, 1.05, "0.000");

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
        // Issue "Activation checkpointing": the step time the memory saving costs (goal 1.35x on the CPU).
        Row? noCheckpoint = Find(rows, nameof(CheckpointBenchmarks), nameof(CheckpointBenchmarks.BuiltIn), null);
        foreach (string method in new[] { nameof(CheckpointBenchmarks.EveryBlock), nameof(CheckpointBenchmarks.SqrtSegments) })
        {
            if (noCheckpoint is not null && Find(rows, nameof(CheckpointBenchmarks), method, null) is { } checkpointed)
            {
                Goal(md, $"Checkpointing, {checkpointed.Description}: step time / no checkpointing", checkpointed.MedianNs / noCheckpoint.MedianNs,
                     checkpointed.MinNs / noCheckpoint.MinNs, 1.35, "0.00");
            }
        }
        return md.ToString();
    }

    private static string GroupName(string type, int? length) => type switch
    {
        nameof(IdentityBenchmarks) => "Identity, 16 el.",
        nameof(Relu16Benchmarks) => "ReLU, 16 el.",
        nameof(Relu1MBenchmarks) => "ReLU, 1M el.",
        nameof(TwoLayerNetBenchmarks) => "Two-layer net step",
        nameof(ChainBenchmarks) => $"Identity chain of {length:N0}",
        nameof(CheckpointBenchmarks) => $"Residual MLP step ({CheckpointBenchmarks.Blocks}×{CheckpointBenchmarks.Width}, batch {CheckpointBenchmarks.Batch})",
        _ => type,
    };

    private static Row? Find(List<Row> rows, string type, string method, int? length) =>
        rows.FirstOrDefault(r => r.Type == type && r.Method == method && r.Length == length);

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

    public static void Write(string markdown, TextWriter output, string artifactsPath)
    {
        output.WriteLine();
        output.WriteLine("## CustomAutograd benchmark summary (medians and minima of the measured iterations)");
        output.WriteLine();
        output.Write(markdown);
        Directory.CreateDirectory(artifactsPath);
        string file = Path.Combine(artifactsPath, "goals.md");
        File.WriteAllText(file, markdown);
        output.WriteLine();
        output.WriteLine($"(also written to {file})");
    }
}
