// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;

namespace CustomAutograd.Examples;

/// <summary>Prints the measurements as a Markdown table, with ratios to no checkpointing and the issue's goal.</summary>
public static class ResultTable
{
    /// <summary>The issue's goal on the CPU: the better checkpointed configuration within these ratios.</summary>
    public const double MemoryGoal = 0.35, TimeGoal = 1.35;

    /// <summary>The configuration's name in the table.</summary>
    /// <param name="c">The configuration.</param>
    /// <param name="o">The sizes.</param>
    /// <returns>The name.</returns>
    public static string Describe(Configuration c, ExampleOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        return c switch
        {
            Configuration.None => "no checkpointing",
            Configuration.EveryBlock => "every block",
            Configuration.SqrtSegments => $"sqrt({o.Blocks}) ≈ {o.Segments} segments",
            _ => c.ToString(),
        };
    }

    /// <summary>How many blocks the configuration checkpoints.</summary>
    /// <param name="c">The configuration.</param>
    /// <param name="o">The sizes.</param>
    /// <returns>A short description.</returns>
    public static string Checkpointed(Configuration c, ExampleOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        int size = o.Blocks / o.Segments;
        return c switch
        {
            Configuration.None => "none",
            Configuration.EveryBlock => $"{o.Blocks} of {o.Blocks}, one block each",
            Configuration.SqrtSegments => $"{size * (o.Segments - 1)} of {o.Blocks}, {o.Segments - 1} × {size} blocks",
            _ => "",
        };
    }

    /// <summary>Writes the table.</summary>
    /// <param name="o">The sizes.</param>
    /// <param name="results">One result per configuration, no checkpointing first.</param>
    /// <param name="output">Where to write.</param>
    public static void Write(ExampleOptions o, IReadOnlyList<StepResult> results, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(output);
        StepResult none = results.First(r => r.Configuration == Configuration.None);
        double activation = (double)o.Batch * o.Width * sizeof(float);
        string memory = o.Device == "cuda" ? "GPU memory (nvidia-smi) after the step over before it" : "peak RSS over pre-step RSS";
        output.WriteLine(
            $"Residual MLP: {o.Blocks} blocks (Linear, GELU, Linear, LayerNorm + skip), width {o.Width}, batch {o.Batch}, float32, " +
            $"{o.Device}, {none.Threads} libtorch thread(s).");
        output.WriteLine(
            $"Memory: {memory}, one step after {o.Warmup} warm-up step(s), in a fresh process with MALLOC_MMAP_THRESHOLD_=131072. " +
            $"Time: the three configurations in turn, one step each, {o.Steps} rounds after {o.Warmup} warm-up step(s) each, " +
            "in one more process with the default allocator; medians. " +
            $"One activation (batch × width × 4 B) = {Mib(activation)}.");
        output.WriteLine();
        output.WriteLine("| configuration | blocks checkpointed | peak memory | in activations | memory vs none | step time | time vs none | CPU time | CPU vs none | last loss |");
        output.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (StepResult r in results)
        {
            output.WriteLine(
                $"| {Describe(r.Configuration, o)} | {Checkpointed(r.Configuration, o)} | {Mib(r.PeakBytes)} | {F(r.PeakBytes / activation, "0.0")} | " +
                $"{F(100.0 * r.PeakBytes / none.PeakBytes, "0")}% | {F(r.StepSeconds, "0.00")} s | {F(r.StepSeconds / none.StepSeconds, "0.00")}x | " +
                $"{F(r.CpuSeconds, "0.00")} s | {F(r.CpuSeconds / none.CpuSeconds, "0.00")}x | {F(r.Loss, "0.000000")} |");
        }
        output.WriteLine();

        StepResult best = results.Where(r => r.Configuration != Configuration.None).MinBy(r => r.PeakBytes)!;
        double memoryRatio = (double)best.PeakBytes / none.PeakBytes;
        double timeRatio = best.StepSeconds / none.StepSeconds, cpuRatio = best.CpuSeconds / none.CpuSeconds;
        output.WriteLine(
            $"Goal: the better checkpointed configuration at most {F(100 * MemoryGoal, "0")}% of the un-checkpointed peak at a step " +
            $"time at most {F(TimeGoal, "0.00")}x. Better (less memory): {Describe(best.Configuration, o)}, " +
            $"{F(100 * memoryRatio, "0")}% ({Met(memoryRatio <= MemoryGoal)}) at {F(timeRatio, "0.00")}x wall-clock " +
            $"({Met(timeRatio <= TimeGoal)}), {F(cpuRatio, "0.00")}x CPU time ({Met(cpuRatio <= TimeGoal)}).");
    }

    private static string Met(bool met) => met ? "met" : "not met";

    private static string Mib(double bytes) => F(bytes / (1024 * 1024), "0.0") + " MiB";

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
