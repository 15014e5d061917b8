// SPDX-License-Identifier: MIT
// Activation checkpointing, measured: a deep network of residual MLP blocks trained without checkpointing, with
// every block checkpointed, and with round(sqrt(blocks)) segments: the memory of each configuration in a fresh
// process, then the step times of all three in turn in one more process.
//   dotnet run --project examples/Checkpointing -c Release [-- --plot ratios.png] [--blocks N --width N --batch N ...]
using System;
using System.Collections.Generic;
using System.Linq;
using CustomAutograd.Examples;

ExampleOptions? options = ExampleOptions.Parse(args);
if (options is null)
    return args.Any(a => a is "-h" or "--help") ? 0 : 2;

if (options.Child is { } configuration)
{
    Console.WriteLine(StepMeasurement.Run(options, configuration).ToLine());
    return 0;
}
if (options.TimeChild)
{
    foreach (StepResult r in StepMeasurement.RunInTurn(options))
        Console.WriteLine(r.ToLine());
    return 0;
}

var memories = new List<StepResult>();
foreach (Configuration c in Enum.GetValues<Configuration>())
{
    Console.Error.WriteLine($"measuring the memory of '{ResultTable.Describe(c, options)}' in a fresh process ...");
    if (ChildProcess.RunMemory(options, c) is not { } memory)
        return 1;
    memories.Add(memory);
}
Console.Error.WriteLine($"measuring the step times of all three, in turn, in one more process ({options.Steps} rounds) ...");
if (ChildProcess.RunTimes(options) is not { } times)
    return 1;
var results = new List<StepResult>();
foreach (StepResult memory in memories)
{
    StepResult time = times.Single(t => t.Configuration == memory.Configuration);
    results.Add(memory with { StepSeconds = time.StepSeconds, CpuSeconds = time.CpuSeconds });
}
ResultTable.Write(options, results, Console.Out);
if (options.PlotPath is { } path)
{
    ResultPlot.Save(options, results, path);
    Console.Error.WriteLine($"ratios drawn to {path}");
}
return 0;
