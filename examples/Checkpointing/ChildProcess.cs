// SPDX-License-Identifier: MIT
using System;
using System.Diagnostics;
using System.IO;

namespace CustomAutograd.Examples;

/// <summary>
/// Runs one configuration in a fresh process of this program. Memory is measured in a process whose allocator
/// returns every large block to the system at once (MALLOC_MMAP_THRESHOLD_=131072), so that the peak resident set
/// follows the live tensors; time is measured in another process with glibc's default allocator, because with that
/// setting every activation is a fresh mapping whose pages fault in, which slows the configurations that allocate
/// more (a checkpointed forward frees its intermediates at once and the recompute allocates them again).
/// </summary>
public static class ChildProcess
{
    /// <summary>Starts this program with <c>--child</c>, waits for it and reads its result line.</summary>
    /// <param name="options">The sizes to pass on.</param>
    /// <param name="configuration">The configuration to measure.</param>
    /// <param name="forMemory">True: one measured step, with the allocator setting; false: the measured steps for the
    /// time, with the default allocator.</param>
    /// <returns>The result, or null (after printing why) when the child failed.</returns>
    public static StepResult? Run(ExampleOptions options, Configuration configuration, bool forMemory)
    {
        ArgumentNullException.ThrowIfNull(options);
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process is unknown.");
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        // Started as `dotnet Checkpointing.dll`: the host needs the assembly again; as the apphost (`dotnet run`) it does not.
        if (string.Equals(Path.GetFileNameWithoutExtension(self), "dotnet", StringComparison.Ordinal))
            start.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        foreach (string argument in (forMemory ? options with { Steps = 1 } : options).ChildArguments(configuration))
            start.ArgumentList.Add(argument);
        if (forMemory)
            start.Environment["MALLOC_MMAP_THRESHOLD_"] = "131072";
        else
            start.Environment.Remove("MALLOC_MMAP_THRESHOLD_");

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
