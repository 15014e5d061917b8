// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Globalization;

namespace CustomAutograd.Examples;

/// <summary>What is checkpointed.</summary>
public enum Configuration
{
    /// <summary>Nothing: every activation is kept for the backward.</summary>
    None,

    /// <summary>Every block wrapped in a <see cref="CheckpointModule"/>.</summary>
    EveryBlock,

    /// <summary><c>Checkpoint.Sequential</c> with round(sqrt(blocks)) segments (all but the last checkpointed).</summary>
    SqrtSegments,
}

/// <summary>Command line of the example.</summary>
/// <param name="Blocks">Residual blocks in the model.</param>
/// <param name="Width">Width of every layer.</param>
/// <param name="Batch">Rows per batch.</param>
/// <param name="Steps">Measured training steps per configuration.</param>
/// <param name="Warmup">Unmeasured steps before them.</param>
/// <param name="Seed">Seed of the model and the data (the same for every configuration).</param>
/// <param name="Threads">libtorch's intra-op threads (1 by default: on a shared machine, spinning threads that wait for
/// each other make step times erratic), or null for libtorch's default.</param>
/// <param name="Device">"cpu" or "cuda".</param>
/// <param name="PlotPath">Where to draw the ratios (PNG), or null.</param>
/// <param name="Child">Set in the per-configuration child process that measures memory.</param>
/// <param name="TimeChild">Set in the child process that measures the time of every configuration in turn.</param>
public sealed record ExampleOptions(int Blocks = 24, int Width = 512, int Batch = 2048, int Steps = 5, int Warmup = 1,
                                    long Seed = 7, int? Threads = 1, string Device = "cpu", string? PlotPath = null,
                                    Configuration? Child = null, bool TimeChild = false)
{
    /// <summary>The usage line.</summary>
    public const string Usage =
        "usage: Checkpointing [--blocks N] [--width N] [--batch N] [--steps N] [--warmup N] [--seed N] [--threads N] " +
        "[--device cpu|cuda] [--plot ratios.png]";

    /// <summary>The number of segments of the <see cref="Configuration.SqrtSegments"/> configuration.</summary>
    public int Segments => Math.Clamp((int)Math.Round(Math.Sqrt(Blocks)), 1, Blocks);

    /// <summary>Parses the command line; prints usage and returns null when it is wrong or help was asked.</summary>
    /// <param name="args">The arguments.</param>
    /// <returns>The options, or null.</returns>
    public static ExampleOptions? Parse(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var o = new ExampleOptions();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--time-child")
            {
                o = o with { TimeChild = true };
                continue;
            }
            string? value = i + 1 < args.Length ? args[i + 1] : null;
            bool positive = int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0;
            ExampleOptions? next = args[i] switch
            {
                "--blocks" when positive => o with { Blocks = n },
                "--width" when positive => o with { Width = n },
                "--batch" when positive => o with { Batch = n },
                "--steps" when positive => o with { Steps = n },
                "--warmup" when value is not null && int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int w) && w >= 0
                    => o with { Warmup = w },
                "--seed" when long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long s) => o with { Seed = s },
                "--threads" when positive => o with { Threads = n },
                "--device" when value is "cpu" or "cuda" => o with { Device = value },
                "--plot" when !string.IsNullOrEmpty(value) => o with { PlotPath = value },
                "--child" when Enum.TryParse(value, out Configuration c) => o with { Child = c },
                _ => null,
            };
            if (next is null)
            {
                if (args[i] is "-h" or "--help")
                {
                    Console.WriteLine(Usage);
                    return null;
                }
                Console.Error.WriteLine($"unknown or incomplete argument '{args[i]}'");
                Console.Error.WriteLine(Usage);
                return null;
            }
            o = next;
            i++;
        }
        return o;
    }

    /// <summary>The arguments that give a child process the same sizes.</summary>
    /// <param name="configuration">The configuration of a memory child, or null for the time child.</param>
    /// <returns>The command line.</returns>
    public IEnumerable<string> ChildArguments(Configuration? configuration)
    {
        string I(long v) => v.ToString(CultureInfo.InvariantCulture);
        var list = new List<string>();
        if (configuration is { } c)
            list.AddRange(["--child", c.ToString()]);
        else
            list.Add("--time-child");
        list.AddRange(["--blocks", I(Blocks), "--width", I(Width), "--batch", I(Batch), "--steps", I(Steps), "--warmup", I(Warmup),
                       "--seed", I(Seed), "--device", Device]);
        if (Threads is { } t)
            list.AddRange(new[] { "--threads", I(t) });
        return list;
    }
}
