// SPDX-License-Identifier: MIT
using System;
using System.Diagnostics;
using System.IO;

namespace CustomAutograd.Examples;

/// <summary>Runs one configuration in a fresh process of this program, with the allocator setting the measurement needs.</summary>
public static class ChildProcess
{
    /// <summary>Starts this program with <c>--child</c>, waits for it and reads its result line.</summary>
    /// <param name="options">The sizes to pass on.</param>
    /// <param name="configuration">The configuration to measure.</param>
    /// <returns>The result, or null (after printing why) when the child failed.</returns>
    public static StepResult? Run(ExampleOptions options, Configuration configuration)
    {
        ArgumentNullException.ThrowIfNull(options);
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process is unknown.");
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        // Started as `dotnet Checkpointing.dll`: the host needs the assembly again; as the apphost (`dotnet run`) it does not.
        if (string.Equals(Path.GetFileNameWithoutExtension(self), "dotnet", StringComparison.Ordinal))
            start.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        foreach (string argument in options.ChildArguments(configuration))
            start.ArgumentList.Add(argument);
        // Every block of 128 KiB or more gets its own mapping and goes back to the system when freed, so the peak
        // resident set follows the live tensors (see StepMeasurement).
        start.Environment["MALLOC_MMAP_THRESHOLD_"] = "131072";

        using Process child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {self}.");
        StepResult? result = null;
        string? line;
        while ((line = child.StandardOutput.ReadLine()) is not null)
        {
            StepResult? parsed = StepResult.TryParse(line);
            if (parsed is null)
                Console.Error.WriteLine(line);
            result ??= parsed;
        }
        child.WaitForExit();
        if (child.ExitCode == 0 && result is not null)
            return result;
        Console.Error.WriteLine($"the '{configuration}' process failed (exit code {child.ExitCode}).");
        return null;
    }
}
