// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;

namespace CustomAutograd.Examples;

/// <summary>
/// Runs measurements in fresh processes of this program. Memory is measured per configuration, in a process whose
/// allocator returns every large block to the system at once (MALLOC_MMAP_THRESHOLD_=131072), so that the peak
/// resident set follows the live tensors. Time is measured in one more process, with glibc's default allocator (with
/// the setting above every activation is a fresh mapping whose pages fault in, which slows the configurations that
/// allocate more), running the configurations in turn, step by step: on a shared machine one process can run
/// everything markedly slower than another for its whole life, so step times are only comparable within a process.
/// </summary>
public static class ChildProcess
{
    /// <summary>Measures one configuration's memory in a fresh process.</summary>
    /// <param name="options">The sizes to pass on.</param>
    /// <param name="configuration">The configuration to measure.</param>
    /// <returns>The result, or null (after printing why) when the child failed.</returns>
    public static StepResult? RunMemory(ExampleOptions options, Configuration configuration)
    {
        ArgumentNullException.ThrowIfNull(options);
        List<StepResult>? results = Run((options with { Steps = 1 }).ChildArguments(configuration), forMemory: true);
        return results is [{ } result] ? result : null;
    }

    /// <summary>Measures the step time of every configuration, in turn, in one fresh process.</summary>
    /// <param name="options">The sizes to pass on.</param>
    /// <returns>One result per configuration, or null (after printing why) when the child failed.</returns>
    public static List<StepResult>? RunTimes(ExampleOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Run(options.ChildArguments(null), forMemory: false);
    }

    private static List<StepResult>? Run(IEnumerable<string> arguments, bool forMemory)
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process is unknown.");
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        // Started as `dotnet Checkpointing.dll`: the host needs the assembly again; as the apphost (`dotnet run`) it does not.
        if (string.Equals(Path.GetFileNameWithoutExtension(self), "dotnet", StringComparison.Ordinal))
            start.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        foreach (string argument in arguments)
            start.ArgumentList.Add(argument);
        if (forMemory)
            start.Environment["MALLOC_MMAP_THRESHOLD_"] = "131072";
        else
            start.Environment.Remove("MALLOC_MMAP_THRESHOLD_");

        using Process child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {self}.");
        var results = new List<StepResult>();
        string? line;
        while ((line = child.StandardOutput.ReadLine()) is not null)
        {
            if (StepResult.TryParse(line) is { } parsed)
                results.Add(parsed);
            else
                Console.Error.WriteLine(line);
        }
        child.WaitForExit();
        if (child.ExitCode == 0 && results.Count > 0)
            return results;
        Console.Error.WriteLine($"the {(forMemory ? "memory" : "time")} process failed (exit code {child.ExitCode}).");
        return null;
    }
}
